"""Evaluation split: per user, the latest interactions are the test set.

A random split leaks the future into training (a user's later tastes predict their earlier
ones); holding out each user's most recent interactions is the protocol the benchmarks and
the MovieLens quality tests use. Pure numpy: one lexsort, then a rank within each user.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import to_array


def _ids(x: Any, name: str) -> np.ndarray:
    arr = to_array(x, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers (0-based row/column numbers), got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {int(arr.min())}")
    return arr.astype(np.int64, copy=False)


def temporal_split(
    users: Any, items: Any, timestamps: Any, *, test_fraction: float = 0.2
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split interactions in time: each user's latest ones form the test set.

    Parameters
    ----------
    users : array_like of int, shape (n,)
        User of each interaction (a row number, 0-based; map raw ids with
        ``np.unique(ids, return_inverse=True)[1]``).
    items : array_like of int, shape (n,)
        Item of each interaction (a column number, 0-based).
    timestamps : array_like of numbers, shape (n,)
        When each interaction happened. Ties are broken by item id.
    test_fraction : float, default=0.2
        Share of each user's interactions held out, in (0, 1): ``round(test_fraction *
        n_u)`` of them, at least one, and never all of them when the user has two or more.

    Returns
    -------
    train, test : scipy.sparse.csr_matrix of shape (n_users, n_items), float32
        Interaction counts (1 per interaction), ``n_users = users.max() + 1`` and
        ``n_items = items.max() + 1``; together they hold every interaction.

    Examples
    --------
    >>> from pysim.recommend import temporal_split
    >>> train, test = temporal_split([0, 0, 0, 1, 1], [0, 1, 2, 0, 2], [3, 1, 2, 5, 4])
    >>> test.toarray().tolist()
    [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    """
    u = _ids(users, "users")
    i = _ids(items, "items")
    t = to_array(timestamps, "timestamps")
    if t.ndim != 1:
        raise ValueError(f"timestamps must be 1-D, got shape {t.shape}")
    if not (len(u) == len(i) == len(t)):
        raise ValueError(
            f"users, items and timestamps must have one length, got {len(u)}, {len(i)}, {len(t)}"
        )
    if t.dtype.kind == "f" and not np.isfinite(t).all():
        raise ValueError("timestamps contains NaN or infinity")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.number)):
        raise TypeError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if len(u) == 0:
        raise ValueError("at least one interaction is needed")
    shape = (int(u.max()) + 1, int(i.max()) + 1)
    order = np.lexsort((i, t, u))  # by user, then time, then item
    us = u[order]
    counts = np.bincount(us, minlength=shape[0])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(us)) - starts[us]  # 0 = the user's earliest interaction
    n_test = np.maximum(1, np.rint(float(test_fraction) * counts).astype(np.int64))
    n_test = np.where(counts >= 2, np.minimum(n_test, counts - 1), counts)
    is_test = rank >= (counts - n_test)[us]
    ones = np.ones(len(us), dtype=np.float32)

    def build(mask: np.ndarray) -> sp.csr_matrix:
        m = sp.csr_matrix((ones[mask], (us[mask], i[order][mask])), shape=shape)
        m.sum_duplicates()
        return m

    return build(~is_test), build(is_test)
