"""The top-k merge of per-shard results (pure numpy: it runs on the workers, in a tree).

Why a sort on keys instead of a heap merge: a vectorised ``lexsort`` over the concatenated
candidates of two shards is a few microseconds per query row, has no comparison that a NaN can
poison (NaN is sorted after every number, consistently), and its order is fully specified:
real results first, then ascending distance, then the smaller id; padding (id -1) last.
"""

from __future__ import annotations

import numpy as np


def pad_result(m: int, k: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The empty answer: ``m`` rows of ``k`` (inf, -1) pairs."""
    return np.full((m, k), np.inf, dtype=dtype), np.full((m, k), -1, dtype=np.int64)


def merge_topk(
    parts: list[tuple[np.ndarray, np.ndarray]] | tuple[tuple[np.ndarray, np.ndarray], ...],
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard ``(distances, ids)`` results into the overall top ``k``.

    Parameters
    ----------
    parts : sequence of (ndarray (m, k_i), ndarray of int64 (m, k_i))
        Per-shard answers for the same ``m`` queries (any k_i); ids are disjoint across parts.
    k : int
        Results kept per query.

    Returns
    -------
    distances : ndarray, shape (m, k)
        Ascending; NaN after every number; ``inf`` padding at the tail.
    ids : ndarray of int64, shape (m, k)
        Ties broken by the smaller id; ``-1`` padding.
    """
    parts = list(parts)
    if len(parts) == 1 and parts[0][0].shape[1] == k:
        return parts[0]
    d = np.concatenate([p[0] for p in parts], axis=1)
    i = np.concatenate([p[1] for p in parts], axis=1)
    m, width = i.shape
    if width < k:
        pd, pi = pad_result(m, k - width, d.dtype)
        d, i = np.concatenate([d, pd], axis=1), np.concatenate([i, pi], axis=1)
    pad = i < 0
    # lexsort: the last key is the primary one. NaN sorts after inf; padding after both.
    order = np.lexsort((np.where(pad, np.iinfo(np.int64).max, i), d, pad), axis=-1)[:, :k]
    d = np.take_along_axis(d, order, axis=1)
    i = np.take_along_axis(i, order, axis=1)
    tail = i < 0
    if tail.any():
        d[tail] = np.inf
    return np.ascontiguousarray(d), np.ascontiguousarray(i)


def merge_pair(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """One node of the merge tree (a Dask task): :func:`merge_topk` of two results."""
    return merge_topk((a, b), k)
