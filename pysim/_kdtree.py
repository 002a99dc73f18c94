"""KDTreeIndex: exact k-nearest-neighbour and radius search for low-dimensional data.

A thin layer over the compiled tree (csrc/kdtree/): arguments are validated and converted
here, once, with messages that name the argument; the core builds and searches with the GIL
released. float32 data stays float32 (the tree keeps one reordered copy in the data's dtype),
everything else is searched in float64.

Exactness rule (documented in the class docstring): a squared distance is the sum over the
dimensions, in order, of (x_j - q_j)^2 rounded to the index dtype; neighbours are ranked by
that value with ties broken by the smaller row number, so results equal a brute-force search
in the same arithmetic, whatever the tree shape, thread count or instruction set.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from ._index_base import PersistMixin, SearchIndex, prepare_queries, split_csr
from ._validation import (
    as_matrix,
    by_dtype,
    check_int,
    check_metric,
    check_safe_magnitude,
    finite_magnitude,
    rescaling_exponent,
    resolve_threads,
    result_dtype,
    to_array,
)

_METRICS = ("euclidean", "sqeuclidean")
_LAYOUT = 1  # version of the saved array layout (meta["layout"])


def _round_radii(r64: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Radii in `dtype`, rounded down so that `distance <= r` is decided exactly as the
    comparison of the returned (dtype) distance with the given value."""
    out = r64.astype(dtype)
    if dtype != np.float64:
        high = out.astype(np.float64) > r64
        out[high] = np.nextafter(out[high], dtype.type(-np.inf))
    return np.ascontiguousarray(out)


class KDTreeIndex(SearchIndex, PersistMixin):
    """Exact nearest-neighbour index on a KD-tree, for Euclidean distances in low dimensions.

    Parameters
    ----------
    data : array_like of shape (n, d)
        Points to index (n >= 1). float32 stays float32; any other real dtype is indexed as
        float64. A 1-D array is one point. The tree keeps its own reordered copy.
    metric : {"euclidean", "sqeuclidean"}, default="euclidean"
        Distance returned by the queries (and unit of the radius in :meth:`query_radius`).
    leaf_size : int, default=64
        Largest number of points in a leaf; leaves hold between about leaf_size / 2 and
        leaf_size points (leaf_size=1 may leave two). Chosen by measurement: leaf scans are
        one SIMD pass over dimension-major points, so bigger leaves than the usual 16 pay off;
        64 was fastest or within 5% of the fastest for k = 1, 10 and 50 on (10^6 x 3)
        uniform, (10^6 x 8) clustered and (2 x 10^5 x 16) clustered float32 data.
    threads : int or None, default=None
        Threads used to build the tree; None uses every core this process may run on.

    Notes
    -----
    Exactness: the squared distance of a point is the sum over the dimensions, in order, of
    ``(x_j - q_j) ** 2`` rounded to the index dtype (no fused multiply-add, identical on every
    instruction set); neighbours are ranked by it, ties broken by the smaller row number, and
    the Euclidean distance returned is its square root. Results therefore equal a brute-force
    search in that arithmetic, independent of tree shape, thread count and SIMD level; with
    float64 data or well-separated float32 distances they equal a float64 reference.

    The points are stored once, in leaf order (a reordered copy plus the permutation); the
    build partitions that copy in place, so it needs no memory beyond the finished index.

    Examples
    --------
    >>> import numpy as np, pysim
    >>> X = np.random.default_rng(0).random((1000, 3), dtype=np.float32)
    >>> index = pysim.KDTreeIndex(X)
    >>> dist, ind = index.query(X[:5], k=3)
    >>> ind[:, 0].tolist()
    [0, 1, 2, 3, 4]
    """

    # Every index class opens alike (its persistence kind, then a constructor with metric and
    # threads); duplicates pairs them by shape.
    _KIND = "kdtree"

    def __init__(
        self,
        data: Any,
        metric: str = "euclidean",
        *,
        leaf_size: int = 64,
        threads: int | None = None,
    ) -> None:
        metric = check_metric(metric, _METRICS)
        leaf_size = check_int(leaf_size, "leaf_size", 1, 2**31 - 1)
        nthreads = resolve_threads(threads)
        X = to_array(data, "data")
        dtype = result_dtype(X)
        X = as_matrix(X, "data", dtype, check_finite=False)
        if X.shape[0] == 0:
            raise ValueError("data must have at least one row, got shape (0, d)")
        # Data whose squared distances would under- or overflow the dtype (float32 at 1e-30 or
        # 1e19) is stored scaled by an exact power of two, and distances scaled back.
        self._scale_exp = rescaling_exponent(finite_magnitude(X, "data"), dtype)
        if self._scale_exp:
            X = np.ldexp(X, self._scale_exp)
        self._tree = by_dtype(dtype, _core.KDTree_f32, _core.KDTree_f64)(X, leaf_size, nthreads)
        self._metric = metric
        self._dtype = np.dtype(dtype)

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return int(self._tree.n)

    @property
    def dim(self) -> int:
        """Number of columns of the indexed points."""
        return int(self._tree.dim)

    @property
    def metric(self) -> str:
        """``"euclidean"`` or ``"sqeuclidean"``."""
        return self._metric

    @property
    def leaf_size(self) -> int:
        """Largest number of points per leaf, as given at construction."""
        return int(self._tree.leaf_size)

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype (float32 or float64); queries are cast to it."""
        return self._dtype

    def _prepare_queries(self, Q: Any) -> np.ndarray:
        q = prepare_queries(Q, self.dim, self._dtype)
        if self._scale_exp:
            q = np.ldexp(q, self._scale_exp)
        if rescaling_exponent(finite_magnitude(q, "Q"), self._dtype) < 0:
            raise ValueError(
                f"Q has values too large next to the indexed data for {self._dtype} distances "
                "(their squares overflow); "
                + ("use float64" if self._dtype == np.float32 else "scale the data down")
            )
        return q

    def _result_dtype(self) -> np.dtype:
        return self._dtype

    def _unscale(self, d: np.ndarray) -> np.ndarray:
        if self._scale_exp:
            power = 1 if self._metric == "euclidean" else 2
            with np.errstate(over="ignore", under="ignore"):  # correctly rounded to 0 / inf
                np.ldexp(d, -power * self._scale_exp, out=d)
        return d

    def __repr__(self) -> str:
        return (
            f"KDTreeIndex(n={len(self)}, dim={self.dim}, metric={self._metric!r}, "
            f"leaf_size={self.leaf_size}, dtype={self._dtype.name})"
        )

    # ------------------------------------------------------------------ searches
    def query(
        self, Q: Any, k: int = 1, *, threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest indexed points of each query.

        Parameters
        ----------
        Q : array_like of shape (m, d) or (d,)
            Queries, cast to the index dtype; a 1-D array is one query.
        k : int, default=1
            Neighbours per query (>= 1). Beyond ``len(self)`` the result is padded.
        threads : int or None, default=None
            Threads over queries; None uses every core this process may run on.

        Returns
        -------
        distances : ndarray of shape (m, k), index dtype
            Ascending; ``inf`` in padded slots.
        indices : ndarray of shape (m, k), int64
            Row numbers of `data`; ties broken by the smaller row; ``-1`` in padded slots.
        """
        Qm, k, nthreads = self._query_prologue(Q, k, threads)
        dist, ind = self._tree.query(Qm, k, self._metric == "euclidean", nthreads)
        return self._unscale(dist), ind

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
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """All indexed points within distance `r` of each query (``distance <= r``).

        Parameters
        ----------
        Q : array_like of shape (m, d) or (d,)
            Queries, cast to the index dtype; a 1-D array is one query.
        r : float or array_like of shape (m,)
            Radius, one for all queries or one per query, in the metric's units (a squared
            distance for ``"sqeuclidean"``); >= 0, ``inf`` allowed.
        return_distance : bool, default=False
            Also return the distances.
        sort_results : bool, default=False
            Order each query's results by ascending distance (ties by the smaller row);
            otherwise they come in tree order.
        threads : int or None, default=None
            Threads over queries; None uses every core this process may run on.

        Returns
        -------
        indices : ndarray of shape (m,), dtype object
            Entry i is an int64 array of the rows within r of query i.
        (distances, indices) : tuple of two such object arrays
            With ``return_distance=True``: distances (index dtype) first, the reverse of
            scikit-learn's KDTree order.
        """
        Qm, r64, want, sort, nthreads = self._radius_prologue(
            Q, r, return_distance, sort_results, threads
        )
        power = 1 if self._metric == "euclidean" else 2
        radii = _round_radii(np.ldexp(r64, power * self._scale_exp), self._dtype)
        indptr, ind, dist = self._tree.query_radius(
            Qm, radii, self._metric == "euclidean", want, sort, nthreads
        )
        indices = split_csr(indptr, ind)
        if want:
            return split_csr(indptr, self._unscale(dist)), indices
        return indices

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            "layout": _LAYOUT,
            "n": len(self),
            "dim": self.dim,
            "leaf_size": self.leaf_size,
            "metric": self._metric,
            "dtype": self._dtype.name,
            "scale_exponent": self._scale_exp,
        }
        return meta, dict(self._tree.state())

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> KDTreeIndex:
        check_int(meta.get("layout"), "layout", _LAYOUT, _LAYOUT)
        metric = check_metric(meta["metric"], _METRICS)
        dtypes = {"float32": np.float32, "float64": np.float64}
        if not isinstance(meta["dtype"], str) or meta["dtype"] not in dtypes:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {meta['dtype']!r}")
        dtype = np.dtype(dtypes[meta["dtype"]])
        n, dim, leaf_size = (check_int(meta[key], key, 1) for key in ("n", "dim", "leaf_size"))
        scale_exp = check_int(meta.get("scale_exponent", 0), "scale_exponent", -300, 300)
        core = _core.KDTree_f32 if dtype == np.float32 else _core.KDTree_f64
        names = ("points", "ids", "split_dims", "split_bounds", "bbox")
        # The core checks the structure and that every bound is the one the points give.
        tree = core.from_state(n, dim, leaf_size, *(arrays[name] for name in names))
        # Stored points are within the range whose squared distances the dtype holds (data
        # beyond it is stored rescaled, its largest value then in [0.5, 1)).
        magnitude = check_safe_magnitude(arrays["points"], "points", dtype)
        if scale_exp and math.frexp(magnitude)[1] != 0:
            raise ValueError("scale_exponent does not match the stored points")
        self = cls.__new__(cls)
        self._tree = tree
        self._metric = metric
        self._dtype = dtype
        self._scale_exp = scale_exp
        return self
