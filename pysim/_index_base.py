"""What every index shares: the query prologue, the radius rule, save/load/pickle.

``SearchIndex`` is the one surface of BruteForceIndex, KDTreeIndex and HNSWIndex: every query
validates its arguments in the same order (k, threads, queries, then the result-size check,
so the same bad call gets the same error from every index), every radius search follows the
same radius rule (:func:`check_radii`), and persistence goes through ``PersistMixin``.

A subclass defines ``_KIND`` (the file kind), ``_get_state() -> (meta, arrays)`` and
``_from_state(meta, arrays)``; the mixin turns those into ``save``, ``load`` and pickling
through the checked container of ``_persist`` (magic, version, CRC, atomic writes).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _persist
from ._validation import MAX_K, as_matrix, check_flag, check_int, resolve_threads, to_array


def prepare_queries(Q: Any, dim: int, dtype: np.dtype, name: str = "Q") -> np.ndarray:
    """Queries as a C-contiguous (m, dim) array of the index's dtype, finite, right width."""
    arr = to_array(Q, name)
    arr = as_matrix(arr, name, dtype)
    if arr.shape[1] != dim:
        raise ValueError(
            f"{name} must have {dim} columns (the index dimension), got {arr.shape[1]}"
        )
    return arr


def check_radii(r: Any, m: int, *, signed: bool = False) -> np.ndarray:
    """The radius rule of every index: a number, or one per query (shape (m,)); not NaN, and
    >= 0 unless the metric's distances can be negative (`signed`: "ip", 1 - a.b); ``inf``
    finds everything. Returned as a float64 array of m radii."""
    if r is None or isinstance(r, (bool, np.bool_)):
        raise TypeError(f"r must be a number or an array of {m} numbers, got {r!r}")
    try:
        arr = np.asarray(r, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"r must be a number or an array of {m} numbers, got {r!r}") from None
    if arr.ndim == 0:
        arr = np.full(m, float(arr))
    elif arr.shape != (m,):
        raise ValueError(
            f"r must be a scalar or have shape ({m},) (one per query), got {arr.shape}"
        )
    if np.isnan(arr).any():
        raise ValueError("r contains NaN")
    if not signed and (arr < 0).any():
        raise ValueError(f"r must be >= 0, got {float(arr.min())}")
    return np.ascontiguousarray(arr)


#: Results up to this size are never refused: a machine that runs pysim has far more memory,
#: and looking the memory up (two cgroup files) cost more than a small search itself.
_ALWAYS_FITS = 1 << 26


def check_result_size(m: int, k: int, dtype: np.dtype) -> None:
    """MemoryError before allocating when an (m, k) result (distances + int64 ids) cannot fit
    in this machine's memory (a huge k is padded, so it really would be allocated)."""
    nbytes = m * k * (np.dtype(dtype).itemsize + 8)
    if nbytes <= _ALWAYS_FITS:
        return  # the common case, without the memory lookup (sysconf and cgroup file reads)
    from ._distances import _physical_memory

    limit = min(int(np.iinfo(np.intp).max), _physical_memory())
    if nbytes > limit:
        raise MemoryError(
            f"a ({m}, {k}) search result needs {nbytes / 2**30:.1f} GiB, more than this "
            f"machine's {limit / 2**30:.1f} GiB of memory; lower k"
        )


def split_csr(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """CSR pieces -> object array of per-row arrays (views into `values`)."""
    out = np.empty(len(indptr) - 1, dtype=object)
    for i in range(len(out)):
        out[i] = values[indptr[i] : indptr[i + 1]]
    return out


def _rebuild(cls: type, blob: bytes) -> Any:
    meta, arrays = _persist.loads_pickle(blob, cls._KIND)
    try:
        return cls._from_state(meta, arrays)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OverflowError) as exc:
        raise ValueError(f"corrupt pysim pickle: {exc}") from None


class SearchIndex:
    """The query surface every index shares (see the module docstring)."""

    dim: int

    def _prepare_queries(self, Q: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _result_dtype(self) -> np.dtype:  # pragma: no cover - abstract
        raise NotImplementedError

    def _query_prologue(self, Q: Any, k: Any, threads: Any) -> tuple[np.ndarray, int, int]:
        """(queries, k, threads), validated in the one order every index uses."""
        k = check_int(k, "k", 1, 2**63 - 1)  # a huge k is a MemoryError below, as the contract says
        nthreads = resolve_threads(threads)
        rows = self._prepare_queries(Q)
        check_result_size(rows.shape[0], k, self._result_dtype())
        if k > MAX_K:  # fits in memory for few queries, but the core counts k in 32 bits
            raise ValueError(f"k must be <= {MAX_K}, got {k}")
        return rows, k, nthreads

    def _radius_prologue(
        self, Q: Any, r: Any, return_distance: Any, sort_results: Any, threads: Any
    ) -> tuple[np.ndarray, np.ndarray, bool, bool, int]:
        """(queries, float64 radii, return_distance, sort_results, threads)."""
        want = check_flag(return_distance, "return_distance")
        sort = check_flag(sort_results, "sort_results")
        nthreads = resolve_threads(threads)
        rows = self._prepare_queries(Q)
        signed = getattr(self, "metric", None) == "ip"
        return rows, check_radii(r, rows.shape[0], signed=signed), want, sort, nthreads


class PersistMixin:
    """save / load / pickling for an index or model that can export and import its state.

    The indexes and the recommenders use it alike; ``_NOUN`` names what the class is in the
    error a bad file raises.
    """

    _KIND = "index"
    _NOUN = "index"

    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> None:
        """Write this object to `path` atomically (temporary file, fsync, rename).

        Parameters
        ----------
        path : str or os.PathLike
            Destination file; replaced only once the new file is complete. A symbolic link
            is followed (its target is replaced, the link stays). An existing file keeps its
            permission bits; a new one gets those of ``open()`` (0o666 less the umask).

        Raises
        ------
        ValueError
            `path` is a directory, FIFO, socket or device (nothing is written).

        Notes
        -----
        A save killed half-way leaves the destination intact and at most one temporary file
        (``.<name>.pysim-tmp``), which the next save to that destination removes. A save
        during other calls writes one consistent state (see the README's guarantees).
        """
        meta, arrays = self._get_state()
        _persist.save(path, self._KIND, meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Any:
        """Read an object of this class written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            File written by :meth:`save` for this class.

        Returns
        -------
        object
            A new object of this class (an index, or a fitted model), equal to the one saved.

        Raises
        ------
        ValueError
            The file is truncated, corrupted, inconsistent, of another kind or of an unknown
            version, or `path` is a directory, FIFO, socket or device (refused without
            blocking); the message names the path.
        """
        meta, arrays = _persist.load(path, cls._KIND)
        try:
            return cls._from_state(meta, arrays)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OverflowError) as exc:
            raise ValueError(
                f"{os.fspath(path)!r}: not a valid pysim {cls._KIND} {cls._NOUN} ({exc})"
            ) from None

    def __reduce__(self):
        meta, arrays = self._get_state()
        return (_rebuild, (type(self), _persist.dumps(self._KIND, meta, arrays)))
