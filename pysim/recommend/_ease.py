"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data").

The item-item weights B minimise ``|X - X B|^2 + l2 |B|^2`` with ``diag(B) = 0``; in closed
form ``P = (X^T X + l2 I)^-1`` and ``B = -P / diag(P)`` column-wise, zero diagonal. B is
dense by nature, so the model holds one (n_items, n_items) float32 matrix and nothing
bigger: the Gram matrix is written into that buffer by the C++ sparse product
(csrc/recommend/item_knn.cpp), factored and inverted in place by LAPACK (spotrf + spotri on
its Fortran-order view, so no copy), and turned into B in place by the core (mirror the
triangle, scale the columns). float32 is ample here: with l2 = 500 the regularised Gram
matrix is well conditioned. Items without any interaction have zero weights and are left
out of the matrix (they score 0). Item counts whose matrix does not fit in memory are
refused with a MemoryError before anything is allocated.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from sklearn.utils._param_validation import Interval

from .. import _core
from .._distances import _physical_memory
from .._validation import resolve_threads
from ._base import ItemItemRecommender, recommend_dense
from ._input import parts


def dense_weights_bytes(n_items: int) -> int:
    """Bytes of EASE's dense float32 weight matrix for `n_items` items."""
    return n_items * n_items * 4


class EASE(ItemItemRecommender):
    """Item-item weights learned in closed form by ridge regression (EASE).

    ``score(u, j) = sum_i w_ui * B[i, j]``, with B the solution of
    ``min |X - X B|^2 + l2 |B|^2`` subject to ``diag(B) = 0``.

    Parameters
    ----------
    l2 : float, default=500.0
        Ridge penalty (> 0). Larger: smoother weights, more popularity bias.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_items, n_items), float32
        The weights B as a sparse matrix (built on access; B is dense, so this holds about
        n_items^2 entries).
    n_users_ : int
    n_items_ : int

    Notes
    -----
    Fitting costs O(n_items^3) (a Cholesky factorisation and inverse) and n_items^2 * 4
    bytes: about 0.4 GB and some seconds for 10,000 items.

    Examples
    --------
    >>> import numpy as np
    >>> from pysim.recommend import EASE
    >>> X = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1]])
    >>> scores, items = EASE(l2=1.0).fit(X).recommend(0, N=2)
    >>> items.tolist()
    [2, 3]
    """

    _KIND = "EASE"
    _parameter_constraints: dict[str, list[Any]] = {
        "l2": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, l2: float = 500.0):
        self.l2 = l2

    def _fit_similarity(self, X: sp.csr_matrix, show_progress: bool) -> dict[str, Any]:
        if not np.isfinite(self.l2):
            raise ValueError(f"l2 must be finite, got {self.l2!r}")
        # Items nobody interacted with have B rows and columns of zeros (their Gram row is
        # l2 * e_i): leave them out of the inverse, which costs O(n_active^3).
        active = np.flatnonzero(np.diff(X.tocsc().indptr) > 0).astype(np.int32)
        n = len(active)
        need = dense_weights_bytes(n)
        limit = min(int(np.iinfo(np.intp).max), _physical_memory())
        if need > limit:
            raise MemoryError(
                f"EASE needs a dense ({n}, {n}) float32 matrix, {need / 2**30:.1f} GiB, more "
                f"than this machine's {limit / 2**30:.1f} GiB of memory; use ItemKNN"
            )
        if n == 0:  # no interaction at all: every item scores 0
            return {"_weights": np.zeros((0, 0), dtype=np.float32), "_active": active}
        nthreads = resolve_threads(None)
        Xa = X[:, active]
        Xa.sort_indices()
        item_users = Xa.T.tocsr()
        item_users.sort_indices()
        G = np.empty((n, n), dtype=np.float32)
        _core.rec_gram_dense(*parts(item_users), *parts(Xa), G, nthreads)
        G.flat[:: n + 1] += np.float32(self.l2)
        # G is symmetric, so its transpose (a Fortran-order view) is G itself: LAPACK works
        # in place on the view's upper triangle, which is G's lower triangle in C order.
        F = G.T
        c, info = lapack.spotrf(F, lower=0, clean=0, overwrite_a=1)
        if info != 0:
            raise ValueError(f"the regularised Gram matrix is not positive definite (info={info})")
        inv, info = lapack.spotri(c, lower=0, overwrite_c=1)
        if info != 0:
            raise ValueError(f"inverting the regularised Gram matrix failed (info={info})")
        W = np.ascontiguousarray(inv.T)  # a no-op when LAPACK worked in place
        _core.rec_ease_weights(W, False, nthreads)
        return {"_weights": W, "_active": active}

    @property
    def similarity_(self) -> sp.csr_matrix:
        """The weights B, (n_items, n_items) float32 CSR (about n_items^2 entries)."""
        self._check_fitted()
        coo = sp.coo_matrix(self._weights)
        a = self._active.astype(np.int64)
        n = self.n_items_
        return sp.csr_matrix((coo.data, (a[coo.row], a[coo.col])), shape=(n, n))

    def _score(self, rows, banned, exclude_seen, N, threads):
        return recommend_dense(
            self._weights, self._active, self.n_items_, rows, banned, exclude_seen, N, threads
        )

    def _model_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {}, {"weights": self._weights, "active": self._active}

    def _set_model_state(self, meta, arrays, n_items):
        W = np.array(arrays["weights"], dtype=np.float32, order="C")
        active = np.array(arrays["active"], dtype=np.int32)
        n = len(active)
        if W.shape != (n, n):
            raise ValueError(f"stored weights have shape {W.shape}, expected ({n}, {n})")
        if n and (active.min() < 0 or active.max() >= n_items or (np.diff(active) <= 0).any()):
            raise ValueError("stored active items are not ascending item ids")
        if not np.isfinite(W).all():
            raise ValueError("stored weights contain NaN or infinity")
        return {"_weights": W, "_active": active}
