"""Conversions shared by the recommenders: interaction matrices, user and item ids.

The recommend core takes CSR matrices as three canonical arrays (int64 row pointers, int32
column numbers sorted within each row, float64 weights, no explicit zeros); everything a
user passes (any scipy.sparse format, a dense array, a 1-D row) is brought to that form here,
once, with errors naming the argument. Weights must be finite and >= 0: an interaction
strength (a zero is "not seen").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

_MAX_ITEMS = 2**31 - 1  # column numbers are int32 in the core


def as_interactions(x: Any, name: str, *, n_items: int | None = None) -> sp.csr_matrix:
    """`x` as a canonical float64 CSR matrix (sorted, summed duplicates, no stored zeros).

    A 1-D dense array is one row. With `n_items`, the column count must match it.
    """
    if sp.issparse(x):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got {x.ndim}-D")
        m = sp.csr_matrix(x, dtype=np.float64, copy=True)
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a scipy.sparse matrix or an array: {exc}") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"{name} must be a scipy.sparse matrix or a numeric array, got dtype {arr.dtype}"
            )
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_users, n_items), got shape {arr.shape}")
        m = sp.csr_matrix(arr.astype(np.float64, copy=False))
    m.sum_duplicates()  # also sorts the column numbers of each row
    data = m.data
    if data.size and not np.isfinite(data).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if data.size and data.min() < 0:
        raise ValueError(f"{name} must hold interaction weights >= 0, got {data.min():g}")
    m.eliminate_zeros()
    if m.shape[1] > _MAX_ITEMS:
        raise ValueError(f"{name} has {m.shape[1]} columns; at most {_MAX_ITEMS} items")
    if n_items is not None and m.shape[1] != n_items:
        raise ValueError(
            f"{name} must have {n_items} columns (the items seen at fit time), got {m.shape[1]}"
        )
    return m


def parts(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, indices int32, data float64), C-contiguous, of a canonical CSR matrix."""
    return (
        np.ascontiguousarray(m.indptr, dtype=np.int64),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        np.ascontiguousarray(m.data, dtype=np.float64),
    )


def as_ids(x: Any, name: str, upper: int | None, what: str) -> tuple[np.ndarray, bool]:
    """(int64 1-D ids, was_scalar). Ints only (no bools or floats), each in [0, upper)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be an int or an array of ints, got {x!r:.80}")
    scalar = arr.ndim == 0
    if arr.ndim > 1:
        raise ValueError(f"{name} must be an int or a 1-D array of ints, got shape {arr.shape}")
    ids = np.ascontiguousarray(arr.reshape(-1), dtype=np.int64)
    if ids.size:
        if ids.min() < 0:
            raise ValueError(f"{name} must be >= 0, got {int(ids.min())}")
        if upper is not None and ids.max() >= upper:
            raise ValueError(
                f"{name} contains {int(ids.max())}, but only {what} 0..{upper - 1} exist "
                "(those seen at fit time)"
            )
    return ids, scalar


def banned_mask(exclude: Any, items: Any, n_items: int) -> np.ndarray:
    """One byte per item (1 = never recommended), or an empty array when nothing is banned."""
    if exclude is None and items is None:
        return np.zeros(0, dtype=np.uint8)
    banned = np.zeros(n_items, dtype=np.uint8)
    if items is not None:
        allowed, _ = as_ids(items, "items", n_items, "item ids")
        banned[:] = 1
        banned[allowed] = 0
    if exclude is not None:
        excluded, _ = as_ids(exclude, "exclude", n_items, "item ids")
        banned[excluded] = 1
    return banned
