"""Metric Learning for Kernel Regression (Weinberger & Tesauro, AISTATS 2007).

MLKR learns L so that the leave-one-out Nadaraya-Watson estimate
``ŷ_i = Σ_{j≠i} p_ij y_j`` with ``p_ij = softmax_j(-||L x_i - L x_j||²)`` fits y: the loss
is ``Σ_i (ŷ_i - y_i)²``. With ``W_ij = p_ij (ŷ_i - y_i)(y_j - ŷ_i)`` (rows sum to zero) the
gradient is ``4 L (M + Mᵀ - Xᵀ diag(colsum W) X)``, ``M = Xᵀ W X`` — the same structure as
NCA's, so the same blocked evaluation applies: W is produced one row block at a time from
``pysim.cdist`` in the projected space and reduced at once into the d x d matrix M and the
vector colsum(W) (two BLAS products over the block's exponentials, W itself is never
formed). The exponentials come from pysim's SIMD kernel (``_base.nearest_shifted_exp``):
numpy's float64 exp, scalar libm on most CPUs, was ~60% of an evaluation. Threads take
fixed groups of blocks (``sum_block_groups``), summed in order: the same bits at any thread
count. Memory is O(block x n + d²) where metric-learn holds several n x n
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

from .._validation import resolve_threads, serial_blas
from ._base import (
    IterationReporter,
    SupervisedMahalanobisMixin,
    _fix_signs,
    _seed,
    block_rows,
    check_n_components,
    nearest_shifted_exp,
    sqeuclidean_block,
    sum_block_groups,
)


def mlkr_loss_grad(
    flat_L: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    n_components: int,
    block: int | None = None,
    threads: int | None = 1,
    checked: bool = False,
) -> tuple[float, np.ndarray]:
    """MLKR loss ``Σ (ŷ - y)²`` and its gradient in L (flattened), in row blocks.

    Parameters
    ----------
    flat_L : ndarray (n_components * n_features,)
    X : ndarray (n, n_features) float64, C-contiguous
    y : ndarray (n,) float64
    n_components : int
    block : int, optional
        Rows per block (default: about 2 MiB per block, and at least _MIN_BLOCKS blocks).
    threads : int or None, default=1
        Workers (None: every core). The blocks form a fixed number of groups, each summed
        in order, and the groups are summed in order whichever thread ran them, so the
        result is the same bits at any thread count.
    checked : bool, default=False
        Distances through the checked ``pysim.cdist`` (see ``_base.sqeuclidean_block``);
        an unchecked evaluation that comes out non-finite is repeated checked.
    """
    n, d = X.shape
    L = flat_L.reshape(n_components, d)
    Z = np.ascontiguousarray(X @ L.T)
    # [X, y X, y, 1]: one product E_B F of the unnormalised softmax block gives the row sums,
    # ŷ and P_B X, P_B (y X) at once (see _mlkr_blocks). y is centred first (ŷ - y and
    # y_j - ŷ_i do not change), so E (y X) - ŷ E X cancels little.
    yc = y - y.mean()
    F = np.concatenate([X, X * yc[:, None], yc[:, None], np.ones((n, 1))], axis=1)
    rows = block or min(block_rows(n), max(_MIN_ROWS, -(-n // _MIN_BLOCKS)))
    if block is None and block_rows(n) >= n:
        # One block holds everything (n <= 512): a thread hand-off per evaluation costs
        # more than it saves on a loaded machine, so small data runs as one block.
        rows = n
    loss, M, colsum = sum_block_groups(
        n,
        rows,
        _MAX_GROUPS,
        lambda starts: _mlkr_blocks(starts, rows, Z, X, F, yc, checked),
        resolve_threads(threads),
    )
    grad = 4.0 * (L @ (M + M.T - (X.T * colsum) @ X))
    if not checked and not (np.isfinite(loss) and np.isfinite(grad).all()):
        return mlkr_loss_grad(flat_L, X, y, n_components, block, threads, checked=True)
    return loss, grad.ravel()


#: Row blocks of at least _MIN_ROWS rows (below that numpy's per-call cost outweighs the
#: passes over a block), at least _MIN_BLOCKS of them when n allows (so that threads can
#: balance), in at most _MAX_GROUPS groups (each keeps an n-vector and a d x d partial sum).
_MIN_BLOCKS = 8
_MIN_ROWS = 128
_MAX_GROUPS = 32


def _mlkr_blocks(bounds, rows, Z, X, F, y, checked):
    """Loss, Σ_B X_Bᵀ (W_B X) and colsum(W) over the row blocks starting at `bounds`, with
    pysim's kernels on the calling thread (the caller parallelises over groups of blocks).

    W_B is never formed. With E the shifted exponentials of a block, s their row sums and
    P = E / s: ``W_ij = P_ij r_i (y_j - ŷ_i)``, so ``W_B X = (r/s) ∘ E (y X) - (r ŷ/s) ∘ E X``
    and ``colsum(W_B) = y ∘ Eᵀ(r/s) - Eᵀ(r ŷ/s)``: two matrix products over E (BLAS)
    replace eight numpy passes over the block.
    """
    n, d = X.shape
    M = np.zeros((d, d))
    colsum = np.zeros(n)
    loss = 0.0
    # Row blocks of a shifted softmax over squared distances, as in _nca._nca_blocks
    # (duplicates pairs them): MLKR weights by targets, NCA splits each block by class, so
    # each keeps the loop that fuses its own updates.
    for b0 in bounds:
        b1 = min(n, b0 + rows)
        E = nearest_shifted_exp(sqeuclidean_block(Z[b0:b1], Z, checked), b0)
        G = E @ F  # (m, 2d + 2): E X, E (y X), E y, row sums
        inv = 1.0 / G[:, -1]
        yhat = G[:, -2] * inv
        r = yhat - y[b0:b1]
        loss += float(r @ r)
        a = r * inv
        c = a * yhat
        M += X[b0:b1].T @ (a[:, None] * G[:, d : 2 * d] - c[:, None] * G[:, :d])
        H = np.stack([a, c], axis=1).T @ E  # (2, n)
        colsum += y * H[0] - H[1]
    return loss, M, colsum


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
            loss, grad = mlkr_loss_grad(flat, X, y, k, threads=None)
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
