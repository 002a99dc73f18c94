"""PairVerifier: thresholds learned at the EER or a target FAR, learners, persistence, errors.

Synthetic identities: each has a centre; a genuine pair is two noisy views of one centre,
an impostor pair views of two different centres. The EER the verifier reports is checked
against a by-hand count over every threshold (see ``test_metrics.naive_eer``).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from test_metrics import naive_eer, naive_points

import pysim


def make_pairs(seed=0, n_ids=60, n_pairs=400, d=16, noise=0.6, noise_dims=0):
    """(X1, X2, same, ids1, ids2): half genuine, half impostor pairs of noisy views."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, d))
    a = rng.integers(0, n_ids, n_pairs)
    b = np.where(
        np.arange(n_pairs) < n_pairs // 2, a, (a + rng.integers(1, n_ids, n_pairs)) % n_ids
    )

    def view(ids):
        x = centres[ids] + noise * rng.standard_normal((len(ids), d))
        return (
            np.hstack([x, 3.0 * rng.standard_normal((len(ids), noise_dims))]) if noise_dims else x
        )

    return view(a), view(b), a == b, a, b


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "sqeuclidean"])
@pytest.mark.parametrize("seed", [0, 1])
def test_eer_threshold_matches_hand_computation(metric, seed):
    X1, X2, same, _, _ = make_pairs(seed, noise=1.0)
    ver = pysim.PairVerifier(metric).fit(X1, X2, same)
    scores = -pysim.paired_distances(X1, X2, metric)
    assert 0.02 < ver.eer_ < 0.5  # a non-trivial problem
    assert ver.eer_ == pytest.approx(naive_eer(scores, same), abs=1e-12)
    assert ver.eer_ == pytest.approx(pysim.metrics.eer(scores, same))
    np.testing.assert_allclose(ver.decision_function(X1, X2), scores, rtol=1e-12)
    # The threshold is the operating point nearest FAR = FRR, and its rates are counted.
    assert ver.threshold_ in scores
    acc = scores >= ver.threshold_
    assert ver.far_ == pytest.approx((acc & ~same).sum() / (~same).sum())
    assert ver.frr_ == pytest.approx((~acc & same).sum() / same.sum())
    pts = naive_points(scores, same)[1:]
    assert abs(ver.far_ - ver.frr_) == pytest.approx(np.abs(pts[:, 0] - pts[:, 1]).min())
    np.testing.assert_array_equal(ver.predict(X1, X2), acc)
    assert ver.score(X1, X2, same) == pytest.approx(np.mean(acc == same))


def test_tiny_hand_made_pairs():
    # One feature, euclidean: distances 0.1, 0.2, 0.3 (genuine), 0.25, 0.8, 0.9 (impostor).
    # Scores -0.1 G, -0.2 G, -0.25 I, -0.3 G, -0.8 I, -0.9 I: the example of test_metrics,
    # EER 1/3 at threshold -0.25 (FAR 1/3, FRR 1/3).
    d = np.array([0.1, 0.2, 0.3, 0.25, 0.8, 0.9])
    same = np.array([True, True, True, False, False, False])
    X1, X2 = np.zeros((6, 1)), d[:, None]
    ver = pysim.PairVerifier("euclidean").fit(X1, X2, same)
    assert ver.eer_ == pytest.approx(1 / 3)
    assert ver.threshold_ == pytest.approx(-0.25)
    assert (ver.far_, ver.frr_) == pytest.approx((1 / 3, 1 / 3))
    ver = pysim.PairVerifier("euclidean", target_far=0.0).fit(X1, X2, same)
    assert ver.threshold_ == pytest.approx(-0.2) and ver.far_ == 0.0
    assert ver.predict([[0.0]], [[0.15]]).tolist() == [True]


@pytest.mark.parametrize("target_far", [0.0, 0.01, 0.1, 0.3])
def test_target_far_threshold(target_far):
    X1, X2, same, _, _ = make_pairs(3, noise=1.0)
    ver = pysim.PairVerifier(target_far=target_far).fit(X1, X2, same)
    scores = ver.decision_function(X1, X2)
    assert ver.far_ <= target_far
    assert ver.far_ == pytest.approx(((scores >= ver.threshold_) & ~same).sum() / (~same).sum())
    # The next lower score would exceed the target: the threshold is as accepting as allowed.
    lower = scores[scores < ver.threshold_]
    if lower.size:
        t = lower.max()
        assert ((scores >= t) & ~same).sum() / (~same).sum() > target_far
    assert 1 - ver.frr_ == pytest.approx(pysim.metrics.tar_at_far(scores, same, target_far))


def test_fitted_metric_learner_is_used_as_is_and_helps():
    # Identity-labelled training rows for the learner; separate pairs for the threshold.
    rng = np.random.default_rng(5)
    n_ids, d, noise_dims = 30, 4, 12
    centres = rng.standard_normal((n_ids, d)) * 2

    def rows(ids):
        return np.hstack(
            [
                centres[ids] + 0.4 * rng.standard_normal((len(ids), d)),
                3.0 * rng.standard_normal((len(ids), noise_dims)),
            ]
        )

    ids = np.repeat(np.arange(n_ids), 10)
    nca = pysim.NCA(max_iter=60, random_state=0).fit(rows(ids), ids)
    components = nca.components_.copy()
    a = rng.integers(0, n_ids, 400)
    b = np.where(np.arange(400) < 200, a, (a + rng.integers(1, n_ids, 400)) % n_ids)
    X1, X2, same = rows(a), rows(b), a == b
    plain = pysim.PairVerifier("euclidean").fit(X1, X2, same)
    learned = pysim.PairVerifier("euclidean", metric_learner=nca).fit(X1, X2, same)
    assert learned.metric_learner_ is nca
    np.testing.assert_array_equal(nca.components_, components)
    np.testing.assert_allclose(
        learned.decision_function(X1, X2), -nca.pair_distance(X1, X2), rtol=1e-10
    )
    assert learned.eer_ < plain.eer_ - 0.1


def test_unfitted_learners():
    X1, X2, same, _, _ = make_pairs(2)
    with pytest.raises(ValueError, match="needs class labels"):
        pysim.PairVerifier(metric_learner=pysim.NCA()).fit(X1, X2, same)
    with pytest.raises(ValueError, match="needs class labels"):
        pysim.PairVerifier(metric_learner=pysim.LMNN()).fit(X1, X2, same)
    # Unsupervised learners are fitted on the rows of the training pairs (a clone).
    for learner in (pysim.Whitening(), PCA(n_components=8)):
        ver = pysim.PairVerifier("euclidean", metric_learner=learner).fit(X1, X2, same)
        assert ver.metric_learner_ is not learner
        want = clone(learner).fit(np.vstack([X1, X2]))
        np.testing.assert_allclose(
            ver.decision_function(X1, X2),
            -np.linalg.norm(want.transform(X1) - want.transform(X2), axis=1),
            rtol=1e-9,
        )


def test_mahalanobis_and_aliases():
    X1, X2, same, _, _ = make_pairs(4, d=5)
    VI = np.diag([1.0, 2.0, 3.0, 4.0, 5.0])
    ver = pysim.PairVerifier("mahalanobis", metric_params={"VI": VI}).fit(X1, X2, same)
    diff = X1 - X2
    np.testing.assert_allclose(
        ver.decision_function(X1, X2),
        -np.sqrt(np.einsum("ij,jk,ik->i", diff, VI, diff)),
        rtol=1e-10,
    )
    a = pysim.PairVerifier("l2").fit(X1, X2, same)
    b = pysim.PairVerifier("euclidean").fit(X1, X2, same)
    assert (a.threshold_, a.eer_) == (b.threshold_, b.eer_)


def test_clone_params_pickle():
    X1, X2, same, _, _ = make_pairs(6)
    ver = pysim.PairVerifier("euclidean", metric_learner=pysim.Whitening(), target_far=0.05)
    assert ver.get_params()["target_far"] == 0.05
    assert "metric_learner__shrinkage" in ver.get_params(deep=True)
    ver.set_params(target_far=0.1, metric_learner__shrinkage=0.2)
    assert ver.target_far == 0.1 and ver.metric_learner.shrinkage == 0.2
    ver.fit(X1, X2, same)
    c = clone(ver)
    assert c.get_params()["target_far"] == 0.1 and not hasattr(c, "threshold_")
    back = pickle.loads(pickle.dumps(ver))
    assert (back.threshold_, back.eer_, back.far_, back.frr_) == (
        ver.threshold_,
        ver.eer_,
        ver.far_,
        ver.frr_,
    )
    np.testing.assert_array_equal(back.decision_function(X1, X2), ver.decision_function(X1, X2))
    np.testing.assert_array_equal(back.predict(X1, X2), ver.predict(X1, X2))


def test_float32_pairs():
    X1, X2, same, _, _ = make_pairs(7)
    ver = pysim.PairVerifier().fit(X1.astype(np.float32), X2.astype(np.float32), same)
    assert ver.decision_function(X1.astype(np.float32), X2.astype(np.float32)).dtype == np.float32
    assert ver.eer_ == pytest.approx(pysim.PairVerifier().fit(X1, X2, same).eer_, abs=0.01)


def test_errors():
    X1, X2, same, _, _ = make_pairs(8)
    with pytest.raises(NotFittedError):
        pysim.PairVerifier().predict(X1, X2)
    with pytest.raises(ValueError, match="same shape"):
        pysim.PairVerifier().fit(X1, X2[:-1], same)
    with pytest.raises(ValueError, match="one flag per pair"):
        pysim.PairVerifier().fit(X1, X2, same[:-1])
    with pytest.raises(ValueError, match="both genuine"):
        pysim.PairVerifier().fit(X1, X2, np.ones(len(X1), bool))
    with pytest.raises(ValueError, match="NaN"):
        pysim.PairVerifier().fit(np.full_like(X1, np.nan), X2, same)
    with pytest.raises(ValueError, match="'target_far' parameter"):
        pysim.PairVerifier(target_far=2.0).fit(X1, X2, same)
    with pytest.raises(ValueError, match="'metric' parameter"):
        pysim.PairVerifier("hamming").fit(X1, X2, same)
    with pytest.raises(ValueError, match="'metric_learner' parameter"):
        pysim.PairVerifier(metric_learner=3).fit(X1, X2, same)
    with pytest.raises(ValueError, match="VI"):
        pysim.PairVerifier("mahalanobis").fit(X1, X2, same)
    ver = pysim.PairVerifier().fit(X1, X2, same)
    with pytest.raises(ValueError, match="features"):
        ver.predict(X1[:, :-1], X2[:, :-1])
    with pytest.raises(ValueError, match="Reshape"):
        ver.predict(X1[0], X2[0])
