"""ItemKNN: item-based collaborative filtering on a top-k item-item similarity.

Item i is the vector of its users' weights (a row of ``user_items.T``); the similarity of
items i and j is their dot product over a denominator that depends on the `similarity`
option, plus `shrinkage` (which damps similarities resting on few co-occurrences). "bm25"
and "tfidf" first reweight the item vectors (O(nnz) numpy work here, with the formulas of
the `implicit` package so results compare); the sparse x sparse product and the per-row
top-k run in C++ (csrc/recommend/item_knn.cpp) on pysim's thread pool, with the GIL
released, and never build the dense n_items^2 matrix.
"""

from __future__ import annotations

import sys
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval, StrOptions

from .. import _core
from .._validation import MAX_THREADS
from ._base import ItemItemRecommender, recommend_sparse
from ._input import parts

#: similarity -> (core normalisation code, weighting)
_SIMILARITIES = {
    "cosine": (1, None),
    "asymmetric": (2, None),
    "jaccard": (3, None),
    "bm25": (0, "bm25"),
    "tfidf": (1, "tfidf"),
    "dot": (0, None),
}
_CHUNK = 1024  # item rows per core call when a progress bar is shown


def _idf(item_users: sp.csr_matrix) -> np.ndarray:
    """Per user: log(n_items) - log1p(items of the user), clipped at 0 (as `implicit`)."""
    n_items = item_users.shape[0]
    df = np.bincount(item_users.indices, minlength=item_users.shape[1])
    return np.maximum(np.log(n_items) - np.log1p(df), 0.0)


def _bm25_length(item_users: sp.csr_matrix, b: float) -> np.ndarray:
    """Per item: BM25's length normalisation (1 - b) + b * row sum / mean row sum."""
    row_sums = np.asarray(item_users.sum(axis=1)).ravel()
    avg = row_sums.mean()
    return (1.0 - b) + b * row_sums / avg if avg > 0 else np.ones_like(row_sums)


def weight_items(item_users: sp.csr_matrix, weighting: str | None, k1: float, b: float):
    """Item vectors as compared: raw, BM25- or TF-IDF-weighted (a new CSR matrix)."""
    if weighting is None:
        return item_users
    w = item_users.copy()
    idf = _idf(item_users)[w.indices]
    if weighting == "tfidf":
        w.data = np.sqrt(w.data) * idf
    else:
        length = np.repeat(_bm25_length(item_users, b), np.diff(w.indptr))
        w.data = w.data * (k1 + 1.0) / (k1 * length + w.data) * idf
    w.eliminate_zeros()
    return w


def factor_binary(item_users: sp.csr_matrix, weighting: str | None, k1: float, b: float):
    """For 0/1 interactions: the weighted item vectors as (pattern, user_weight, item_factor).

    With every weight 1, BM25 and TF-IDF weights factor as ``w_ui = f_i * g_u`` (TF-IDF:
    ``f = 1``, ``g = idf``; BM25: ``f_i = (k1 + 1) / (k1 * length_i + 1)``, ``g = idf``), so
    ``dot(i, j) = f_i f_j sum_u g_u^2`` over the users i and j share: the core's pattern
    kernels add one per-user constant per co-occurrence (or count, with no weighting) instead
    of multiplying two stored weights. Users whose idf is 0 drop out, as their zero weights do
    in :func:`weight_items`. Returns the pattern (CSR, item rows), the per-user constants
    ``g^2`` (None: counts) and ``f`` (None: all ones), and the squared norms of the vectors.
    """
    if weighting is None:
        sq = np.diff(item_users.indptr).astype(np.float64)
        return item_users, None, None, sq
    idf = _idf(item_users)
    pattern = item_users
    if (idf <= 0).any():
        pattern = item_users.copy()
        pattern.data = (idf > 0)[pattern.indices].astype(np.float64)
        pattern.eliminate_zeros()
    g2 = np.where(idf > 0, idf * idf, 1.0)  # users with idf 0 have no entries left
    sq = pattern @ g2
    factor = None
    if weighting == "bm25":
        factor = (k1 + 1.0) / (k1 * _bm25_length(item_users, b) + 1.0)
        sq = factor * factor * sq
    return pattern, g2, factor, np.asarray(sq, dtype=np.float64)


class ItemKNN(ItemItemRecommender):
    """Item-based k-nearest-neighbour recommender.

    ``score(u, j) = sum_i w_ui * S[i, j]`` over the items i user u interacted with, where
    row i of S keeps the `n_neighbors` items most similar to i (the item itself excluded).

    Parameters
    ----------
    n_neighbors : int, default=100
        Neighbours kept per item (the K of item-kNN).
    similarity : {"cosine", "asymmetric", "jaccard", "bm25", "tfidf", "dot"}, default="cosine"
        With ``dot(i, j)`` the dot product of the two items' user-weight vectors and
        ``|i|`` the Euclidean norm: ``"cosine"`` ``dot / (|i| |j|)``; ``"asymmetric"``
        ``dot / (|i|^(2 alpha) |j|^(2 (1 - alpha)))`` (Aiolli 2013: conditional-probability
        like for 0/1 weights); ``"jaccard"`` ``dot / (|i|^2 + |j|^2 - dot)`` (Jaccard for
        0/1 weights, Tanimoto otherwise); ``"bm25"`` the dot product of BM25-weighted vectors
        (per user idf, per item length normalisation with `k1`, `b`); ``"tfidf"`` the cosine
        of TF-IDF-weighted vectors (``sqrt(w) * idf``); ``"dot"`` the plain dot product.
    shrinkage : float, default=0.0
        Added to every denominator (1 for "dot" and "bm25"): damps similarities backed by few
        common users.
    alpha : float, default=0.5
        Exponent of "asymmetric", in [0, 1] (0.5 is the cosine).
    k1 : float, default=1.2
        BM25 term saturation (> 0).
    b : float, default=0.75
        BM25 length normalisation, in [0, 1].
    threads : int or None, default=None
        Worker threads for fit and recommend; None uses every core.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_items, n_items), float32
        Row i holds the top `n_neighbors` similarities of item i.
    n_users_ : int
    n_items_ : int

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from pysim.recommend import ItemKNN
    >>> X = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1]]))
    >>> model = ItemKNN(n_neighbors=3).fit(X)
    >>> scores, items = model.recommend(0, N=2)
    >>> items.tolist()
    [2, 3]
    """

    _KIND = "ItemKNN"
    _parameter_constraints: dict[str, list[Any]] = {
        "n_neighbors": [Interval(Integral, 1, 2**31 - 1, closed="both")],
        "similarity": [StrOptions(set(_SIMILARITIES))],
        "shrinkage": [Interval(Real, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "k1": [Interval(Real, 0, None, closed="neither")],
        "b": [Interval(Real, 0, 1, closed="both")],
        "threads": [Interval(Integral, 1, MAX_THREADS, closed="both"), None],
    }

    def __init__(
        self,
        n_neighbors: int = 100,
        *,
        similarity: str = "cosine",
        shrinkage: float = 0.0,
        alpha: float = 0.5,
        k1: float = 1.2,
        b: float = 0.75,
        threads: int | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.similarity = similarity
        self.shrinkage = shrinkage
        self.alpha = alpha
        self.k1 = k1
        self.b = b
        self.threads = threads

    def _default_threads(self) -> Any:
        return self.threads

    def _fit_similarity(self, X: sp.csr_matrix, show_progress: bool) -> dict[str, Any]:
        from .._validation import resolve_threads

        for name in ("shrinkage", "alpha", "k1", "b"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)!r}")
        nthreads = resolve_threads(self.threads)
        norm, weighting = _SIMILARITIES[self.similarity]
        k1, b = float(self.k1), float(self.b)
        item_users = X.T.tocsr()
        item_users.sort_indices()
        empty = np.zeros(0, dtype=np.float64)
        if X.data.size and (X.data == 1.0).all():
            # 0/1 interactions (implicit feedback): the pattern kernels (see factor_binary).
            weighted, g2, factor, sq_norms = factor_binary(item_users, weighting, k1, b)
            binary = True
        else:
            weighted = weight_items(item_users, weighting, k1, b)
            sq_norms = np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel()
            g2 = factor = None
            binary = False
        weighted_t = X if weighted is item_users else weighted.T.tocsr()
        weighted_t.sort_indices()
        n_items = X.shape[1]
        iu, ui = parts(weighted), parts(weighted_t)
        if binary:  # the values are not read
            iu, ui = (iu[0], iu[1], empty), (ui[0], ui[1], empty)
        args = (
            *iu,
            *ui,
            np.ascontiguousarray(sq_norms, dtype=np.float64),
            norm,
            float(self.shrinkage),
            float(self.alpha),
            int(self.n_neighbors),
        )
        extra = (
            binary,
            empty if g2 is None else np.ascontiguousarray(g2, dtype=np.float64),
            empty if factor is None else np.ascontiguousarray(factor, dtype=np.float64),
        )
        if not show_progress:
            indptr, indices, data = _core.rec_knn_similarity(*args, 0, n_items, nthreads, *extra)
        else:
            bar = _progress(n_items)
            pieces = []
            try:
                for start in range(0, n_items, _CHUNK):
                    end = min(n_items, start + _CHUNK)
                    pieces.append(_core.rec_knn_similarity(*args, start, end, nthreads, *extra))
                    bar(end)
            finally:
                bar.close()
            counts = np.concatenate([np.diff(p[0]) for p in pieces])
            indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            indices = np.concatenate([p[1] for p in pieces])
            data = np.concatenate([p[2] for p in pieces])
        S = sp.csr_matrix((data, indices, indptr), shape=(n_items, n_items))
        return {"similarity_": S}

    def _score(self, rows, banned, exclude_seen, N, threads):
        return recommend_sparse(self.similarity_, rows, banned, exclude_seen, N, threads)

    def _model_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        S = self.similarity_
        return {}, {
            "s_indptr": np.ascontiguousarray(S.indptr, dtype=np.int64),
            "s_indices": np.ascontiguousarray(S.indices, dtype=np.int32),
            "s_data": np.ascontiguousarray(S.data, dtype=np.float32),
        }

    def _set_model_state(self, meta, arrays, n_items):
        S = sp.csr_matrix(
            (
                np.array(arrays["s_data"], dtype=np.float32),
                np.array(arrays["s_indices"]),
                np.array(arrays["s_indptr"]),
            ),
            shape=(n_items, n_items),
        )
        S.check_format(full_check=True)
        if not S.has_sorted_indices or S.data.size and not np.isfinite(S.data).all():
            raise ValueError("stored similarity is not canonical")
        return {"similarity_": S}


class _progress:
    """tqdm bar when tqdm is installed, a plain stderr line otherwise."""

    def __init__(self, total: int):
        self.total = total
        self.bar = None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            print(f"ItemKNN.fit: 0/{total} items", file=sys.stderr, flush=True)
        else:
            self.bar = tqdm(total=total, desc="ItemKNN.fit", unit="item")

    def __call__(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        else:
            print(f"ItemKNN.fit: {done}/{self.total} items", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
