"""What every index shares: query preparation, radius-result splitting, save/load/pickle.

An index subclass defines ``_KIND`` (the file kind), ``_get_state() -> (meta, arrays)`` and
``_from_state(meta, arrays)``; this mixin turns those into ``save``, ``load`` and pickling
through the checked container of ``_persist`` (magic, version, CRC, atomic writes).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _persist
from ._validation import as_matrix, check_k, to_array


def prepare_queries(Q: Any, dim: int, dtype: np.dtype, name: str = "Q") -> np.ndarray:
    """Queries as a C-contiguous (m, dim) array of the index's dtype, finite, right width."""
    arr = to_array(Q, name)
    arr = as_matrix(arr, name, dtype)
    if arr.shape[1] != dim:
        raise ValueError(
            f"{name} must have {dim} columns (the index dimension), got {arr.shape[1]}"
        )
    return arr


def prepare_k(k: Any) -> int:
    return check_k(k, "k")


def check_result_size(m: int, k: int, dtype: np.dtype) -> None:
    """MemoryError before allocating when an (m, k) result (distances + int64 ids) cannot fit
    in this machine's memory (a huge k is padded, so it really would be allocated)."""
    from ._distances import _physical_memory

    nbytes = m * k * (np.dtype(dtype).itemsize + 8)
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


class PersistMixin:
    """save / load / pickling for an index that can export and import its state."""

    _KIND = "index"

    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to `path` atomically (temporary file, fsync, rename).

        Parameters
        ----------
        path : str or os.PathLike
            Destination file; replaced only once the new file is complete.
        """
        meta, arrays = self._get_state()
        _persist.save(path, self._KIND, meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Any:
        """Read an index written by :meth:`save`.

        Raises
        ------
        ValueError
            The file is truncated, corrupted, of another kind or of an unknown version; the
            message names the path.
        """
        meta, arrays = _persist.load(path, cls._KIND)
        try:
            return cls._from_state(meta, arrays)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OverflowError) as exc:
            raise ValueError(
                f"{os.fspath(path)!r}: not a valid pysim {cls._KIND} index ({exc})"
            ) from None

    def __reduce__(self):
        meta, arrays = self._get_state()
        return (_rebuild, (type(self), _persist.dumps(self._KIND, meta, arrays)))
