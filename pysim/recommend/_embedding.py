"""EmbeddingRecommender: content-based "more like these" over a vector index of items.

A user is the aggregate (mean or sum) of the stored vectors of the items in their history;
the recommendations are that vector's nearest items. Seen and excluded items are removed
inside the search, through the index's id filter (for HNSWIndex a bitset tested in C++
during the graph walk, or an exact scan when few ids remain), so N results come back
whenever N other items exist: no over-fetching and dropping. One search per user, since each
user has their own exclusion set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import MAX_K, check_flag, check_int
from ._input import as_ids

_AGGREGATES = ("mean", "sum")


class EmbeddingRecommender:
    """Recommend the items nearest to the aggregate of a user's item embeddings.

    Parameters
    ----------
    index : HNSWIndex
        A pysim index whose ids are item ids and that can return stored vectors
        (``get_items``) and filter ids inside its search (``query(..., filter=)``);
        ``pysim.HNSWIndex`` does both.
    aggregate : {"mean", "sum"}, default="mean"
        How the history's vectors become the query.

    Examples
    --------
    >>> import numpy as np, pysim
    >>> from pysim.recommend import EmbeddingRecommender
    >>> X = np.random.default_rng(0).random((100, 8), dtype=np.float32)
    >>> index = pysim.HNSWIndex(8, metric="cosine")
    >>> index.add(X)
    >>> scores, items = EmbeddingRecommender(index).recommend([np.array([3, 7])], N=5)
    >>> bool(np.isin(items, [3, 7]).any())
    False
    """

    def __init__(self, index: Any, *, aggregate: str = "mean"):
        for method in ("get_items", "query", "ids"):
            if not hasattr(index, method):
                raise TypeError(
                    "index must be a pysim index with get_items(), ids and query(filter=) "
                    f"(e.g. pysim.HNSWIndex); {type(index).__name__} has no {method!r}"
                )
        if not isinstance(aggregate, str) or aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate must be one of {_AGGREGATES}, got {aggregate!r}")
        self.index = index
        self.aggregate = aggregate

    def recommend(
        self, histories: Any, N: int = 10, *, exclude_seen: bool = True, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The N items nearest to each user's history.

        Parameters
        ----------
        histories : list of array_like of int
            One array of item ids (index ids) per user; an empty array gives a padded row.
        N : int, default=10
            Recommendations per user (>= 1).
        exclude_seen : bool, default=True
            Never recommend an item of the user's history.
        exclude : array_like of int, optional
            Item ids never recommended.

        Returns
        -------
        scores : ndarray of float32, shape (n_users, N)
            Descending: ``1 - distance`` (the cosine / inner product) for "cosine" and "ip"
            indexes, ``-distance`` otherwise; ``-inf`` pads.
        items : ndarray of int64, shape (n_users, N)
            Item ids, ``-1`` pads.

        Raises
        ------
        ValueError
            An id that is not in the index, negative ids, N < 1.
        TypeError
            Non-integer ids, `histories` not a list of arrays.
        """
        N = check_int(N, "N", 1, MAX_K)
        exclude_seen = check_flag(exclude_seen, "exclude_seen")
        if isinstance(histories, np.ndarray) and histories.dtype != object:
            raise TypeError("histories must be a list of item-id arrays (one per user)")
        if not isinstance(histories, (list, tuple, np.ndarray)):
            raise TypeError("histories must be a list of item-id arrays (one per user)")
        all_ids = self.index.ids
        banned = np.zeros(0, np.int64)
        if exclude is not None:
            banned, _ = as_ids(exclude, "exclude", None, "item ids")
        users = []
        for u, h in enumerate(histories):
            ids, _ = as_ids(h, f"histories[{u}]", None, "item ids")
            missing = ids[~np.isin(ids, all_ids)]
            if missing.size:
                raise ValueError(f"histories[{u}] contains {int(missing[0])}, not in the index")
            users.append(ids)
        scores = np.full((len(users), N), -np.inf, dtype=np.float32)
        items = np.full((len(users), N), -1, dtype=np.int64)
        signed = getattr(self.index, "metric", "") in ("cosine", "ip")
        for u, ids in enumerate(users):
            if ids.size == 0:
                continue
            vectors = np.asarray(self.index.get_items(ids), dtype=np.float64)
            query = vectors.mean(axis=0) if self.aggregate == "mean" else vectors.sum(axis=0)
            drop = np.union1d(ids, banned) if exclude_seen else banned
            allowed = np.setdiff1d(all_ids, drop, assume_unique=True)
            if allowed.size == 0:
                continue
            dist, found = self.index.query(query.astype(np.float32), k=N, filter=allowed)
            ok = found[0] >= 0
            scores[u, ok] = (1.0 - dist[0, ok]) if signed else -dist[0, ok]
            items[u, ok] = found[0, ok]
        return scores, items
