"""BruteForceIndex: exact k-NN and radius search by fused blocked scans (csrc/brute/).

The class is a thin owner of numpy arrays; the compiled functions it calls are stateless.
Why: the index can then keep a *reference* to the caller's C-contiguous matrix (no copy), and
``add`` can swap in a new buffer atomically (build everything, then assign) so a failed or
interrupted ``add`` leaves the index exactly as it was, and a query running in another thread
keeps the arrays it started with alive.

Storage after ``add``: the first ``add`` copies the rows into a buffer the index owns, with
spare capacity that doubles as needed (like ``std::vector``), so repeated small adds cost
amortised O(rows added); the caller's original array is then no longer referenced.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import _core
from ._index_base import PersistMixin, SearchIndex, prepare_queries, split_csr
from ._validation import (
    METRICS,
    MetricMapping,
    as_matrix,
    by_dtype,
    check_factor,
    check_int,
    check_metric,
    resolve_metric,
    resolve_threads,
    result_dtype,
    to_array,
)

_FORMAT = 1  # version of this index's state inside the pysim container


class BruteForceIndex(SearchIndex, PersistMixin):
    """Exact nearest-neighbour search by brute force, for every metric, float32 or float64.

    Distances are computed in blocks (register-blocked SIMD tiles for batches of queries, a
    streaming one-to-many scan for one or two queries) and fed straight into per-query
    bounded heaps; the full distance matrix never exists. The fast float path ranks by
    ``|x|² + |y|² − 2 x·y``; every candidate that its rounding error bound cannot separate
    from the k-th is re-ranked in float64, so results equal a float64 brute-force reference
    (ties broken by the smaller row number) and distances are the float64 values rounded to
    the index dtype.

    Parameters
    ----------
    data : array_like, shape (n, d) or (d,)
        Rows to index. float32 stays float32; any other numeric dtype is stored as float64.
        A C-contiguous array of the storage dtype is referenced, not copied: do not modify
        it while the index uses it. Must be finite. ``n`` may be 0 (then use :meth:`add`).
    metric : {"sqeuclidean", "euclidean", "cosine", "ip", "mahalanobis"}, default="sqeuclidean"
        ``"ip"`` is ``1 − a·b``; ``"cosine"`` treats zero vectors as distance 1.
    VI : array_like, shape (d, d), optional
        Symmetric positive semi-definite matrix for ``"mahalanobis"`` (as in
        :func:`scipy.spatial.distance.cdist`). The index then stores ``data @ L.T`` (a copy)
        with ``VI = Lᵀ L`` and searches it with the Euclidean metric.

    Attributes
    ----------
    dim : int
        Number of columns.
    metric : str
        The metric name given at construction.
    dtype : numpy.dtype
        Storage dtype (float32 or float64); queries are cast to it and distances use it.

    Examples
    --------
    >>> import numpy as np, pysim
    >>> X = np.random.default_rng(0).random((1000, 16), dtype=np.float32)
    >>> index = pysim.BruteForceIndex(X, metric="euclidean")
    >>> dist, idx = index.query(X[:5], k=3)
    >>> idx[:, 0].tolist()
    [0, 1, 2, 3, 4]
    """

    _KIND = "brute"

    def __init__(self, data: Any, metric: str = "sqeuclidean", *, VI: Any = None) -> None:
        check_metric(metric)
        arr = to_array(data, "data")
        dtype = result_dtype(arr)
        X = as_matrix(arr, "data", dtype)
        mapping = resolve_metric(metric, VI, X.shape[1])
        X = mapping.map_rows(X, dtype, "data") if mapping.L is not None else X
        self._setup(X, mapping, None if VI is None else np.asarray(VI, np.float64))

    # -- construction helpers ----------------------------------------------------------------

    def _setup(self, X: np.ndarray, mapping: MetricMapping, VI: np.ndarray | None):
        self._mapping = mapping
        self._metric = mapping.name
        self._dtype = X.dtype
        self._code = mapping.core
        self._L = mapping.L
        self._VI = VI
        self._lock = threading.Lock()
        self._knn = by_dtype(X.dtype, _core.brute_knn_f32, _core.brute_knn_f64)
        self._radius = by_dtype(X.dtype, _core.brute_radius_f32, _core.brute_radius_f64)
        norms = self._norms_of(X, resolve_threads(None), "data")
        # Published state: (rows, squared norms, max squared norm), replaced as one tuple.
        self._state = (X, norms, float(norms.max()) if len(norms) else 0.0)
        self._buf: np.ndarray | None = None  # owned row buffer with spare capacity (after add)
        self._norm_buf: np.ndarray | None = None

    def _norms_of(self, X: np.ndarray, threads: int, name: str) -> np.ndarray:
        norms = by_dtype(self._dtype, _core.brute_sqnorms_f32, _core.brute_sqnorms_f64)(X, threads)
        limit = by_dtype(
            self._dtype, _core.brute_max_safe_sqnorm_f32, _core.brute_max_safe_sqnorm_f64
        )
        if len(norms) and not float(norms.max()) <= limit:
            raise ValueError(
                f"{name} has values too large for {self._dtype} distances "
                f"(a squared norm exceeds {limit:.3g}); "
                + ("use float64" if self._dtype == np.float32 else "scale the data down")
            )
        return norms

    # -- public properties -------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Number of columns of the indexed rows."""
        return int(self._state[0].shape[1])

    @property
    def metric(self) -> str:
        """Metric name given at construction."""
        return self._metric

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype: float32 or float64."""
        return self._dtype

    def __len__(self) -> int:
        return int(self._state[0].shape[0])

    def __repr__(self) -> str:
        return (
            f"BruteForceIndex(n={len(self)}, dim={self.dim}, metric={self._metric!r}, "
            f"dtype={self._dtype.name})"
        )

    # -- mutation ----------------------------------------------------------------------------

    def add(self, X: Any) -> None:
        """Append rows (numbered ``len(index)`` onwards), like faiss ``IndexFlat.add``.

        Parameters
        ----------
        X : array_like, shape (m, d) or (d,)
            Rows to append, cast to the index dtype; must be finite.

        Notes
        -----
        Strong guarantee: on any error (bad input, ``MemoryError``, ``KeyboardInterrupt``)
        the index is unchanged. The first ``add`` copies the indexed rows into a buffer the
        index owns (spare capacity doubles, so repeated adds are amortised O(m)).
        """
        rows = as_matrix(to_array(X, "X"), "X", self._dtype)
        if rows.shape[1] != self.dim:
            raise ValueError(
                f"X must have {self.dim} columns (the index dimension), got {rows.shape[1]}"
            )
        if self._L is not None:
            rows = self._mapping.map_rows(rows, self._dtype, "X")
        if len(rows) == 0:
            return
        with self._lock:
            data, norms, max_sq = self._state
            new_norms = self._norms_of(rows, resolve_threads(None), "X")
            n, m = len(data), len(rows)
            buf, norm_buf = self._buf, self._norm_buf
            if buf is None or len(buf) < n + m:
                cap = max(n + m, 2 * n, 16)
                buf = np.empty((cap, self.dim), self._dtype)
                norm_buf = np.empty(cap, self._dtype)
                buf[:n] = data
                norm_buf[:n] = norms
            # Rows n.. are invisible to running queries (they read data = buf[:n]).
            buf[n : n + m] = rows
            norm_buf[n : n + m] = new_norms
            new_max = max(max_sq, float(new_norms.max()))
            # Commit: nothing below can fail.
            self._buf, self._norm_buf = buf, norm_buf
            self._state = (buf[: n + m], norm_buf[: n + m], new_max)

    # -- search ------------------------------------------------------------------------------

    def _prepare_queries(self, Q: Any) -> np.ndarray:
        q = prepare_queries(Q, self.dim, self._dtype)
        return q if self._L is None else self._mapping.map_rows(q, self._dtype, "Q")

    def _result_dtype(self) -> np.dtype:
        return self._dtype

    def query(
        self, Q: Any, k: int = 1, *, threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest indexed rows of each query, exactly.

        Parameters
        ----------
        Q : array_like, shape (m, d) or (d,)
            Queries, cast to the index dtype; must be finite.
        k : int, default=1
            Neighbours per query (>= 1). Beyond ``len(index)`` the results are padded.
        threads : int or None, default=None
            Worker threads; None uses every core this process may run on.

        Returns
        -------
        distances : ndarray, shape (m, k), index dtype
            Ascending; ``inf`` where fewer than k rows exist.
        indices : ndarray of int64, shape (m, k)
            Row numbers (ties broken by the smaller one); ``-1`` where fewer than k rows exist.
        """
        q, k, nt = self._query_prologue(Q, k, threads)
        data, norms, max_sq = self._state
        return self._knn(data, norms, max_sq, self._code, q, k, nt)

    # Every index's query_radius has this signature (the contract's) and documents its own units
    # and result order; the checks are the shared _radius_prologue (duplicates pairs the
    # signatures).
    def query_radius(
        self,
        Q: Any,
        r: Any,
        *,
        return_distance: bool = False,
        sort_results: bool = False,
        threads: int | None = None,
    ):
        """All indexed rows within distance ``r`` (inclusive) of each query, exactly.

        Parameters
        ----------
        Q : array_like, shape (m, d) or (d,)
            Queries, cast to the index dtype; must be finite.
        r : float or array_like, shape (m,)
            One radius for all queries or one per query, in the metric's own units (squared
            for "sqeuclidean"); >= 0, ``inf`` allowed (the rule of every pysim index).
        return_distance : bool, default=False
            Also return the distances.
        sort_results : bool, default=False
            Order each query's results by (distance, row); otherwise by row number.
        threads : int or None, default=None
            Worker threads; None uses every core this process may run on.

        Returns
        -------
        indices : ndarray of object, shape (m,)
            Each entry an int64 array of row numbers. With ``return_distance=True`` the
            result is ``(distances, indices)``, two such object arrays (distances in the
            index dtype), in that order.
        """
        q, radii, want, sort, nt = self._radius_prologue(
            Q, r, return_distance, sort_results, threads
        )
        data, norms, max_sq = self._state
        indptr, idx, dist = self._radius(data, norms, max_sq, self._code, q, radii, sort, nt)
        indices = split_csr(indptr, idx)
        if want:
            return split_csr(indptr, dist), indices
        return indices

    # -- persistence -------------------------------------------------------------------------

    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        data = self._state[0]
        meta = {"format": _FORMAT, "metric": self._metric, "dim": self.dim, "n": len(data)}
        arrays = {"data": data}
        if self._L is not None:
            arrays["L"] = self._L
            arrays["VI"] = self._VI
        return meta, arrays

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> BruteForceIndex:
        check_int(meta.get("format"), "format", _FORMAT, _FORMAT)
        metric = check_metric(meta["metric"])
        n = check_int(meta["n"], "n", 0)
        dim = check_int(meta["dim"], "dim", 1)
        data = arrays["data"]
        if data.dtype not in (np.float32, np.float64) or data.ndim != 2:
            raise ValueError("data must be a 2-D float32 or float64 array")
        if data.shape != (n, dim):
            raise ValueError("data shape does not match the header")
        if not data.flags.aligned or not data.flags.c_contiguous:
            data = np.ascontiguousarray(data.copy())
        data = as_matrix(data, "data", data.dtype)
        L = VI = None
        if metric == "mahalanobis":
            L, VI = arrays["L"], arrays["VI"]
            for name, a in (("L", L), ("VI", VI)):
                if a.dtype != np.float64 or a.shape != (dim, dim):
                    raise ValueError(f"{name} must be float64 of shape ({dim}, {dim})")
            L, VI = np.ascontiguousarray(L), np.ascontiguousarray(VI)
            check_factor(L, VI)  # a factor that no longer factors VI maps queries wrongly
        elif "L" in arrays or "VI" in arrays:
            raise ValueError(f"a mahalanobis factor is stored for metric {metric!r}")
        self = cls.__new__(cls)
        self._setup(
            data,
            MetricMapping(metric, METRICS[metric] if L is None else METRICS["euclidean"], L),
            VI,
        )
        return self
