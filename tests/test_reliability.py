"""Regression tests from an adversarial review: each failed before its fix.

Grouped by kind: data loss and crashes, silent wrong answers, clear errors. The
concurrency scenarios (adds crossing the renumbering threshold, saves during adds) are in
test_concurrency_stress.py; this file holds the deterministic ones and one quick concurrent
save check.
"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import pysim

INT64_MAX = 2**63 - 1


# --- data loss and crashes -------------------------------------------------------------------


def test_default_id_overflow_is_refused_and_state_stays_loadable():
    X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    index = pysim.HNSWIndex(4)
    index.add(X[:2], ids=[0, INT64_MAX])
    with pytest.raises(ValueError, match="default ids"):
        index.add(X[2:3])
    assert sorted(index.ids.tolist()) == [0, INT64_MAX]
    np.testing.assert_array_equal(index.get_items([0])[0], X[0])  # id 0 not overwritten
    copy = pickle.loads(pickle.dumps(index))
    assert sorted(copy.ids.tolist()) == [0, INT64_MAX]
    index.add(X[2:3], ids=[5])  # explicit ids still work
    assert 5 in index


def test_default_ids_up_to_the_last_one():
    X = np.ones((2, 3), np.float32)
    index = pysim.HNSWIndex(3)
    index.add(X[:1], ids=[INT64_MAX - 1])
    index.add(X[1:])  # gets 2**63 - 1, the last id
    assert INT64_MAX in index
    with pytest.raises(ValueError, match="default ids"):
        index.add(X[:1])


@pytest.mark.parametrize("quantization", [None, "sq8"])
def test_save_and_pickle_during_add_always_load(tmp_path, quantization):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6000, 8)).astype(np.float32)
    index = pysim.HNSWIndex(8, M=8, ef_construction=32, quantization=quantization)
    index.add(X[:500], threads=1)
    blobs: list[bytes] = []
    done = threading.Event()

    def snapshots():
        j = 0
        while not done.is_set():
            index.save(tmp_path / f"s{j % 4}.pysim")
            pysim.HNSWIndex.load(tmp_path / f"s{j % 4}.pysim")
            blobs.append(pickle.dumps(index))
            j += 1

    t = threading.Thread(target=snapshots)
    t.start()
    try:
        for s in range(500, 6000, 250):  # levels rise while snapshots are taken
            index.add(X[s : s + 250], threads=2)
    finally:
        done.set()
        t.join()
    assert blobs
    for blob in blobs:
        copy = pickle.loads(blob)
        _, ids = copy.query(X[:3], k=1)
        assert (ids >= 0).all()


def test_referenced_array_turning_nan_does_not_crash():
    X = np.ones((30, 3), np.float32)
    index = pysim.BruteForceIndex(X)
    X[:] = np.nan
    dist, ind = index.query(np.zeros(3, np.float32), k=2)
    assert (ind == -1).all() and np.isinf(dist).all()  # a NaN distance never enters a result
    X[:5] = np.arange(15, dtype=np.float32).reshape(5, 3)
    dist, ind = index.query(np.zeros((4, 3), np.float32), k=7)
    assert ind[:, :5].tolist() == [[0, 1, 2, 3, 4]] * 4 and (ind[:, 5:] == -1).all()


def test_estimators_survive_in_place_change_of_their_training_data():
    X = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    y = np.arange(40) % 2
    est = pysim.KNeighborsClassifier(3, algorithm="brute").fit(X, y)
    nn = pysim.NearestNeighbors(n_neighbors=3, algorithm="brute").fit(X)
    X[:] = np.nan
    assert est.predict(np.zeros((2, 3), np.float32)).shape == (2,)
    assert nn.kneighbors(np.zeros((2, 3), np.float32))[1].shape == (2, 3)


def test_mahalanobis_hnsw_refuses_values_too_large_after_mapping():
    X = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    index = pysim.HNSWIndex(8, "mahalanobis", VI=np.eye(8) * 1e80)
    with pytest.raises(ValueError, match="too large"):
        index.add(X)
    assert len(index) == 0
    with pytest.raises(ValueError, match="too large"):
        pysim.BruteForceIndex(X, "mahalanobis", VI=np.eye(8) * 1e80)


@pytest.mark.parametrize("fn", ["dot", "cdist"])
def test_out_aliasing_an_input_is_refused(fn):
    X = np.random.default_rng(0).standard_normal((64, 64))
    before = X.copy()
    with pytest.raises(ValueError, match="share memory"):
        getattr(pysim, fn)(X, X, out=X)
    np.testing.assert_array_equal(X, before)
    Y = X.copy()
    out = np.empty((64, 64))
    np.testing.assert_allclose(pysim.dot(X, Y, out=out), X @ Y.T, rtol=1e-12, atol=1e-9)


def _reference(A, B, metric):
    from scipy.spatial.distance import cdist

    return cdist(A.astype(np.float64), B.astype(np.float64), metric)


@pytest.mark.parametrize("scale", [1e-30, 1e-40, 3e19, 1e25])
def test_extreme_float32_magnitudes_are_exact_or_refused(scale):
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((2000, 8)) * scale).astype(np.float32)
    Q = X[:40] + (rng.standard_normal((40, 8)) * scale * 0.01).astype(np.float32)
    want = _reference(Q, X, "euclidean")
    with np.errstate(over="ignore"):
        want32 = want.astype(np.float32)
    # cdist: the documented accuracy at every magnitude (relative to the norms)
    got = pysim.cdist(Q, X, "euclidean")
    np.testing.assert_allclose(got, want32, rtol=1e-5, atol=0)
    got1 = pysim.cdist(Q[:1], X, "euclidean")
    np.testing.assert_allclose(got1, want32[:1], rtol=1e-5, atol=0)
    np.testing.assert_allclose(
        pysim.paired_distances(Q, X[:40], "euclidean"),
        np.diag(want32[:, :40]),
        rtol=1e-5,
    )
    # exact indexes: the reference's neighbours (no ties in this data)
    truth = np.argsort(want, axis=1, kind="stable")[:, :5]
    tree = pysim.KDTreeIndex(X)
    d, i = tree.query(Q, k=5)
    np.testing.assert_array_equal(i, truth)
    np.testing.assert_allclose(d, np.take_along_axis(want32, truth, 1), rtol=1e-5)
    r = float(np.take_along_axis(want, truth, 1)[0, 2])
    assert set(tree.query_radius(Q[:1], r)[0].tolist()) >= set(truth[0, :2].tolist())
    try:
        brute = pysim.BruteForceIndex(X, "euclidean")
    except ValueError as exc:  # brute force refuses what its float32 norms cannot hold
        assert "too large" in str(exc)
    else:
        np.testing.assert_array_equal(brute.query(Q, k=5)[1], truth)
    # HNSW (approximate): answers from the right scale, or refuses with a clear message
    hnsw = pysim.HNSWIndex(8, "euclidean")
    try:
        hnsw.add(X)
    except ValueError as exc:
        assert "float32" in str(exc)
    else:
        d, i = hnsw.query(Q, k=1, ef=200)
        np.testing.assert_allclose(d[:, 0], want32[np.arange(40), i[:, 0]], rtol=1e-5)


def test_cosine_hnsw_keeps_directions_of_tiny_and_huge_rows():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 6)).astype(np.float32)
    X[:100] *= 1e-30
    X[100:200] *= 1e30
    index = pysim.HNSWIndex(6, "cosine")
    index.add(X)
    d, i = index.query(X[:50], k=1, ef=300)
    np.testing.assert_array_equal(i[:, 0], np.arange(50))
    np.testing.assert_allclose(d[:, 0], 0, atol=1e-6)


def test_negative_callable_weights_predict_like_scikit_learn():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 4))
    y = rng.integers(0, 4, 200)
    Q = rng.standard_normal((50, 4))

    def w(d):
        return -np.ones_like(d)

    ours = pysim.KNeighborsClassifier(3, weights=w).fit(X, y)
    theirs = KNeighborsClassifier(3, weights=w, algorithm="brute").fit(X, y)
    np.testing.assert_array_equal(ours.predict(Q), theirs.predict(Q))
    np.testing.assert_allclose(ours.predict_proba(Q), theirs.predict_proba(Q))


# --- clear errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda h, Q: h.query(Q, k=1, threads=2**40),
        lambda h, Q: h.query(Q, k=1, ef=2**40),
        lambda h, Q: h.query(Q, k=2**31),
        lambda h, Q: setattr(h, "ef", 2**31),
        lambda h, Q: pysim.HNSWIndex(4, ef_construction=2**31),
        lambda h, Q: pysim.HNSWIndex(4, metric=None),
        lambda h, Q: pysim.KDTreeIndex(Q, leaf_size=2**40),
        lambda h, Q: pysim.cdist(Q, Q, threads=10**6),
    ],
)
def test_out_of_range_integers_name_their_argument(call):
    h = pysim.HNSWIndex(4)
    Q = np.ones((3, 4), np.float32)
    h.add(Q)
    with pytest.raises((ValueError, TypeError, MemoryError)) as info:
        call(h, Q)
    assert "incompatible function arguments" not in str(info.value)
    names = ("threads", "ef", "k must", "lower k", "metric", "leaf")
    assert any(w in str(info.value) for w in names)
    assert h.ef == 64


def test_max_elements_is_only_a_hint():
    index = pysim.HNSWIndex(128, max_elements=10**9)
    index.add(np.ones((3, 128), np.float32))
    assert len(index) == 3


def test_radius_rule_is_the_same_for_every_exact_index():
    X = np.random.default_rng(5).standard_normal((50, 3))
    for index in (pysim.BruteForceIndex(X, "euclidean"), pysim.KDTreeIndex(X)):
        with pytest.raises(ValueError, match="r must be >= 0"):
            index.query_radius(X[:2], -1.0)
        with pytest.raises(TypeError, match="r must be a number"):
            index.query_radius(X[:2], None)
        with pytest.raises(TypeError, match="return_distance"):
            index.query_radius(X[:2], 1.0, return_distance="yes")
    # "ip" distances (1 - a.b) can be negative, so can its radius
    ip = pysim.BruteForceIndex(X, "ip")
    assert len(ip.query_radius(X[:1], -0.5)[0]) == int((1 - X @ X[0] <= -0.5).sum())


def test_cdist_and_every_index_rank_float32_mahalanobis_alike():
    """One resolver maps the rows (float64, rounded once) for every consumer."""
    rng = np.random.default_rng(6)
    d = 12
    A = rng.standard_normal((d, d))
    VI = A @ A.T + 0.1 * np.eye(d)
    X = rng.standard_normal((400, d)).astype(np.float32)
    Q = rng.standard_normal((30, d)).astype(np.float32)
    order = np.argsort(pysim.cdist(Q, X, "mahalanobis", VI=VI), axis=1, kind="stable")[:, :5]
    brute = pysim.BruteForceIndex(X, "mahalanobis", VI=VI).query(Q, k=5)[1]
    hnsw = pysim.HNSWIndex(d, "mahalanobis", VI=VI)
    hnsw.add(X)
    graph = hnsw.query(Q, k=5, ef=400)[1]
    est = pysim.NearestNeighbors(
        n_neighbors=5, metric="mahalanobis", metric_params={"VI": VI}, algorithm="kd_tree"
    ).fit(X)
    tree = est.kneighbors(Q, return_distance=False)
    for got in (brute, graph, tree):
        np.testing.assert_array_equal(got, order)
