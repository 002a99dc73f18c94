"""Neighbourhood Components Analysis (Goldberger et al., 2004) in O(n * block) memory.

NCA learns L to maximise the expected number of correctly classified points under a
stochastic nearest-neighbour rule: point i picks j with probability
``p_ij = softmax_j(-||L x_i - L x_j||²)`` (``p_ii = 0``), and the objective is
``f(L) = Σ_i p_i`` with ``p_i = Σ_{j in class(i)} p_ij``.

The gradient in closed form. With ``W_ij = p_ij ([y_i = y_j] - p_i)`` (every row of W sums
to zero) and ``c = colsum(W)``:

    ∂f/∂L = 2 L (M + Mᵀ - Xᵀ diag(c) X),   M = Σ_i x_i (W_i X) = Xᵀ W X.

scikit-learn builds the n x n matrices P and W + Wᵀ at once (n = 20,000 needs 3.2 GB per
copy). Here W is produced one row block at a time and immediately reduced into the d x d
matrix M and the vector c, so memory is O(block * n + d²). Per block: the squared distances
in the projected space come from ``pysim.cdist`` (SIMD, GIL released), the softmax is a few
in-place passes over a cache-sized block with pysim's SIMD exponential
(``_base.nearest_shifted_exp``; numpy's float64 exp is scalar libm on most CPUs), and
``W_B X`` is ``pysim.dot``. Threads
take whole groups of blocks from a shared counter (``sum_block_groups``; the caller works too), so
a thread the OS leaves waiting on a loaded machine holds up one group, not a fixed share;
the groups are fixed by the data and summed in order, so the result is the same bits at any
thread count. Because the training rows are sorted by class (see ``_base``), the
same-class mask of a block is a handful of column ranges rather than an n-wide comparison.
Up to 512 rows the whole evaluation is one compiled call (csrc/metric/nca.hpp): on data like
wine (124 x 13) a dozen numpy calls cost more in overhead than their arithmetic.

The optimiser is scipy's L-BFGS-B on ``-f``, with scikit-learn's settings (``tol`` for
both the gradient and the relative decrease), so iteration counts are comparable.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.utils._param_validation import Interval, StrOptions

from .. import _core
from .._distances import cdist, dot
from .._validation import resolve_threads, serial_blas
from ._base import (
    IterationReporter,
    LabelledData,
    SupervisedMahalanobisMixin,
    block_rows,
    check_labelled,
    check_n_components,
    initial_components,
    nearest_shifted_exp,
    sqeuclidean_block,
    sum_block_groups,
)


def nca_loss_grad(
    flat_L: np.ndarray,
    data: LabelledData,
    n_components: int,
    block: int | None = None,
    threads: int | None = 1,
) -> tuple[float, np.ndarray]:
    """Negative NCA objective and its gradient (for a minimiser).

    Parameters
    ----------
    flat_L : ndarray, shape (n_components * n_features,)
        L, row-major.
    data : LabelledData
        Training data sorted by class.
    n_components : int
    block : int, optional
        Rows per block; default keeps a block near 2 MiB (and at most n / 8 rows, so that
        threads have several blocks each).
    threads : int or None, default=1
        Workers (None: every core). The result does not depend on the thread count: the
        blocks form a fixed number of groups, each summed in order, and the groups are
        summed in order whichever thread ran them.

    Returns
    -------
    loss : float
        ``-Σ_i p_i``.
    grad : ndarray, shape (n_components * n_features,)
    """
    X = data.X
    n, d = X.shape
    L = flat_L.reshape(n_components, d)
    if (block or block_rows(n)) >= n:
        return _nca_dense(L, data, threads)
    rows = block or min(block_rows(n), max(_MIN_ROWS, -(-n // _MIN_BLOCKS)))
    Z = np.ascontiguousarray(X @ L.T)
    XT = data.XT
    # Groups of consecutive blocks, as many as memory allows (each keeps an n-vector and a
    # d x d matrix until the end) up to _MAX_GROUPS: their number depends on the data only.
    # Each group runs pysim's kernels serially: the numpy passes between the kernels are
    # single-threaded, so parallelising whole groups keeps every core busy (numpy and pysim
    # release the GIL on these array sizes).
    total, M, colsum = sum_block_groups(
        n,
        rows,
        min(_MAX_GROUPS, max(_MIN_BLOCKS, _GROUP_ELEMS // (n + d * d))),
        lambda starts: _nca_blocks(starts, rows, Z, X, XT, data),
        resolve_threads(threads),
    )
    inner = M + M.T - (X.T * colsum) @ X
    grad = 2.0 * (L @ inner)
    return -total, -grad.ravel()


#: Blocked path: at least this many row blocks (so threads can balance), of at least
#: _MIN_ROWS rows; at most _MAX_GROUPS groups of blocks, whose partial sums (an n-vector and
#: a d x d matrix each) hold at most about _GROUP_ELEMS float64 in all.
_MIN_BLOCKS = 8
_MIN_ROWS = 64
_MAX_GROUPS = 32
_GROUP_ELEMS = 1 << 22


def _nca_dense(
    L: np.ndarray, data: LabelledData, threads: int | None = 1
) -> tuple[float, np.ndarray]:
    """`nca_loss_grad` when the whole n x n matrix is one block (n <= 512): one compiled call
    (``_core.nca_dense_objective``, csrc/metric/nca.hpp). On small data (wine: 124 x 13) the
    arithmetic is microseconds and per-call overhead was most of a numpy evaluation. A loss
    or gradient that comes out non-finite (L overflowing in a line search) is recomputed by
    `_nca_dense_checked`, whose distances go through ``pysim.cdist`` (magnitude rescaling,
    and an error naming a NaN).
    """
    f, grad = _core.nca_dense_objective(
        data.X, data.XT, np.ascontiguousarray(L), data.starts, resolve_threads(threads)
    )
    if not (np.isfinite(f) and np.isfinite(grad).all()):
        return _nca_dense_checked(L, data)
    return -f, -grad.ravel()


def _nca_dense_checked(L: np.ndarray, data: LabelledData) -> tuple[float, np.ndarray]:
    """`_nca_dense` in numpy with checked distances. With E the shifted exponentials, s their
    row sums and A = E ∘ same-class, ``W = diag(1/s) A - diag(p/s) E``, and two products
    ``E [X, 1]``, ``A [X, 1]`` give ``W X``, the row sums and p at once."""
    X, X1 = data.X, data.X_ones
    d = X.shape[1]
    Z = X @ L.T
    E = nearest_shifted_exp(sqeuclidean_block(Z, Z, True), 0)
    A = E * data.same_class
    GE = E @ X1  # (n, d + 1): E X, row sums s
    GA = A @ X1  # A X, same-class sums s p
    inv = 1.0 / GE[:, d]
    p = GA[:, d] * inv
    q = p * inv
    WX = inv[:, None] * GA[:, :d] - q[:, None] * GE[:, :d]
    colsum = inv @ A - q @ E
    M = X.T @ WX
    # ∂f/∂L = 2 L (M + Mᵀ - Xᵀ diag(colsum W) X), as the blocked path.
    grad = 2.0 * (L @ (M + M.T - (X.T * colsum) @ X))
    return -float(p.sum()), -grad.ravel()


def _nca_blocks(bounds, rows, Z, X, XT, data):
    """Loss, Σ_B X_Bᵀ (W_B X) and colsum(W) over the row blocks starting at `bounds`, with
    pysim's kernels on the calling thread (the caller parallelises over groups of blocks)."""
    starts, codes = data.starts, data.codes
    n, d = X.shape
    M = np.zeros((d, d))
    colsum = np.zeros(n)
    total = 0.0
    for b0 in bounds:
        b1 = min(n, b0 + rows)
        m = b1 - b0
        D = nearest_shifted_exp(cdist(Z[b0:b1], Z, "sqeuclidean", threads=1), b0)
        norm = D.sum(axis=1)
        # Same-class probability mass of each row, one class run at a time.
        segments = []
        p = np.empty(m)
        for c in range(codes[b0], codes[b1 - 1] + 1):
            r0, r1 = max(b0, starts[c]) - b0, min(b1, starts[c + 1]) - b0
            seg = D[r0:r1, starts[c] : starts[c + 1]].copy()
            p[r0:r1] = seg.sum(axis=1)
            segments.append((r0, r1, c, seg))
        p /= norm
        total += p.sum()
        # W_ij = P_ij ([same] - p_i) with P_ij = D_ij / norm_i, built in place.
        D *= (-p / norm)[:, None]
        for r0, r1, c, seg in segments:
            seg /= norm[r0:r1, None]
            D[r0:r1, starts[c] : starts[c + 1]] += seg
        colsum += D.sum(axis=0)
        A = dot(D, XT, threads=1)  # W_B X, shape (m, d)
        M += X[b0:b1].T @ A
    return total, M, colsum


class NCA(SupervisedMahalanobisMixin):
    """Neighbourhood Components Analysis: a Mahalanobis metric for nearest-neighbour rules.

    Learns L maximising the expected leave-one-out accuracy of a stochastic nearest-neighbour
    classifier (softmax over squared distances in the projected space), with the gradient
    in closed form and scipy's L-BFGS-B. The n x n softmax is processed in row blocks, so
    memory grows as O(n * block), not O(n²): 20,000 points of 50 dimensions fit in well
    under 1 GB.

    Parameters
    ----------
    n_components : int or None, default=None
        Dimension of the learned space; None keeps the number of features.
    max_iter : int, default=100
        Maximum L-BFGS iterations.
    tol : float, default=1e-5
        Convergence tolerance (scipy ``minimize(tol=...)``, as scikit-learn's NCA).
    init : {"auto", "identity", "pca", "lda", "random"} or ndarray of shape \
(n_components, n_features), default="auto"
        Starting L. "auto" is LDA when ``n_components <= n_classes - 1``, PCA when
        reducing dimension otherwise, identity when not reducing.
    random_state : int, numpy Generator/RandomState or None, default=None
        Seeds ``init="random"``; every other step is deterministic.
    verbose : bool, default=False
        Print the loss and seconds of every iteration.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features), float64
        The learned L: ``transform(X) == X @ components_.T``.
    n_iter_ : int
        L-BFGS iterations run.
    loss_ : float
        Final objective, the expected number of correctly classified training points.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when `X` had string feature names.

    Notes
    -----
    Every class needs at least 2 samples and ``y`` at least 2 classes (``ValueError``
    otherwise).

    Examples
    --------
    >>> import pysim
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> Z = pysim.NCA(n_components=2, random_state=0).fit_transform(X, y)
    >>> Z.shape
    (150, 2)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"auto", "identity", "pca", "lda", "random"}), np.ndarray],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        n_components: int | None = None,
        *,
        max_iter: int = 100,
        tol: float = 1e-5,
        init: Any = "auto",
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> NCA:
        """Learn L from labelled data.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like, shape (n_samples,)
            Class labels; at least 2 classes, each with at least 2 samples.

        Returns
        -------
        self : NCA

        Raises
        ------
        ValueError
            NaN/inf, a single class, a class with one sample, n_components > n_features,
            bad parameters.
        """
        self._validate_params()  # tol=nan, max_iter=0, ... -> InvalidParameterError (ValueError)
        data = check_labelled(self, X, y)
        max_iter = int(self.max_iter)
        k = check_n_components(self.n_components, data.X.shape[1])
        L0 = initial_components(self.init, data, k, self.random_state)
        report = IterationReporter("NCA", self.verbose)

        def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
            loss, grad = nca_loss_grad(flat, data, k, threads=None)
            report.loss = loss
            return loss, grad

        with serial_blas():
            result = minimize(
                fun,
                L0.ravel(),
                method="L-BFGS-B",
                jac=True,
                tol=float(self.tol),
                options={"maxiter": max_iter},
                callback=report.callback,
            )
        report.done("converged" if result.success else f"stopped ({result.message})")
        self.components_ = np.ascontiguousarray(result.x.reshape(k, -1))
        self.n_iter_ = max(1, int(result.nit))
        self.loss_ = float(-result.fun)
        self.classes_ = data.classes
        return self
