"""Sparse Distance Metric Learning (Qi, Tang, Zha, Chua & Zhang, ICML 2009).

SDML fits a sparse precision matrix: M minimises ``tr(M S) - log det M + λ ||M||_1,off`` with
``S = M0⁻¹ + balance_param · Σ_i y_i v_i v_iᵀ`` (v_i the pair differences, y_i = ±1), which
is the graphical lasso on S. ``S`` is one d x d product (``Vᵀ diag(y) V``), and the graphical
lasso is scikit-learn's, as in metric-learn.

A non positive-definite S (many dissimilar pairs pull it negative) has no SDML solution: the
objective is unbounded along S's negative directions. metric-learn then warns that the
balance parameter should be decreased and often fails; here that advice is followed
automatically, as a documented fallback instead of a silent NaN metric: the pair term's
weight is lowered to the largest value at which S stays positive definite with its smallest
eigenvalue (relative to the prior, in the prior's whitened frame) at ``_MIN_RELATIVE_EIG``
(``shifted_ = True``, the weight used in ``balance_param_``). An earlier version shifted S's
eigenvalues up instead, which keeps the (unbounded) pair term at full weight and gives the
most-negative direction a thousandfold precision: the metric collapsed onto a few directions
and fell below the Euclidean one on digits. If the graphical lasso still cannot solve S,
its (regularised) inverse is used (``glasso_failed_ = True``); non-convergence of the lasso
within its iteration budget is not an error.
"""

from __future__ import annotations

import warnings
from numbers import Real
from typing import Any

import numpy as np
from sklearn.covariance import graphical_lasso
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from .._validation import serial_blas
from ._base import components_from_metric, prior_metric
from ._weakly import (
    PREPROCESSOR_CONSTRAINT,
    SUPERVISED_CONSTRAINTS,
    PairsLearnerMixin,
    SupervisedTwinMixin,
)

#: Smallest eigenvalue of S relative to the prior's that the pair weight may bring it to.
_MIN_RELATIVE_EIG = 0.1


class _SDMLBase:
    _parameter_constraints: dict[str, list[Any]] = {
        "balance_param": [Interval(Real, 0, None, closed="left")],
        "sparsity_param": [Interval(Real, 0, None, closed="left")],
        "prior": [StrOptions({"identity", "covariance", "random"}), np.ndarray],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def _learn(self, P: np.ndarray, y: np.ndarray) -> None:
        with serial_blas():  # small d x d factorisations: OpenBLAS threads only cost here
            self._learn_serial(P, y)

    def _learn_serial(self, P: np.ndarray, y: np.ndarray) -> None:
        d = P.shape[2]
        M0 = prior_metric(self.prior, P.reshape(-1, d), self.random_state)
        diff = P[:, 0] - P[:, 1]
        S0 = np.linalg.inv(M0)
        S0 = (S0 + S0.T) / 2.0
        K = (diff.T * y) @ diff
        K = (K + K.T) / 2.0
        eta = float(self.balance_param)
        # In S0's whitened frame S = S0^{1/2} (I + eta * mu-space) S0^{1/2}: S is positive
        # definite with relative smallest eigenvalue >= r iff 1 + eta * mu_min >= r.
        w0, V0 = np.linalg.eigh(S0)
        w0 = np.clip(w0, 1e-12 * max(float(w0.max()), np.finfo(np.float64).tiny), None)
        R = V0 / np.sqrt(w0)  # S0^{-1/2} up to rotation
        mu_min = float(np.linalg.eigvalsh(R.T @ K @ R).min())
        self.shifted_ = bool(1.0 + eta * mu_min < _MIN_RELATIVE_EIG)
        if self.shifted_:
            eta = (1.0 - _MIN_RELATIVE_EIG) / -mu_min
        self.balance_param_ = eta
        S = S0 + eta * K
        w, V = np.linalg.eigh(S)
        w = np.clip(w, _MIN_RELATIVE_EIG * float(w0.min()), None)  # rounding only
        self.glasso_failed_ = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                _, M = graphical_lasso(S, alpha=float(self.sparsity_param), max_iter=100)
            if not np.isfinite(M).all() or np.linalg.eigvalsh(M).min() < 0:
                raise FloatingPointError("graphical lasso returned a non-PSD matrix")
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            self.glasso_failed_ = True
            M = (V / w) @ V.T
        if self.verbose:
            print(f"[SDML] shifted={self.shifted_} glasso_failed={self.glasso_failed_}")
        self.components_ = components_from_metric(M)


class SDML(_SDMLBase, PairsLearnerMixin):
    """Sparse Distance Metric Learning from similar / dissimilar pairs (graphical lasso).

    Parameters
    ----------
    balance_param : float >= 0, default=0.5
        Weight of the pair term against the prior.
    sparsity_param : float >= 0, default=0.01
        L1 penalty on the off-diagonal of M (graphical lasso ``alpha``).
    prior : {"identity", "covariance", "random"} or ndarray (d, d), default="identity"
    verbose : bool, default=False
    preprocessor : array_like, callable or None, default=None
    random_state : int, RandomState, Generator or None, default=None

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    threshold_ : float
    shifted_ : bool
        Whether the pair weight had to be lowered below `balance_param` to keep the
        graphical-lasso input positive definite (see the module notes).
    balance_param_ : float
        The pair weight used.
    glasso_failed_ : bool
        Whether the graphical lasso failed and the inverse was used instead.
    n_features_in_ : int
    """

    _parameter_constraints = {**_SDMLBase._parameter_constraints, **PREPROCESSOR_CONSTRAINT}

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        balance_param: float = 0.5,
        sparsity_param: float = 0.01,
        prior: Any = "identity",
        verbose: bool = False,
        preprocessor: Any = None,
        random_state: Any = None,
    ):
        self.balance_param = balance_param
        self.sparsity_param = sparsity_param
        self.prior = prior
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state

    def fit(self, pairs: Any, y: Any, calibration_params: dict | None = None) -> SDML:
        """Learn the metric from labelled pairs, then calibrate ``threshold_`` on them.

        Parameters
        ----------
        pairs : array_like (n_pairs, 2, n_features), or (n_pairs, 2) indices with a preprocessor
        y : array_like (n_pairs,), +1 / -1
        calibration_params : dict or None
            Passed to :meth:`calibrate_threshold`.

        Returns
        -------
        self : SDML
        """
        self._validate_params()
        P, y = self._fit_pairs(pairs, y)
        self._learn(P, y)
        self.calibrate_threshold(P, y, **(calibration_params or {}))
        return self


class SDML_Supervised(_SDMLBase, SupervisedTwinMixin):
    """SDML on pairs drawn from class labels.

    Parameters
    ----------
    balance_param, sparsity_param, prior, verbose, random_state : as :class:`SDML`
    n_constraints : int or None, default=None
        Similar and dissimilar pairs to draw each; None: ``20 * n_classes**2``.

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    shifted_, glasso_failed_ : bool
    classes_ : ndarray
    n_features_in_ : int
    """

    _parameter_constraints = {**_SDMLBase._parameter_constraints, **SUPERVISED_CONSTRAINTS}

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        balance_param: float = 0.5,
        sparsity_param: float = 0.01,
        prior: Any = "identity",
        n_constraints: int | None = None,
        verbose: bool = False,
        random_state: Any = None,
    ):
        self.balance_param = balance_param
        self.sparsity_param = sparsity_param
        self.prior = prior
        self.n_constraints = n_constraints
        self.verbose = verbose
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> SDML_Supervised:
        """Draw pairs from the labels and learn the metric.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        y : array_like (n_samples,)

        Returns
        -------
        self : SDML_Supervised
        """
        return self._fit_on_drawn_pairs(X, y)
