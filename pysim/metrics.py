"""Verification, retrieval and ranking metrics: EER, TAR@FAR, minDCF, precision@1,
R-precision, MAP@R, and precision / recall / NDCG / MAP / hit rate at k for recommendations.

Verification metrics take one score per trial (higher = more alike, e.g. ``-distance`` or a
cosine similarity) and whether the trial is genuine (same identity) or an impostor. They are
all read off the same operating points: for every distinct score t, "accept when
score >= t" gives a false-accept rate FAR(t) (impostors accepted / impostors) and a
false-reject rate FRR(t) (genuine rejected / genuine); "accept nothing" (FAR 0, FRR 1) is
included as well. One sort gives all of them, so each metric is O(n log n).

Retrieval metrics follow Musgrave, Belongie and Lim, "A Metric Learning Reality Check"
(ECCV 2020), and take the labels of each query's ranked neighbours (for instance
``y[nn.kneighbors(X_query, R)[1]]``), so any index, exact or approximate, can be scored.

This module needs numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["eer", "min_dcf", "ranking_scores", "retrieval_scores", "tar_at_far"]


def _trials(scores: Any, same: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated (scores float64, same bool), both 1-D of one length, both classes present."""
    s = np.asarray(scores)
    if s.dtype.kind not in "biuf":
        raise TypeError(f"scores must be numeric, got dtype {s.dtype}")
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D (one score per trial), got shape {s.shape}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError("scores contains NaN or infinity")
    g = np.asarray(same)
    if g.ndim != 1 or g.shape != s.shape:
        raise ValueError(
            f"same must be 1-D with one entry per score ({s.shape[0]}), got shape {g.shape}"
        )
    if g.dtype != np.bool_:
        if g.dtype.kind not in "biuf" or not np.isin(g, (0, 1)).all():
            raise ValueError(
                "same must be boolean (or 0/1): True for genuine (same-identity) trials"
            )
        g = g.astype(bool)
    n_gen = int(g.sum())
    if n_gen == 0 or n_gen == len(g):
        raise ValueError(
            "same must contain both genuine (True) and impostor (False) trials; got "
            f"{n_gen} genuine and {len(g) - n_gen} impostor"
        )
    return s, g


def operating_points(scores: Any, same: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every operating point of the rule "accept when score >= threshold".

    Parameters
    ----------
    scores : array_like of shape (n_trials,)
        Higher = more alike.
    same : array_like of bool of shape (n_trials,)
        True for genuine trials, False for impostor trials.

    Returns
    -------
    thresholds : ndarray of shape (n_points,), float64
        ``inf`` (accept nothing), then each distinct score in decreasing order.
    far : ndarray of shape (n_points,), float64
        False-accept rate at each threshold (non-decreasing, from 0 to 1).
    frr : ndarray of shape (n_points,), float64
        False-reject rate at each threshold (non-increasing, from 1 to 0).
    """
    s, g = _trials(scores, same)
    order = np.argsort(-s, kind="stable")
    s, g = s[order], g[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # end of each run of equal scores
    tp = np.cumsum(g)[last]
    fp = last + 1 - tp
    n_gen = tp[-1]
    n_imp = fp[-1]
    thresholds = np.r_[np.inf, s[last]]
    far = np.r_[0.0, fp / n_imp]
    frr = np.r_[1.0, 1.0 - tp / n_gen]
    return thresholds, far, frr


def _eer_point(far: np.ndarray, frr: np.ndarray) -> tuple[float, int]:
    """EER on the ROC polyline, and the operating point nearest to it (index >= 1)."""
    gap = frr - far  # non-increasing: +1 at "accept nothing", -1 at "accept everything"
    j = int(np.argmax(gap <= 0))
    if gap[j] == 0:
        rate = float(far[j])
    else:
        a = gap[j - 1] / (gap[j - 1] - gap[j])
        rate = float(far[j - 1] + a * (far[j] - far[j - 1]))
    nearest = 1 + int(np.argmin(np.abs(gap[1:])))  # first minimum: the stricter threshold
    return rate, nearest


def eer(scores: Any, same: Any) -> float:
    """Equal error rate: where the false-accept and false-reject rates are equal.

    The operating points (FAR, FRR) of "accept when score >= t", over every distinct score
    t, are joined by straight lines (each segment is reachable by choosing between its two
    thresholds at random); the EER is where that line crosses FAR = FRR. This is the value
    of the usual ``roc_curve`` + interpolation recipe, computed exactly.

    Parameters
    ----------
    scores : array_like of shape (n_trials,)
        One score per trial, higher = more alike (e.g. ``-distance``).
    same : array_like of bool of shape (n_trials,)
        True for genuine (same-identity) trials, False for impostors. Both kinds needed.

    Returns
    -------
    float
        The equal error rate in [0, 1] (0: some threshold separates the two kinds).

    Examples
    --------
    >>> from pysim.metrics import eer
    >>> round(eer([0.9, 0.8, 0.7, 0.3, 0.2, 0.1], [True, True, False, True, False, False]), 4)
    0.3333
    """
    _, far, frr = operating_points(scores, same)
    return _eer_point(far, frr)[0]


def _check_rate(value: Any, name: str, *, open_interval: bool = False) -> float:
    """A number in [0, 1] (or (0, 1)); one message for the type and range errors alike."""
    bounds = "(0, 1)" if open_interval else "[0, 1]"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in {bounds}, got {value!r}")
    v = float(value)
    inside = 0.0 < v < 1.0 if open_interval else 0.0 <= v <= 1.0
    if not inside:
        raise ValueError(f"{name} must be in {bounds}, got {value!r}")
    return v


def _far_point(far: np.ndarray, target: float) -> int:
    """Index of the most accepting operating point whose FAR does not exceed `target`."""
    return int(np.searchsorted(far, target, side="right")) - 1


def tar_at_far(scores: Any, same: Any, far: float) -> float:
    """True-accept rate at the most accepting threshold whose false-accept rate <= `far`.

    No interpolation: the rate is that of a real threshold (a score), so it never claims an
    operating point that a fixed threshold cannot reach.

    Parameters
    ----------
    scores : array_like of shape (n_trials,)
        One score per trial, higher = more alike.
    same : array_like of bool of shape (n_trials,)
        True for genuine trials, False for impostors. Both kinds needed.
    far : float
        Largest acceptable false-accept rate, in [0, 1] (e.g. 1e-3).

    Returns
    -------
    float
        The true-accept rate (1 - FRR) in [0, 1].

    Examples
    --------
    >>> from pysim.metrics import tar_at_far
    >>> scores, same = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1], [True, True, False, True, False, False]
    >>> round(tar_at_far(scores, same, 0.0), 4)
    0.6667
    """
    target = _check_rate(far, "far")
    _, far_pts, frr = operating_points(scores, same)
    return float(1.0 - frr[_far_point(far_pts, target)])


# The verification metrics document the same (scores, same) arguments each, as numpydoc wants every
# public function in full; the checks are shared in _trials (duplicates pairs the docstrings).
def min_dcf(
    scores: Any, same: Any, *, p_target: float = 0.01, c_miss: float = 1, c_fa: float = 1
) -> float:
    """Minimum normalised detection cost (NIST speaker recognition evaluations).

    ``DCF(t) = c_miss * p_target * FRR(t) + c_fa * (1 - p_target) * FAR(t)``, divided by the
    cost of the best trivial system ``min(c_miss * p_target, c_fa * (1 - p_target))`` (accept
    all or reject all), minimised over every threshold. 1 means no better than trivial.

    Parameters
    ----------
    scores : array_like of shape (n_trials,)
        One score per trial, higher = more alike.
    same : array_like of bool of shape (n_trials,)
        True for genuine trials, False for impostors. Both kinds needed.
    p_target : float, default=0.01
        Prior probability of a genuine trial, in (0, 1).
    c_miss : float, default=1
        Cost of a false reject (> 0).
    c_fa : float, default=1
        Cost of a false accept (> 0).

    Returns
    -------
    float
        The minimum normalised DCF, in [0, 1].
    """
    for name, value in (("c_miss", c_miss), ("c_fa", c_fa)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a positive number, got {value!r}")
        if not (value > 0 and np.isfinite(value)):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    p = _check_rate(p_target, "p_target", open_interval=True)
    _, far, frr = operating_points(scores, same)
    dcf = c_miss * p * frr + c_fa * (1.0 - p) * far
    return float(dcf.min() / min(c_miss * p, c_fa * (1.0 - p)))


def _labels(x: Any, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def retrieval_scores(
    neighbor_labels: Any,
    query_labels: Any,
    reference_labels: Any,
    *,
    exclude_self: bool | None = None,
) -> dict[str, float]:
    """Precision@1, R-precision and MAP@R of ranked neighbours (Musgrave et al. 2020).

    For a query whose label occurs R times in the reference set (R - 1 when the queries are
    the reference set, since a query is not its own neighbour):

    - precision@1: 1 if the first neighbour has the query's label;
    - R-precision: the share of the query's label among the first R neighbours;
    - MAP@R: ``(1/R) * sum_{i<=R} P(i) * [neighbour i has the label]``, P(i) being the
      precision among the first i neighbours: like R-precision, but rewarding correct
      neighbours ranked first.

    Each is averaged over the queries with R >= 1 (a query whose label has no other
    reference item cannot be scored and is left out).

    Parameters
    ----------
    neighbor_labels : array_like of shape (n_queries, n_neighbors)
        Labels of each query's neighbours, nearest first, the query itself excluded (for
        instance ``y_ref[ind]`` with ``ind`` from ``kneighbors``). Needs at least as many
        columns as the largest R; extra columns are ignored.
    query_labels : array_like of shape (n_queries,)
        Label of each query.
    reference_labels : array_like of shape (n_references,)
        Labels of the searched (reference) set, used to count R.
    exclude_self : bool or None, default=None
        Whether the queries are the reference set (R then excludes the query itself).
        ``None``: True exactly when ``query_labels`` and ``reference_labels`` are the same
        array (the same object, or views of the same memory with the same shape).

    Returns
    -------
    dict
        ``{"precision_at_1": float, "r_precision": float, "map_at_r": float}``, each in
        [0, 1].

    Raises
    ------
    ValueError
        Mismatched shapes, fewer neighbour columns than the largest R, or no query with
        R >= 1.

    Examples
    --------
    >>> from pysim.metrics import retrieval_scores
    >>> y = [0, 0, 1, 1]
    >>> neighbors = [[0], [0], [1], [0]]  # label of each point's nearest other point
    >>> retrieval_scores(neighbors, y, y)
    {'precision_at_1': 0.75, 'r_precision': 0.75, 'map_at_r': 0.75}
    """
    if exclude_self is None:
        a, b = np.asarray(query_labels), np.asarray(reference_labels)
        exclude_self = query_labels is reference_labels or (
            a.shape == b.shape
            and a.size > 0
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides
        )
    elif not isinstance(exclude_self, (bool, np.bool_)):
        raise TypeError(f"exclude_self must be a bool or None, got {exclude_self!r}")
    nl = _labels(neighbor_labels, "neighbor_labels", 2)
    ql = _labels(query_labels, "query_labels", 1)
    rl = _labels(reference_labels, "reference_labels", 1)
    if nl.shape[0] != ql.shape[0]:
        raise ValueError(
            f"neighbor_labels must have one row per query ({ql.shape[0]}), got {nl.shape[0]}"
        )
    if exclude_self and ql.shape[0] != rl.shape[0]:
        raise ValueError("exclude_self=True needs as many queries as reference items")
    uniq, ref_counts = np.unique(rl, return_counts=True)
    pos = np.searchsorted(uniq, ql)
    pos_ok = pos < len(uniq)
    found = np.zeros(len(ql), dtype=bool)
    found[pos_ok] = uniq[pos[pos_ok]] == ql[pos_ok]
    R = np.where(found, ref_counts[np.minimum(pos, len(uniq) - 1)], 0) - int(bool(exclude_self))
    R = np.maximum(R, 0)
    scored = R >= 1
    if not scored.any():
        raise ValueError("no query has another reference item with its label (R = 0 for all)")
    max_r = int(R.max())
    if nl.shape[1] < max_r:
        raise ValueError(
            f"neighbor_labels needs at least max R = {max_r} columns (the largest number of "
            f"reference items sharing a query's label), got {nl.shape[1]}"
        )
    R = R[scored]
    hits = nl[scored][:, : max(max_r, 1)] == ql[scored][:, None]  # (q, max_r)
    within = np.arange(hits.shape[1])[None, :] < R[:, None]
    hits &= within
    ranks = np.arange(1, hits.shape[1] + 1)
    precision_at_i = np.cumsum(hits, axis=1) / ranks
    return {
        "precision_at_1": float(hits[:, 0].mean()),
        "r_precision": float((hits.sum(axis=1) / R).mean()),
        "map_at_r": float(((precision_at_i * hits).sum(axis=1) / R).mean()),
    }


def _relevant_sets(relevant: Any, n_users: int) -> list[np.ndarray]:
    """Per user, the sorted unique relevant item ids (from a sparse matrix or a list)."""
    if hasattr(relevant, "tocsr"):
        m = relevant.tocsr()
        if m.shape[0] != n_users:
            raise ValueError(
                f"relevant must have one row per recommended row ({n_users}), got {m.shape[0]}"
            )
        m = m.copy()
        m.eliminate_zeros()
        m.sort_indices()
        return [
            np.unique(m.indices[m.indptr[r] : m.indptr[r + 1]]).astype(np.int64)
            for r in range(n_users)
        ]
    if not isinstance(relevant, (list, tuple)) and not (
        isinstance(relevant, np.ndarray) and relevant.dtype == object
    ):
        raise TypeError("relevant must be a scipy.sparse matrix or a list of item-id arrays")
    if len(relevant) != n_users:
        raise ValueError(
            f"relevant must have one entry per recommended row ({n_users}), got {len(relevant)}"
        )
    out = []
    for r, rel in enumerate(relevant):
        arr = np.asarray(rel)
        if arr.size and (arr.dtype.kind not in "iu" or arr.ndim != 1):
            raise TypeError(f"relevant[{r}] must be a 1-D array of item ids")
        out.append(np.unique(arr.astype(np.int64)))
    return out


def ranking_scores(recommended: Any, relevant: Any, *, k: int = 10) -> dict[str, float]:
    """Precision, recall, NDCG, MAP and hit rate at k of ranked recommendations.

    Binary relevance: an item is relevant to a user when it is in the user's `relevant`
    set (e.g. their held-out test interactions). For one user with relevant set R and the
    first k recommendations r_1..r_k (padding ``-1`` and repeats are never hits):

    - precision@k = hits / k; recall@k = hits / ``|R|``; hit rate = [hits > 0];
    - NDCG@k = DCG / IDCG with DCG = sum_i [r_i in R] / log2(i + 1) and IDCG the DCG of
      ``min(k, |R|)`` hits in front;
    - MAP@k = ``(1 / min(k, |R|))`` sum_i precision@i * [r_i in R].

    Each is averaged over the users with at least one relevant item.

    Parameters
    ----------
    recommended : array_like of int, shape (n_users, >= k)
        Recommended item ids per user, best first, ``-1`` padded (as returned by
        ``recommend``).
    relevant : scipy.sparse matrix of shape (n_users, n_items) or list of arrays of int
        Relevant items per user (non-zero entries of the matrix).
    k : int, default=10
        Cut-off (>= 1).

    Returns
    -------
    dict
        ``{"precision", "recall", "ndcg", "map", "hit_rate"}``, each in [0, 1].

    Examples
    --------
    >>> from pysim.metrics import ranking_scores
    >>> s = ranking_scores([[3, 1, -1], [0, 2, 4]], [[1], [5, 6]], k=2)
    >>> s["precision"], s["recall"], s["hit_rate"]
    (0.25, 0.5, 0.5)
    """
    from ._validation import check_int

    k = check_int(k, "k", 1)
    rec = np.asarray(recommended)
    if rec.dtype.kind not in "iu":
        raise TypeError(f"recommended must hold integer item ids, got dtype {rec.dtype}")
    if rec.ndim != 2:
        raise ValueError(f"recommended must be 2-D (n_users, n_recommended), got {rec.shape}")
    if rec.shape[1] < k:
        raise ValueError(f"recommended needs at least k = {k} columns, got {rec.shape[1]}")
    sets = _relevant_sets(relevant, rec.shape[0])
    top = rec[:, :k].astype(np.int64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    sums = np.zeros(5)
    scored = 0
    for r, rel in enumerate(sets):
        if rel.size == 0:
            continue
        row = top[r]
        first = np.zeros(k, dtype=bool)  # first occurrence of each id (repeats never count)
        _, pos = np.unique(row, return_index=True)
        first[pos] = True
        hit = first & (row >= 0) & np.isin(row, rel)
        hits = int(hit.sum())
        ideal = min(k, rel.size)
        sums += (
            hits / k,
            hits / rel.size,
            float(discounts[hit].sum() / discounts[:ideal].sum()),
            float((np.cumsum(hit) / np.arange(1, k + 1))[hit].sum() / ideal),
            float(hits > 0),
        )
        scored += 1
    if scored == 0:
        raise ValueError("no user has a relevant item; nothing to score")
    keys = ("precision", "recall", "ndcg", "map", "hit_rate")
    return {key: float(v / scored) for key, v in zip(keys, sums, strict=True)}
