"""Least Squared-residual Metric Learning (Liu, Chen, Cheng & Ma, ICDM 2012) from quadruplets.

A quadruplet (a, b, c, d) says ``d(a, b) < d(c, d)``. LSML minimises metric-learn's objective

    Σ_{violated} w_q (d_M(a, b) - d_M(c, d))²  +  tr(M M0⁻¹) - log det M

(weights normalised to sum 1, d_M the non-squared distance, the LogDet term keeping M close
to the prior M0). metric-learn runs projected gradient descent on M with a grid line search
and a Python loop over the violated quadruplets for every gradient. Here M = Lᵀ L and scipy's
L-BFGS runs on L: the loss and gradient are a few vectorised passes (``||L v||`` for every
difference, one ``Vᵀ diag(c) V`` product), ``∂/∂L = 2 L G`` with G the gradient in M.
The objective is the same, so the optima agree; the path to them is far shorter.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.utils._param_validation import Interval, StrOptions

from .._validation import serial_blas, to_array
from ._base import components_from_metric, prior_metric
from ._weakly import (
    PREPROCESSOR_CONSTRAINT,
    SUPERVISED_CONSTRAINTS,
    QuadrupletsLearnerMixin,
    SupervisedTwinMixin,
    quadruplets_from_labels,
)

_EPS = 1e-12


def lsml_loss_grad(
    flat_L: np.ndarray, Vab: np.ndarray, Vcd: np.ndarray, w: np.ndarray, prior_inv: np.ndarray
) -> tuple[float, np.ndarray]:
    """LSML objective at M = Lᵀ L and its gradient with respect to L (flattened).

    Only violated quadruplets (``d(a, b) > d(c, d)``) have a residual, so the gradient's
    ``Vᵀ diag(c) V`` products run over their rows alone (the others add exact zeros): near
    the optimum that is a small fraction of the constraints.
    """
    d = Vab.shape[1]
    L = flat_L.reshape(d, d)
    Zab, Zcd = Vab @ L.T, Vcd @ L.T
    dab = np.sqrt(np.einsum("ij,ij->i", Zab, Zab) + _EPS)
    dcd = np.sqrt(np.einsum("ij,ij->i", Zcd, Zcd) + _EPS)
    viol = np.flatnonzero(dab > dcd)
    M = L.T @ L
    sign, logdet = np.linalg.slogdet(M)
    if sign <= 0:
        return np.inf, np.zeros_like(flat_L)
    wv, ab, cd = w[viol], dab[viol], dcd[viol]
    r = ab - cd
    loss = float((wv * r * r).sum() + (M * prior_inv).sum() - logdet)
    A, C = Vab[viol], Vcd[viol]
    G = (A.T * (wv * r / ab)) @ A - (C.T * (wv * r / cd)) @ C + prior_inv - np.linalg.inv(M)
    return loss, (2.0 * L @ G).ravel()


class _LSMLBase:
    _parameter_constraints: dict[str, list[Any]] = {
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "prior": [StrOptions({"identity", "covariance", "random"}), np.ndarray],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def _learn(self, Q: np.ndarray, weights: Any) -> None:
        # Every step is small (d x d factorisations, (n, d) x (d, d) products): all of it runs
        # on one BLAS thread. A threaded call anywhere in the fit (the prior's inverse, the
        # final eigh) woke OpenBLAS's workers, which then spin for a while and took the
        # second core from the fit (wall time twice the fitting thread's CPU time).
        with serial_blas():
            self._learn_serial(Q, weights)

    def _learn_serial(self, Q: np.ndarray, weights: Any) -> None:
        n, _, d = Q.shape
        if weights is None:
            w = np.ones(n)
        else:
            w = to_array(weights, "weights").astype(np.float64)
            if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise ValueError(
                    f"weights must be {n} finite non-negative numbers, not all zero; got shape "
                    f"{w.shape}"
                )
        w = w / w.sum()
        M0 = prior_metric(self.prior, Q.reshape(-1, d), self.random_state)
        prior_inv = np.linalg.inv(M0)
        L0 = components_from_metric(M0)
        Vab, Vcd = Q[:, 0] - Q[:, 1], Q[:, 2] - Q[:, 3]
        res = minimize(
            lsml_loss_grad,
            L0.ravel(),
            args=(Vab, Vcd, w, prior_inv),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": int(self.max_iter), "gtol": float(self.tol) * 1e-2},
        )
        L = res.x.reshape(d, d)
        if not np.isfinite(L).all():
            raise ValueError("LSML diverged (non-finite metric); check the scale of the data")
        if self.verbose:
            print(f"[LSML] {res.nit} iterations, loss {res.fun:.6g}: {res.message}")
        self.n_iter_ = max(1, int(res.nit))
        self.loss_ = float(res.fun)
        self.components_ = components_from_metric(L.T @ L)


class LSML(_LSMLBase, QuadrupletsLearnerMixin):
    """Least Squared-residual Metric Learning from quadruplets ``d(a, b) < d(c, d)``.

    Parameters
    ----------
    tol : float >= 0, default=1e-3
        Convergence tolerance (scaled for the L-BFGS gradient test).
    max_iter : int, default=1000
        Maximum L-BFGS iterations.
    prior : {"identity", "covariance", "random"} or ndarray (d, d), default="identity"
        Prior (and starting) metric.
    verbose : bool, default=False
    preprocessor : array_like, callable or None, default=None
    random_state : int, RandomState, Generator or None, default=None

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    n_iter_ : int
    loss_ : float
    n_features_in_ : int
    """

    _parameter_constraints = {**_LSMLBase._parameter_constraints, **PREPROCESSOR_CONSTRAINT}

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        tol: float = 1e-3,
        max_iter: int = 1000,
        prior: Any = "identity",
        verbose: bool = False,
        preprocessor: Any = None,
        random_state: Any = None,
    ):
        self.tol = tol
        self.max_iter = max_iter
        self.prior = prior
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state

    def fit(self, quadruplets: Any, weights: Any = None) -> LSML:
        """Learn the metric from quadruplets.

        Parameters
        ----------
        quadruplets : array_like (n, 4, n_features), or (n, 4) indices with a preprocessor
            ``d(a, b)`` should be smaller than ``d(c, d)``.
        weights : array_like (n,) or None
            Non-negative weight of each quadruplet (default: equal).

        Returns
        -------
        self : LSML
        """
        self._validate_params()
        Q = self._prepare(quadruplets, reset=True)
        self._learn(Q, weights)
        return self


class LSML_Supervised(_LSMLBase, SupervisedTwinMixin):
    """LSML on quadruplets drawn from labels: a same-class pair, then a different-class pair.

    Parameters
    ----------
    tol, max_iter, prior, verbose, random_state : as :class:`LSML`
    n_constraints : int or None, default=None
        Quadruplets to draw; None: ``20 * n_classes**2``.
    weights : array_like or None, default=None
        Weight of each drawn quadruplet.

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    classes_ : ndarray
    n_features_in_ : int
    """

    _parameter_constraints = {
        **_LSMLBase._parameter_constraints,
        **SUPERVISED_CONSTRAINTS,
        "weights": ["array-like", None],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        tol: float = 1e-3,
        max_iter: int = 1000,
        prior: Any = "identity",
        n_constraints: int | None = None,
        weights: Any = None,
        verbose: bool = False,
        random_state: Any = None,
    ):
        self.tol = tol
        self.max_iter = max_iter
        self.prior = prior
        self.n_constraints = n_constraints
        self.weights = weights
        self.verbose = verbose
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> LSML_Supervised:
        """Draw quadruplets from the labels and learn the metric.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        y : array_like (n_samples,)

        Returns
        -------
        self : LSML_Supervised
        """
        data = self._labelled(X, y)
        idx = quadruplets_from_labels(data, self._n_constraints(data), self.random_state)
        self._learn(data.X[idx], self.weights)
        self.classes_ = data.classes
        return self
