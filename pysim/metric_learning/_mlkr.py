"""Metric Learning for Kernel Regression (Weinberger & Tesauro, AISTATS 2007).

MLKR learns L so that the leave-one-out Nadaraya-Watson estimate
``ŷ_i = Σ_{j≠i} p_ij y_j`` with ``p_ij = softmax_j(-||L x_i - L x_j||²)`` fits y: the loss
is ``Σ_i (ŷ_i - y_i)²``. With ``W_ij = p_ij (ŷ_i - y_i)(y_j - ŷ_i)`` (rows sum to zero) the
gradient is ``4 L (M + Mᵀ - Xᵀ diag(colsum W) X)``, ``M = Xᵀ W X`` — the same structure as
NCA's, so the same blocked evaluation applies: W is produced one row block at a time from
``pysim.cdist`` in the projected space and reduced at once into the d x d matrix M and the
vector colsum(W). Memory is O(block x n + d²) where metric-learn holds several n x n
matrices. scipy's L-BFGS-B does the optimisation (as metric-learn).

The learned metric is what :class:`pysim.KNeighborsRegressor` (``metric_learner=MLKR()``)
and kernel regression want.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from .._distances import cdist, dot
from .._validation import serial_blas
from ._base import (
    IterationReporter,
    SupervisedMahalanobisMixin,
    _fix_signs,
    _seed,
    block_rows,
    check_n_components,
)


def mlkr_loss_grad(
    flat_L: np.ndarray, X: np.ndarray, y: np.ndarray, n_components: int, block: int | None = None
) -> tuple[float, np.ndarray]:
    """MLKR loss ``Σ (ŷ - y)²`` and its gradient in L (flattened), in row blocks."""
    n, d = X.shape
    L = flat_L.reshape(n_components, d)
    Z = np.ascontiguousarray(X @ L.T)
    XT = np.ascontiguousarray(X.T)
    rows = block or block_rows(n)
    # Below ~16M multiply-adds per call the kernels' thread hand-off costs more than it
    # saves (on a loaded 2-core machine, several times the work itself): run them serially.
    threads = 1 if n * n * max(d, n_components) < 1 << 24 else None
    M = np.zeros((d, d))
    colsum = np.zeros(n)
    loss = 0.0
    # Row blocks of a shifted softmax over squared distances, as in _nca._nca_blocks
    # (duplicates pairs them): MLKR normalises in place and weights by targets, NCA splits
    # each block by class, so each keeps the loop that fuses its own in-place updates.
    for b0 in range(0, n, rows):
        b1 = min(n, b0 + rows)
        m = b1 - b0
        D = cdist(Z[b0:b1], Z, "sqeuclidean", threads=threads)
        D[np.arange(m), np.arange(b0, b1)] = np.inf
        np.subtract(D.min(axis=1)[:, None], D, out=D)
        np.exp(D, out=D)
        D /= D.sum(axis=1)[:, None]  # P_B
        yhat = D @ y
        r = yhat - y[b0:b1]
        loss += float(r @ r)
        # W_B = P_B * r_i * (y_j - ŷ_i), in place.
        D *= y[None, :] - yhat[:, None]
        D *= r[:, None]
        colsum += D.sum(axis=0)
        M += X[b0:b1].T @ dot(D, XT, threads=threads)
    grad = 4.0 * (L @ (M + M.T - (X.T * colsum) @ X))
    return loss, grad.ravel()


class MLKR(SupervisedMahalanobisMixin):
    """Metric Learning for Kernel Regression: a metric for real-valued targets.

    Parameters
    ----------
    n_components : int or None, default=None
        Output dimension (None: n_features).
    init : {"auto", "identity", "pca", "random"} or ndarray (n_components, n_features), \
default="auto"
        Starting L; "auto" is PCA when reducing dimension, identity otherwise.
    tol : float or None, default=None
        L-BFGS tolerance (scipy's default when None).
    max_iter : int, default=1000
        Maximum L-BFGS iterations.
    verbose : bool, default=False
    random_state : int, RandomState, Generator or None, default=None
        Seeds ``init="random"``.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
    n_iter_ : int
    loss_ : float
        Final leave-one-out squared error.
    n_features_in_ : int
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "init": [StrOptions({"auto", "identity", "pca", "random"}), np.ndarray],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        n_components: int | None = None,
        *,
        init: Any = "auto",
        tol: float | None = None,
        max_iter: int = 1000,
        verbose: bool = False,
        random_state: Any = None,
    ):
        self.n_components = n_components
        self.init = init
        self.tol = tol
        self.max_iter = max_iter
        self.verbose = verbose
        self.random_state = random_state

    def _initial(self, X: np.ndarray, k: int) -> np.ndarray:
        n, d = X.shape
        init = self.init
        if isinstance(init, np.ndarray):
            L = np.asarray(init, dtype=np.float64)
            if L.shape != (k, d) or not np.isfinite(L).all():
                raise ValueError(f"init array must be finite with shape ({k}, {d}), got {L.shape}")
            return L.copy()
        if init == "auto":
            init = "pca" if k < min(n, d) else "identity"
        if init == "identity":
            return np.eye(k, d)
        if init == "random":
            return np.random.default_rng(_seed(self.random_state)).standard_normal((k, d))
        _, _, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
        L = np.zeros((k, d))
        L[: min(k, len(vt))] = vt[:k]
        return _fix_signs(L)

    def fit(self, X: Any, y: Any) -> MLKR:
        """Learn L from real-valued targets.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        y : array_like (n_samples,), real-valued

        Returns
        -------
        self : MLKR
        """
        self._validate_params()
        X, y = validate_data(self, X, y, ensure_min_samples=2, dtype=np.float64, y_numeric=True)
        X = np.ascontiguousarray(X)
        y = np.asarray(y, dtype=np.float64)
        k = check_n_components(self.n_components, X.shape[1])
        L0 = self._initial(X, k)
        report = IterationReporter("MLKR", self.verbose)
        # The loss is in y's units squared (5e5 on scikit-learn's diabetes targets), so
        # L-BFGS's absolute gradient tolerance was never met and every fit ran max_iter
        # iterations. Divided by the total sum of squares it is a fraction of y's variance
        # (1 - R² of the leave-one-out estimate): same minimiser, tolerances now relative.
        scale = float(((y - y.mean()) ** 2).sum()) or 1.0

        def fun(flat):
            loss, grad = mlkr_loss_grad(flat, X, y, k)
            report.loss = loss
            return loss / scale, grad / scale

        with serial_blas():
            res = minimize(
                fun,
                L0.ravel(),
                jac=True,
                method="L-BFGS-B",
                tol=self.tol,
                options={"maxiter": int(self.max_iter)},
                callback=report.callback,
            )
        report.done("converged" if res.success else f"stopped ({res.message})")
        self.components_ = np.ascontiguousarray(res.x.reshape(k, -1))
        self.n_iter_ = max(1, int(res.nit))
        self.loss_ = float(res.fun) * scale
        return self
