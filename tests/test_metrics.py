"""pysim.metrics: verification rates and retrieval scores on hand-computed cases.

Each metric is checked on small trials worked out by hand (values in the comments), against
an independent naive implementation on random trials, and for its input errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.datasets import load_digits
from sklearn.metrics import roc_curve

import pysim
from pysim.metrics import eer, min_dcf, retrieval_scores, tar_at_far

# Scores (higher = more alike) and genuine flags, sorted by score for readability:
# 0.9 G, 0.8 G, 0.7 I, 0.3 G, 0.2 I, 0.1 I.
# Operating points (FAR, FRR): (0, 1), (0, 2/3), (0, 1/3), (1/3, 1/3), (1/3, 0), (2/3, 0), (1, 0)
S = [0.3, 0.9, 0.1, 0.7, 0.8, 0.2]
G = [True, True, False, False, True, False]


def naive_points(scores, same):
    """FAR/FRR for "accept >= t" at t = +inf and every distinct score, by counting."""
    scores, same = np.asarray(scores, float), np.asarray(same, bool)
    out = [(0.0, 1.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        acc = scores >= t
        out.append(((acc & ~same).sum() / (~same).sum(), (~acc & same).sum() / same.sum()))
    return np.array(out)


def naive_eer(scores, same):
    """Walk the polyline of operating points until FRR - FAR changes sign; interpolate."""
    pts = naive_points(scores, same)
    for (f0, r0), (f1, r1) in zip(pts[:-1], pts[1:], strict=True):
        if r1 - f1 <= 0:
            if r1 == f1:
                return f1
            a = (r0 - f0) / ((r0 - f0) - (r1 - f1))
            return f0 + a * (f1 - f0)
    raise AssertionError("no crossing")


def test_eer_hand_cases():
    assert eer(S, G) == pytest.approx(1 / 3)  # the point (1/3, 1/3) lies on FAR = FRR
    # 0.9 G; 0.5 G and I tied; 0.1 I: points (0, 1), (0, 1/2), (1/2, 0), (1, 0). The segment
    # from (0, 1/2) to (1/2, 0) crosses FAR = FRR at 1/4.
    assert eer([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == pytest.approx(0.25)
    # Separable: EER 0; fully inverted: EER 1.
    assert eer([3, 2, 1, 0], [1, 1, 0, 0]) == 0.0
    assert eer([0, 1, 2, 3], [1, 1, 0, 0]) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_eer_matches_naive_and_roc_interpolation(seed):
    rng = np.random.default_rng(seed)
    n_gen, n_imp = rng.integers(20, 200, 2)
    scores = np.r_[rng.normal(1.0, 1.0, n_gen), rng.normal(0.0, 1.0, n_imp)].round(1)  # ties too
    same = np.r_[np.ones(n_gen, bool), np.zeros(n_imp, bool)]
    assert eer(scores, same) == pytest.approx(naive_eer(scores, same), abs=1e-12)
    # The usual recipe: interpolate scikit-learn's ROC and solve FPR = 1 - TPR.
    fpr, tpr, _ = roc_curve(same, scores)
    recipe = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert eer(scores, same) == pytest.approx(recipe, abs=1e-9)


def test_tar_at_far_hand_cases():
    assert tar_at_far(S, G, 0.0) == pytest.approx(2 / 3)  # accept >= 0.8
    assert tar_at_far(S, G, 0.2) == pytest.approx(2 / 3)  # FAR 1/3 would be too many
    assert tar_at_far(S, G, 1 / 3) == pytest.approx(1.0)  # accept >= 0.3
    assert tar_at_far(S, G, 1.0) == 1.0
    # No threshold reaches FAR 0 while accepting anything: TAR 0.
    assert tar_at_far([0.9, 0.5], [False, True], 0.0) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_tar_at_far_matches_naive(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=300).round(2)
    same = rng.random(300) < scores.clip(-2, 2) / 4 + 0.5
    pts = naive_points(scores, same)
    for far in (0.0, 0.01, 0.05, 0.1, 0.5):
        want = max(1 - frr for f, frr in pts if f <= far)
        assert tar_at_far(scores, same, far) == pytest.approx(want)


def test_min_dcf_hand_cases():
    # p_target = 0.5, unit costs: DCF/0.5 = FRR + FAR, smallest at (0, 1/3) and (1/3, 0): 1/3.
    assert min_dcf(S, G, p_target=0.5) == pytest.approx(1 / 3)
    # p_target = 0.01: (0.01 FRR + 0.99 FAR) / 0.01 = FRR + 99 FAR, smallest at (0, 1/3).
    assert min_dcf(S, G) == pytest.approx(1 / 3)
    # Costs: c_miss = 10, p = 0.5 -> (5 FRR + 0.5 FAR) / 0.5 = 10 FRR + FAR,
    # smallest 1/3 at (1/3, 0).
    assert min_dcf(S, G, p_target=0.5, c_miss=10) == pytest.approx(1 / 3)
    # A useless system costs what the best trivial decision costs: 1.
    assert min_dcf([0, 1, 2, 3], [1, 1, 0, 0], p_target=0.3) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: eer([1, 2], [True, True]), ValueError, "both genuine"),
        (lambda: eer([1, 2, 3], [True, False]), ValueError, "one entry per score"),
        (lambda: eer([1, np.nan], [True, False]), ValueError, "NaN"),
        (lambda: eer([[1, 2]], [[True, False]]), ValueError, "1-D"),
        (lambda: eer([1, 2], [2, 0]), ValueError, "boolean"),
        (lambda: eer(["a", "b"], [True, False]), TypeError, "numeric"),
        (lambda: tar_at_far(S, G, 1.5), ValueError, r"far must be in \[0, 1\]"),
        (lambda: tar_at_far(S, G, "x"), TypeError, "far"),
        (lambda: min_dcf(S, G, p_target=0.0), ValueError, "p_target"),
        (lambda: min_dcf(S, G, c_fa=-1), ValueError, "c_fa"),
    ],
)
def test_verification_metric_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------------------
# retrieval
# --------------------------------------------------------------------------------------


def test_retrieval_hand_case_queries_are_the_reference():
    y = np.array([0, 0, 0, 1, 1])  # R = 2 for label 0 (itself excluded), 1 for label 1
    neighbors = np.array(
        [
            [0, 1],  # P@1 1, R-prec 1/2, MAP@R (1/2)(1/1)       = 1/2
            [1, 0],  # P@1 0, R-prec 1/2, MAP@R (1/2)(1/2)       = 1/4
            [0, 0],  # P@1 1, R-prec 1,   MAP@R (1/2)(1/1 + 2/2) = 1
            [1, 0],  # P@1 1, R = 1: R-prec 1, MAP@R 1
            [0, 1],  # P@1 0, R = 1: R-prec 0, MAP@R 0
        ]
    )
    got = retrieval_scores(neighbors, y, y)
    assert got == pytest.approx(
        {"precision_at_1": 3 / 5, "r_precision": 3 / 5, "map_at_r": 2.75 / 5}
    )
    # Same answer when the flag is explicit, or the arrays are equal copies with the flag.
    assert retrieval_scores(neighbors, y, y.copy(), exclude_self=True) == got


def test_retrieval_hand_case_separate_sets():
    ref = np.array(["a", "a", "b", "c", "c", "c"])  # R: a 2, b 1, c 3
    queries = np.array(["a", "c", "b", "d"])  # "d" has no reference item: left out
    neighbors = np.array(
        [
            ["a", "c", "a", "b"],  # R=2: hits 1,0 -> R-prec 1/2, MAP (1/2)(1)         = 1/2
            ["a", "c", "c", "c"],  # R=3: hits 0,1,1 -> R-prec 2/3, MAP (1/3)(1/2 + 2/3) = 7/18
            ["c", "b", "a", "a"],  # R=1: hit 0 -> 0, 0
            ["a", "a", "a", "a"],
        ]
    )
    got = retrieval_scores(neighbors, queries, ref)
    assert got["precision_at_1"] == pytest.approx(1 / 3)
    assert got["r_precision"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert got["map_at_r"] == pytest.approx((1 / 2 + 7 / 18 + 0) / 3)
    # Extra columns beyond R are ignored.
    wider = np.hstack([neighbors, np.full((4, 3), "a")])
    assert retrieval_scores(wider, queries, ref) == got


def naive_retrieval(neighbors, queries, ref, exclude_self):
    p1, rp, mapr = [], [], []
    for nb, q in zip(neighbors, queries, strict=True):
        R = int((ref == q).sum()) - int(exclude_self)
        if R < 1:
            continue
        hits = [nb[i] == q for i in range(R)]
        p1.append(float(nb[0] == q))
        rp.append(sum(hits) / R)
        mapr.append(sum(sum(hits[: i + 1]) / (i + 1) for i in range(R) if hits[i]) / R)
    return {"precision_at_1": np.mean(p1), "r_precision": np.mean(rp), "map_at_r": np.mean(mapr)}


def test_retrieval_from_kneighbors_matches_naive():
    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    R = int(np.bincount(y).max()) - 1
    ind = (
        pysim.NearestNeighbors(n_neighbors=R, algorithm="brute")
        .fit(X)
        .kneighbors(return_distance=False)
    )
    got = retrieval_scores(y[ind], y, y)
    want = naive_retrieval(y[ind], y, y, True)
    assert got == pytest.approx(want)
    assert 0.5 < got["map_at_r"] < got["r_precision"] <= got["precision_at_1"] <= 1.0


def test_retrieval_errors():
    y = np.array([0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="at least max R = 2 columns"):
        retrieval_scores(np.zeros((5, 1), int), y, y)
    with pytest.raises(ValueError, match="one row per query"):
        retrieval_scores(np.zeros((4, 2), int), y, y)
    with pytest.raises(ValueError, match="2-D"):
        retrieval_scores(np.zeros(5, int), y, y)
    with pytest.raises(ValueError, match="R = 0"):
        retrieval_scores(np.zeros((2, 1), int), np.array([5, 6]), y)
    with pytest.raises(TypeError, match="exclude_self"):
        retrieval_scores(np.zeros((5, 2), int), y, y, exclude_self="yes")
