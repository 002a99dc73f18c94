"""HNSWIndex: approximate nearest neighbours on a hierarchical navigable small-world graph.

The graph, its search and its concurrency live in C++ (``csrc/hnsw/``); this module validates
input once, maps metrics onto the two internal spaces, and adds what is easier in Python: ids,
filters given as callables, progress bars, recall measurement, ef tuning and persistence.

Quantisation. ``quantization="f16" | "bf16" | "sq8" | "sq4"`` stores compressed records
instead (half floats, or 8-/4-bit scalar codes with per-dimension ranges learned from the first
batch added), walks the graph over them with the cheapest kernel the CPU has (int8 VNNI dot
products for sq codes), and re-ranks the best ``refine`` candidates against a float32 copy -
or, with ``refine=0``, keeps no copy and re-ranks the beam with the decoded records. Returned
distances are exact for what is stored (``csrc/hnsw/quantized.cpp``).

``quantization="rabitq"`` is a different layout (``csrc/hnsw/block_codes.hpp``): the float32
vectors stay, and every vertex's record also holds 1-bit RaBitQ codes of all its neighbours,
scored 32 at a time with in-register tables (FastScan). One hop reads one record: the vertex's
exact distance and estimates for all its neighbours; only expanded vertices are scored exactly,
so there is no re-rank and returned distances are exact float32 ones.

Metrics. Vectors are stored as float32. ``"sqeuclidean"``/``"euclidean"`` store rows as given;
``"cosine"`` stores them normalised to unit length (zero rows stay zero: distance 1 to
everything); ``"ip"`` stores them as given; ``"mahalanobis"`` stores ``L @ x`` where
``VI = L.T @ L`` and searches with the Euclidean distance, so ``get_items`` returns the
stored (normalised or mapped) vectors.

Threads. Every call releases the GIL. Any number of Python threads may query while another
adds or removes; an add links points while queries keep running, a remove briefly blocks
them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._index_base import PersistMixin, SearchIndex
from ._validation import (
    MAX_K,
    METRICS,
    MetricMapping,
    as_matrix,
    check_int,
    check_k,
    check_metric,
    check_row_norms,
    finite_magnitude,
    resolve_metric,
    resolve_threads,
    to_array,
)

_EMPTY_IDS = np.empty(0, dtype=np.int64)
_DEFAULT_EF = 64
#: 4: f16 / bf16 records carry a fingerprint (q_check); 3: the "rabitq" layout; 2: quantised
#: storage; 1: float32 only (all still load).
_FORMAT = 4
_QUANTIZATIONS = ("f16", "bf16", "sq8", "sq4", "rabitq")
#: Layouts that keep the float32 vectors in the graph (no QuantStore, nothing to re-rank).
_FLOAT_LAYOUTS = ("rabitq",)
#: Default ``refine`` per quantisation, chosen by measurement (benchmarks/bench_quantized.py):
#: f16 / bf16 rank like float32 on their own (recall within 0.2 points of it on MNIST, MiniLM
#: and clustered data), so they keep no copy; sq8 / sq4 traverse with int8 estimates that blur
#: the order within the beam (on (100k x 128) clustered data, re-ranking only k = 10 capped
#: sq8's recall@10 at 0.92, re-ranking 20 or 40 reached 0.999), so they keep the float32 copy
#: and re-rank 2k (sq8) or the whole beam (sq4, whose 4-bit order needs it: 2k re-ranked gave
#: 0.94 on Gaussian d=32 data, the beam 0.98) - "auto", -1 in the core.
_AUTO = -1
_DEFAULT_REFINE = {"f16": 0, "bf16": 0, "sq8": _AUTO, "sq4": _AUTO, "rabitq": 0}
_INT64_MAX = np.iinfo(np.int64).max
_INT32_MAX = 2**31 - 1
#: Slots an index can address (csrc/hnsw/graph.hpp kMaxSlots); max_elements is capped there.
_MAX_SLOTS = 0xFFFFFFF0
#: Float32 squared distances of values below 2**-60 underflow (their squares are subnormal).
_TINY = 2.0**-60


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    return check_int(value, name, lo, hi)


def _check_magnitude(magnitude: float, dim: int, name: str, *, added: bool) -> None:
    """Refuse values whose float32 squared distances would overflow (or, for added rows, all
    underflow): the graph would rank by inf or by 0. Exact indexes rescale instead
    (KDTreeIndex, cdist); an approximate index over a stream of batches cannot."""
    limit = float(np.sqrt(np.finfo(np.float32).max / (4.0 * dim)))
    if magnitude > limit:
        raise ValueError(
            f"{name} has values up to {magnitude:.3g}, too large for float32 distances in "
            f"{dim} dimensions (limit {limit:.3g}); scale the data down"
        )
    if added and 0.0 < magnitude < _TINY:
        raise ValueError(
            f"{name} has no value above {magnitude:.3g} in magnitude: float32 squared "
            "distances between such rows underflow to 0; scale the data up"
        )


def _check_quantization(quantization: Any, refine: Any) -> tuple[str | None, int]:
    if quantization is not None and not isinstance(quantization, str):
        raise TypeError(f"quantization must be None or a string, got {quantization!r}")
    if quantization is not None and quantization not in _QUANTIZATIONS:
        raise ValueError(
            "quantization must be None, 'f16', 'bf16', 'sq8', 'sq4' or 'rabitq', "
            f"got {quantization!r}"
        )
    if quantization is None:
        if refine not in (None, 0):
            raise ValueError("refine only applies with a quantization")
        return None, 0
    if refine is None:
        return quantization, _DEFAULT_REFINE[quantization]
    refine = _check_int("refine", refine, 0, 1 << 30)
    if quantization in _FLOAT_LAYOUTS and refine != 0:
        raise ValueError(
            f"refine does not apply to quantization={quantization!r}: every vertex it expands "
            "is scored exactly, so there is nothing to re-rank (use refine=None or 0)"
        )
    return quantization, refine


def _as_ids(ids: Any, name: str, *, lookup: bool = False) -> np.ndarray:
    """ids as a 1-D int64 array of values >= 0 (TypeError for non-integers).

    With ``lookup=True`` (ids that must already be in the index) a negative id is simply an
    id the index cannot hold: KeyError, like any other unknown id.
    """
    arr = to_array(ids, name)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of ids, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return _EMPTY_IDS
        raise TypeError(f"{name} must hold integers (int64 >= 0), got dtype {arr.dtype}")
    if arr.size and arr.dtype.kind == "u" and int(arr.max()) > _INT64_MAX:
        raise ValueError(f"{name} must fit in int64")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and int(arr.min()) < 0:
        if lookup:
            raise KeyError(f"id {int(arr.min())} is not in the index")
        raise ValueError(f"{name} must be >= 0, got {int(arr.min())}")
    return arr


def _new_ids(ids: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids as int64, their sorted unique values) for the n rows of an add: one id per row, all
    distinct (what HNSWIndex.add and ShardedIndex.add both require)."""
    arr = _as_ids(ids, "ids")
    if arr.shape[0] != n:
        raise ValueError(f"ids must have one id per row of X ({n}), got {arr.shape[0]}")
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size != n:
        raise ValueError(f"ids must be distinct; {int(uniq[counts > 1][0])} repeats")
    return arr, uniq


def _normalisable(rows: np.ndarray, magnitude: float) -> np.ndarray:
    """Rows whose squared norm would under- or overflow float32 (values beyond ~2**±60),
    scaled row by row by a power of two (exact; cosine ignores a row's length), so the core's
    float32 normalisation sees their direction instead of 0 or inf. `magnitude` is
    ``max |rows|``: with one row it is that row's peak, which spares a single query the
    per-row reductions."""
    if not rows.size:
        return rows
    if rows.shape[0] == 1 and (magnitude == 0 or _TINY <= magnitude <= 2.0**60):
        return rows
    peak = np.abs(rows).max(axis=1)
    bad = (peak > 2.0**60) | ((peak > 0) & (peak < _TINY))
    if not bad.any():
        return rows
    rows = rows.copy()
    exps = -np.frexp(peak[bad])[1]
    rows[bad] = np.ldexp(rows[bad], exps[:, None])
    return rows


def _recall(exact_d, exact_i, found_d, found_i) -> float:
    """Share of the true k nearest found; a found point tied with the k-th true distance
    counts as found (ties make the true top k ambiguous)."""
    valid = exact_i >= 0
    total = int(valid.sum())
    if total == 0:
        return 1.0
    kth = np.where(valid, exact_d, -np.inf).max(axis=1, keepdims=True)
    hits = 0
    for e, f, fd, t in zip(exact_i, found_i, found_d, kth[:, 0], strict=True):
        true = set(e[e >= 0].tolist())
        ok = f >= 0
        pairs = zip(f[ok].tolist(), fd[ok].tolist(), strict=True)
        hits += sum(1 for i, d in pairs if i in true or d <= t)
    return min(1.0, hits / total)


def _decoded_halves(codes: np.ndarray, kind: str, dim: int) -> np.ndarray:
    """f16 / bf16 records (raw bytes, whole rows) as float32, shape (rows, dim)."""
    words = codes.view("<u2").reshape(-1, dim)
    if kind == "f16":
        return words.view("<f2").astype(np.float32)
    return (words.astype(np.uint32) << 16).view(np.float32)


def _fingerprint(codes: np.ndarray, kind: str, dim: int) -> np.ndarray:
    """Per-dimension sum of squares, in float64, of the decoded f16 / bf16 records.

    Stored next to the codes (``q_check``) and recomputed on load under the kind the file
    names: the two 16-bit formats read each other's bits as values of a very different scale,
    so a file whose kind was switched is refused instead of answering with garbage vectors.
    """
    out = np.zeros(dim, dtype=np.float64)
    rows = codes.size // (2 * dim)
    for start in range(0, rows, 1 << 14):
        block = codes[start * 2 * dim : min(rows, start + (1 << 14)) * 2 * dim]
        values = _decoded_halves(block, kind, dim).astype(np.float64)
        out += np.einsum("ij,ij->j", values, values)
    return out


#: |norm - 1| of a unit vector after its encoding's rounding: float32 (normalised in
#: float32/float64), and the half-ulp relative error of f16 (2**-11) and bf16 (2**-8), with
#: a margin; f16's subnormals add up to 2**-25 per component (see _check_cosine_storage).
_NORM_TOLERANCE = {None: 0.0, "rabitq": 0.0, "f16": 2.0**-11, "bf16": 2.0**-8}


def _check_cosine_storage(index: Any, arrays: dict[str, np.ndarray], quantization: Any) -> None:
    """A cosine index stores unit-length vectors (or zeros): refuse a state whose stored or
    decoded vectors are not, e.g. a file of unnormalised vectors whose metric was switched
    to "cosine" (every distance would be wrong)."""
    dim = index.dim
    base = 1e-4 + dim * 2.0**-24
    kept = "q_full" in arrays and arrays["q_full"].size > 0  # get_items returns the copy
    if quantization in ("sq8", "sq4") and not kept:
        lo = np.asarray(arrays["q_lo"], np.float64)
        step = np.asarray(arrays["q_step"], np.float64)
        if lo.size:
            levels = 256 if quantization == "sq8" else 16
            hi = lo + step * (levels - 1)
            # Components of unit vectors lie in [-1, 1], so do ranges learned from them.
            if not (np.abs(lo).max() <= 1 + 1e-5 and np.abs(hi).max() <= 1 + 1e-5):
                raise ValueError("the sq ranges of a cosine index exceed [-1, 1]")
            # Decoding moves each component by at most step / 2 from its value clipped to the
            # range; clipping can lengthen it only up to the range's distance m from 0.
            m = np.maximum(0.0, np.maximum(lo, -hi))
            top = float(np.sqrt(1.0 + m @ m) + 0.5 * np.sqrt(step @ step)) + base
            lo_norm, hi_norm = 0.0, top
        else:
            return
    else:
        tol = base + (0.0 if kept else 1.01 * _NORM_TOLERANCE[quantization])
        if quantization == "f16" and not kept:
            tol += np.sqrt(dim) * 2.0**-25
        lo_norm, hi_norm = 1.0 - tol, 1.0 + tol
    ids = index._index.ids()
    for start in range(0, len(ids), 1 << 14):
        rows = index._index.get_items(np.ascontiguousarray(ids[start : start + (1 << 14)]))
        check_row_norms(rows, "stored vector", lo_norm, hi_norm)


class _Progress:
    """tqdm bar when tqdm is installed, a plain stderr line every 10% otherwise."""

    def __init__(self, total: int):
        self.total = total
        self.bar = None
        self.shown = 0
        try:
            from tqdm.auto import tqdm
        except ImportError:
            print(f"HNSWIndex.add: 0/{total}", file=sys.stderr, flush=True)
        else:
            self.bar = tqdm(total=total, desc="HNSWIndex.add", unit="pt")

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        elif done == total or done * 10 // total > self.shown * 10 // total:
            print(f"HNSWIndex.add: {done}/{total}", file=sys.stderr, flush=True)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class HNSWIndex(SearchIndex, PersistMixin):
    """Approximate nearest-neighbour index on an HNSW graph, with caller-chosen ids.

    Parameters
    ----------
    dim : int
        Vector dimension.
    metric : {"sqeuclidean", "euclidean", "cosine", "ip", "mahalanobis"}, default="sqeuclidean"
        Distance used for search and returned by :meth:`query`.
    M : int, default=16
        Links per node on the upper levels (``2 * M`` on the bottom level). Larger M: better
        recall per ef and more memory.
    ef_construction : int, default=200
        Beam width while building. Larger: better graph, slower :meth:`add`.
    max_elements : int, default=0
        Capacity to reserve up front. Only a hint: the index grows as needed.
    seed : int, default=0
        Seed of the level generator. With ``threads=1``, the same data and seed give the same
        graph and the same results.
    VI : array-like of shape (dim, dim), optional
        Inverse covariance (symmetric positive semi-definite) for ``metric="mahalanobis"``.
    quantization : {None, "f16", "bf16", "sq8", "sq4", "rabitq"}, default=None
        How vectors are stored for the graph walk. ``None``: float32. ``"f16"`` / ``"bf16"``:
        16-bit floats (half the memory; f16 stores ``|x| < 65520``, rounded to at most 65504).
        ``"sq8"`` / ``"sq4"``: 8-/4-bit codes on per-dimension ranges learned from the first
        batch added to the empty index (later values more than half a step outside them are
        clipped and counted in :attr:`drift`; call :meth:`refit` to learn new ranges).
        ``"rabitq"``: float32 vectors, and next to each vertex 1-bit RaBitQ codes of its
        neighbours (FastScan batches of 32), so a search step reads one record and estimates
        all neighbours at once; distances returned are exact float32 ones. Takes more memory
        than float32 (about ``2 * M`` bits per dimension more per vector), not less.
    refine : int, optional
        Candidates re-ranked with the float32 vectors after the walk (at least ``k``, at most
        the beam ``max(k, ef)``). ``0`` keeps no float32 copy - the memory saving - and
        re-ranks the whole beam with the decoded records instead. Default (None): 0 for f16 /
        bf16, ``2 * k`` for sq8, the whole beam for sq4 (chosen by measurement; see the
        docs' quantisation table). Only with ``quantization`` (and not with ``"rabitq"``,
        which has nothing to re-rank: None or 0). With ``refine=0`` the
        returned distance is computed from the decoded record: for ``"cosine"`` that is
        ``1 - q̂·x̃`` with ``x̃`` the decoded copy of the unit-length stored vector, which is
        unit length only up to the code's error and is not renormalised (measured on Gaussian
        d = 64 data: up to 0.022 from the cosine of the decoded vector for sq4, 0.0011 for
        sq8, 0.0005 for bf16, 7e-5 for f16; the review saw 0.056 for sq4 on other data).

    Notes
    -----
    Vectors are stored as float32 (float64 input is converted once) unless ``quantization``
    says otherwise. ``len(index)`` is the
    number of live points, ``id in index`` tests an id, and the index pickles and saves.

    Examples
    --------
    >>> import numpy as np, pysim
    >>> X = np.random.default_rng(0).random((1000, 16), dtype=np.float32)
    >>> index = pysim.HNSWIndex(16, "euclidean")
    >>> index.add(X)
    >>> dist, ids = index.query(X[:2], k=3)
    >>> ids[:, 0].tolist()
    [0, 1]
    """

    _KIND = "hnsw"

    def __init__(
        self,
        dim: int,
        metric: str = "sqeuclidean",
        *,
        M: int = 16,
        ef_construction: int = 200,
        max_elements: int = 0,
        seed: int = 0,
        VI: Any = None,
        quantization: str | None = None,
        refine: int | None = None,
    ) -> None:
        dim = _check_int("dim", dim, 1, 1 << 24)
        metric = check_metric(metric)
        M = _check_int("M", M, 2, 32767)
        ef_construction = _check_int("ef_construction", ef_construction, 1, _INT32_MAX)
        max_elements = _check_int("max_elements", max_elements, 0, _INT64_MAX)
        seed = _check_int("seed", seed, 0, (1 << 64) - 1)
        mapping = resolve_metric(metric, VI, dim)
        quantization, refine = _check_quantization(quantization, refine)
        self._index = _core.HnswIndex(
            dim,
            mapping.core,
            M=M,
            ef_construction=ef_construction,
            max_elements=min(max_elements, _MAX_SLOTS),  # a hint: never more than addressable
            seed=seed,
            quantization=quantization,
            refine=None if refine == _AUTO else refine,
        )
        self._setup(mapping, _DEFAULT_EF, max_elements)

    def _setup(self, mapping: MetricMapping, ef: int, max_elements: int) -> None:
        self._mapping = mapping
        self._metric = mapping.name
        self._L = mapping.L
        self._ef = ef
        self._max_elements = max_elements

    # ------------------------------------------------------------------ properties
    # One-line read-only views, one per attribute (duplicates pairs them by shape).
    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._index.dim

    @property
    def metric(self) -> str:
        """The metric name given at construction."""
        return self._metric

    @property
    def M(self) -> int:
        """Links per node on the upper levels."""
        return self._index.M

    @property
    def ef_construction(self) -> int:
        """Beam width used while building."""
        return self._index.ef_construction

    @property
    def seed(self) -> int:
        """Seed of the level generator."""
        return self._index.seed

    @property
    def max_elements(self) -> int:
        """The capacity hint given at construction."""
        return self._max_elements

    @property
    def capacity(self) -> int:
        """Points the index can hold before it grows again (grows automatically)."""
        return self._index.capacity()

    @property
    def ef(self) -> int:
        """Default search beam width (default 64); a query uses ``max(k, ef)``."""
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        self._ef = _check_int("ef", value, 1, MAX_K)

    @property
    def ids(self) -> np.ndarray:
        """Live ids, ascending, as an int64 array of shape (len(index),)."""
        return np.sort(self._index.ids())

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, id: Any) -> bool:
        if isinstance(id, bool) or not isinstance(id, (int, np.integer)):
            return False
        id = int(id)
        return 0 <= id <= _INT64_MAX and self._index.contains(id)

    @property
    def quantization(self) -> str | None:
        """Storage of the vectors: None (float32), "f16", "bf16", "sq8", "sq4" or "rabitq"."""
        return self._index.quantization

    @property
    def refine(self) -> int | None:
        """Candidates re-ranked with float32 vectors (0: no float32 copy; None: the default,
        ``2 * k`` for sq8 and the whole beam for sq4)."""
        refine = self._index.refine
        return None if refine == _AUTO else refine

    @property
    def drift(self) -> dict[str, int]:
        """How well the sq ranges still fit the data (zeros for other storages).

        ``rows_at_fit``: rows the ranges were learned from; ``rows_since_fit``: rows stored
        since; ``clipped_since_fit``: their elements that fell more than half a step outside
        the ranges and were clipped. A growing clipped count says the data drifted: call
        :meth:`refit`.
        """
        at_fit, since, clipped = self._index.drift()
        return {"rows_at_fit": at_fit, "rows_since_fit": since, "clipped_since_fit": clipped}

    def refit(self, *, threads: int | None = None) -> None:
        """Learn new sq8 / sq4 ranges from every stored vector and re-encode them all.

        The graph is kept. Uses the float32 copy when ``refine > 0``; without it the ranges
        are widened to the min/max of every row ever stored and the decoded records are
        re-quantised (each re-fit adds at most half a step of error, and values clipped earlier
        stay clipped - so refit before adding a batch that drifted, not after). Queries wait
        while it runs. Does nothing for float32, f16 and bf16 storage.

        Parameters
        ----------
        threads : int, optional
            Worker threads (default: all cores).
        """
        self._index.refit(resolve_threads(threads))

    def __repr__(self) -> str:
        q = "" if self.quantization is None else f", quantization={self.quantization!r}"
        return (
            f"HNSWIndex(dim={self.dim}, metric={self._metric!r}, M={self.M}, "
            f"ef_construction={self.ef_construction}{q}, n={len(self)})"
        )

    def memory_bytes(self) -> int:
        """Bytes held by the index (graph, vectors or codes and float32 copy, ids), excluding
        per-thread search buffers."""
        return self._index.memory_bytes()

    # ------------------------------------------------------------------ input helpers
    def _rows(self, X: Any, name: str, *, added: bool = False) -> np.ndarray:
        """Rows as C-contiguous float32 (m, dim) in the stored representation, checked:
        finite, and (after the mahalanobis mapping and the float32 cast) of a magnitude whose
        float32 distances neither overflow nor, for added rows, all underflow."""
        arr = as_matrix(
            to_array(X, name),
            name,
            np.float64 if self._L is not None else np.float32,
            check_finite=False,
        )
        if arr.shape[1] != self.dim:
            raise ValueError(
                f"{name} must have {self.dim} columns (the index dimension), got {arr.shape[1]}"
            )
        magnitude = finite_magnitude(arr, name)
        if self._L is not None:
            arr = self._mapping.map_rows(arr, np.float32, name)
            magnitude = finite_magnitude(arr, name)
        if self._metric == "cosine":
            # stored unit-length: only each row's direction matters
            arr = _normalisable(arr, magnitude)
        else:
            _check_magnitude(magnitude, self.dim, name, added=added and self._metric != "ip")
        return arr

    def _prepare_queries(self, Q: Any) -> np.ndarray:
        return self._rows(Q, "Q")

    def _result_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def _allowed(self, filter: Any) -> np.ndarray | None:
        """The allowed ids as int64, or None for no filter."""
        if filter is None:
            return None
        if callable(filter):
            ids = self.ids
            keep = np.fromiter((bool(filter(int(i))) for i in ids), dtype=bool, count=len(ids))
            return np.ascontiguousarray(ids[keep])
        if isinstance(filter, (set, frozenset)):
            filter = np.fromiter(filter, dtype=np.int64, count=len(filter))
        arr = to_array(filter, "filter")
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise TypeError("filter must be a callable id -> bool or a 1-D array of allowed ids")
        if arr.size and arr.dtype.kind == "u":
            arr = arr[arr <= _INT64_MAX]
        return np.ascontiguousarray(arr, dtype=np.int64)

    def _ef_for(self, ef: Any) -> int:
        return self._ef if ef is None else _check_int("ef", ef, 1, MAX_K)

    # ------------------------------------------------------------------ mutation
    def add(
        self, X: Any, ids: Any = None, *, threads: int | None = None, progress: bool = False
    ) -> None:
        """Insert rows; an id already in the index gets its vector replaced.

        Parameters
        ----------
        X : array-like of shape (n, dim) or (dim,)
            Vectors; float64 or integer input is converted to float32 once.
        ids : array-like of int of shape (n,), optional
            Ids (int64 >= 0, distinct within the call). Default: consecutive ids starting
            one above the largest id the index has ever held (removed ids are not reused).
        threads : int, optional
            Insertion threads; None uses every core. With 1, insertion is deterministic.
        progress : bool, default=False
            Show a tqdm progress bar (a plain stderr line every 10% without tqdm).

        Raises
        ------
        ValueError
            Wrong number of columns, NaN or infinity, negative or duplicate ids.
        TypeError
            Non-numeric input or non-integer ids.

        Notes
        -----
        A rejected call leaves the index unchanged. After Ctrl-C, every row is either fully
        inserted or absent. Capacity grows automatically.
        """
        rows = self._rows(X, "X", added=True)
        n = rows.shape[0]
        threads = resolve_threads(threads)
        if not isinstance(progress, (bool, np.bool_)):
            raise TypeError(f"progress must be a bool, got {progress!r}")
        id_arr = None
        if ids is not None:
            id_arr = _new_ids(ids, n)[0]
        if n == 0:
            return
        bar = _Progress(n) if progress else None
        try:
            self._index.add(rows, id_arr, threads=threads, progress=bar)
        finally:
            if bar is not None:
                bar.close()

    def remove(self, ids: Any) -> None:
        """Remove points by id; removed ids are never returned again (unless re-added).

        Parameters
        ----------
        ids : int or array-like of int
            Ids to remove (repeats count once).

        Raises
        ------
        KeyError
            An id is not in the index; nothing is removed then.
        """
        self._index.remove(_as_ids(ids, "ids", lookup=True))

    # ------------------------------------------------------------------ search
    def query(
        self,
        Q: Any,
        k: int = 1,
        *,
        ef: int | None = None,
        threads: int | None = None,
        filter: Callable[[int], bool] | Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate k nearest neighbours.

        Parameters
        ----------
        Q : array-like of shape (m, dim) or (dim,)
            Queries (cast to float32).
        k : int, default=1
            Neighbours per query.
        ef : int, optional
            Beam width for this call (default :attr:`ef`); ``max(k, ef)`` is used. Larger:
            higher recall, slower. Calls with different ef may run concurrently.
        threads : int, optional
            Search threads; None uses every core.
        filter : array-like of int, set of int, or callable, optional
            Allowed ids: an array (or set) of ids - fast: it becomes a bitset in C++ and is
            tested without the GIL; ids not in the index are ignored - or a callable
            ``id -> bool`` - slow: it is called once per live id, holding the GIL, on every
            call, so prefer an array for large indexes. When the allowed points are few,
            the search is an exact scan over them, so even a very selective filter returns
            the true top k.

        Returns
        -------
        distances : ndarray of float32, shape (m, k)
            Ascending; ``inf`` where fewer than k results exist.
        ids : ndarray of int64, shape (m, k)
            The caller's ids; ``-1`` where fewer than k results exist.

        Notes
        -----
        When the index holds at most ``max(k, ef)`` points, the answer is exact (ties broken
        by the smaller id).
        """
        rows, k, threads = self._query_prologue(Q, k, threads)
        ef = self._ef_for(ef)
        allowed = self._allowed(filter)
        dist, ids = self._index.search(rows, k, ef=ef, threads=threads, allowed=allowed)
        if allowed is None and len(rows):
            # A walk can end short of k results only where part of the graph is unreachable
            # from the entry point (possible while points are removed): answer those exactly.
            short = (ids[:, min(k, len(self)) - 1] < 0) if len(self) else None
            if short is not None and short.any():
                dist[short], ids[short] = self._index.exact_search(
                    np.ascontiguousarray(rows[short]), k, threads=threads
                )
        return dist, ids

    def recall(self, Q: Any, k: int = 10, *, ef: int | None = None) -> float:
        """Recall@k of :meth:`query` against exact search on these queries.

        Parameters
        ----------
        Q : array-like of shape (m, dim)
            Queries, ideally drawn like the real ones.
        k : int, default=10
        ef : int, optional
            Beam width to measure (default :attr:`ef`).

        Returns
        -------
        float
            Mean share of the true k nearest found (a result tied with the k-th true
            distance counts as found); 1.0 for an empty index.
        """
        k = check_k(k)
        ef = self._ef_for(ef)
        rows = self._rows(Q, "Q")
        threads = resolve_threads(None)
        exact = self._index.exact_search(rows, k, threads=threads)
        found = self._index.search(rows, k, ef=ef, threads=threads)
        return _recall(exact[0], exact[1], found[0], found[1])

    def tune_ef(self, Q: Any, k: int = 10, *, target_recall: float = 0.95) -> int:
        """Find the smallest ef whose recall@k on `Q` reaches `target_recall`; set it as :attr:`ef`.

        Parameters
        ----------
        Q : array-like of shape (m, dim)
            Representative queries.
        k : int, default=10
        target_recall : float, default=0.95
            In (0, 1].

        Returns
        -------
        int
            The chosen ef (at least k), now also :attr:`ef`.

        Notes
        -----
        ef is doubled until the target is met, then bisected; recall grows with ef up to
        noise, so the result is the smallest such ef up to that noise. An ef at least the
        index size is exact, so the search always ends.
        """
        k = check_k(k)
        if isinstance(target_recall, bool) or not isinstance(
            target_recall, (int, float, np.floating, np.integer)
        ):
            raise TypeError(f"target_recall must be a number, got {target_recall!r}")
        if not 0.0 < float(target_recall) <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
        rows = self._rows(Q, "Q")
        threads = resolve_threads(None)
        exact = self._index.exact_search(rows, k, threads=threads)

        def reaches(ef: int) -> bool:
            found = self._index.search(rows, k, ef=ef, threads=threads)
            return _recall(exact[0], exact[1], found[0], found[1]) >= target_recall

        limit = max(len(self), k)
        lo, hi = k - 1, k
        while not reaches(hi):
            if hi >= limit:
                break
            lo, hi = hi, min(2 * hi, limit)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if reaches(mid):
                hi = mid
            else:
                lo = mid
        self._ef = hi
        return hi

    def get_items(self, ids: Any) -> np.ndarray:
        """Stored vectors of the given ids.

        Parameters
        ----------
        ids : int or array-like of int

        Returns
        -------
        ndarray of float32, shape (len(ids), dim)
            As stored: unit-length for cosine, ``L @ x`` for mahalanobis.

        Raises
        ------
        KeyError
            An id is not in the index.
        """
        return self._index.get_items(_as_ids(ids, "ids", lookup=True))

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        st = self._index.export_state()
        n, dim, M = st.n, self.dim, self.M
        arrays = {
            "codes": st.codes.reshape(-1, dim),
            "levels": st.levels,
            "status": st.status,
            "labels": st.labels,
            "counts0": st.counts0,
            "links0": st.links0.reshape(n, 2 * M),
            "upper_counts": st.upper_counts,
            "upper_links": st.upper_links.reshape(-1, M),
            "free_slots": st.free_slots,
        }
        if self._L is not None:
            arrays["L"] = self._L
        if st.quant is not None:
            for key in ("lo", "step", "seen_lo", "seen_hi", "codes", "full"):
                arrays["q_" + key] = st.quant[key]
            arrays["q_drift"] = np.asarray(st.quant["drift"], dtype=np.uint64)
            if self.quantization in ("f16", "bf16"):
                arrays["q_check"] = _fingerprint(st.quant["codes"], self.quantization, dim)
        meta = {
            "format": _FORMAT,
            "dim": dim,
            "metric": self._metric,
            "M": M,
            "ef_construction": self.ef_construction,
            "seed": self.seed,
            "max_elements": self._max_elements,
            "ef": self._ef,
            "n": n,
            "entry": st.entry,
            "max_level": st.max_level,
            "next_id": st.next_id,
            "rng": st.rng,
            "quantization": self.quantization,
            "refine": self.refine,
        }
        return meta, arrays

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> HNSWIndex:
        fmt = _check_int("format", meta.get("format"), 1, _FORMAT)
        dim = _check_int("dim", meta["dim"], 1, 1 << 24)
        metric = check_metric(meta["metric"])
        M = _check_int("M", meta["M"], 2, 32767)
        n = _check_int("n", meta["n"], 0, 1 << 32)

        def arr(name: str, dtype: str, shape: tuple) -> np.ndarray:
            a = arrays[name]
            if a.dtype != np.dtype(dtype) or a.shape != shape:
                raise ValueError(f"array {name!r} has dtype {a.dtype} and shape {a.shape}")
            return np.ascontiguousarray(a).ravel()

        levels = arr("levels", "|u1", (n,))
        levels_total = int(levels.sum(dtype=np.int64))
        L = None
        if metric == "mahalanobis":
            L = np.ascontiguousarray(arr("L", "<f8", (dim, dim)).reshape(dim, dim))
            if not np.isfinite(L).all():
                raise ValueError("array 'L' is not finite")
        quantization = meta.get("quantization")
        if quantization is not None and quantization not in _QUANTIZATIONS:
            raise ValueError(f"unknown quantization {quantization!r} in the HNSW state")
        refine = meta.get("refine", 0)
        refine = None if refine is None else _check_int("refine", refine, 0, 1 << 30)
        floats = quantization is None or quantization in _FLOAT_LAYOUTS
        st = _core.HnswState()
        st.n = n
        st.entry = _check_int("entry", meta["entry"], -1, n - 1)
        st.max_level = _check_int("max_level", meta["max_level"], -1, 255)
        st.next_id = _check_int("next_id", meta["next_id"], 0, _INT64_MAX + 1)
        st.rng = _check_int("rng", meta["rng"], 0, (1 << 64) - 1)
        st.codes = arr("codes", "<f4", (n if floats else 0, dim))
        st.levels = levels
        st.status = arr("status", "|u1", (n,))
        st.labels = arr("labels", "<i8", (n,))
        st.counts0 = arr("counts0", "<u2", (n,))
        st.links0 = arr("links0", "<u4", (n, 2 * M))
        st.upper_counts = arr("upper_counts", "<u2", (levels_total,))
        st.upper_links = arr("upper_links", "<u4", (levels_total, M))
        st.free_slots = arr("free_slots", "<u4", arrays["free_slots"].shape[:1])
        if not floats:
            quant = {"n": n, "drift": tuple(int(v) for v in arr("q_drift", "<u8", (3,)))}
            for key in ("lo", "step", "seen_lo", "seen_hi", "full"):
                a = arrays["q_" + key]
                if a.dtype != np.float32 or a.ndim != 1:
                    raise ValueError(f"array 'q_{key}' has dtype {a.dtype} and shape {a.shape}")
                quant[key] = np.ascontiguousarray(a)
            codes = arrays["q_codes"]
            if codes.dtype != np.uint8 or codes.ndim != 1:
                raise ValueError(f"array 'q_codes' has dtype {codes.dtype} and shape {codes.shape}")
            quant["codes"] = np.ascontiguousarray(codes)
            if quantization in ("f16", "bf16") and fmt >= 4:
                # The fingerprint binds the 16-bit records to their kind (f16 vs bf16).
                want = arr("q_check", "<f8", (dim,))
                got = _fingerprint(quant["codes"], quantization, dim)
                if not np.allclose(got, want, rtol=1e-6, atol=0.0):
                    raise ValueError(f"the {quantization} records do not match their fingerprint")
            st.quant = quant
        mapping = MetricMapping(metric, METRICS["euclidean" if L is not None else metric], L)
        obj = cls.__new__(cls)
        obj._index = _core.HnswIndex.from_state(
            dim,
            mapping.core,
            M=M,
            ef_construction=_check_int("ef_construction", meta["ef_construction"], 1, _INT32_MAX),
            seed=_check_int("seed", meta["seed"], 0, (1 << 64) - 1),
            quantization=quantization,
            refine=refine,
            state=st,
        )
        obj._setup(
            mapping,
            _check_int("ef", meta["ef"], 1, MAX_K),
            _check_int("max_elements", meta["max_elements"], 0, _INT64_MAX),
        )
        # The block layout's codes are derived data: recomputed here, not stored.
        obj._index.seal_blocks(resolve_threads(None))
        obj._check_stored_vectors(arrays, quantization)
        return obj

    def _check_stored_vectors(self, arrays: dict[str, np.ndarray], quantization: Any) -> None:
        """What the graph checks cannot see: the vectors themselves, as a search reads them.
        Cosine: unit length (or zero); other metrics: magnitudes whose float32 distances do
        not overflow (the bound :meth:`add` enforces)."""
        if self._metric == "cosine":
            _check_cosine_storage(self, arrays, quantization)
            return
        ids = self._index.ids()
        for start in range(0, len(ids), 1 << 14):
            rows = self._index.get_items(np.ascontiguousarray(ids[start : start + (1 << 14)]))
            _check_magnitude(
                finite_magnitude(rows, "stored vector"), self.dim, "a stored vector", added=False
            )


__all__ = ["HNSWIndex"]
