"""HNSWIndex: recall against exact search, exactness of small and filtered searches, ids,
removal and re-adding, concurrency, determinism, persistence, and the errors bad input gets."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
import reference
import scipy.sparse
from conftest import load_minilm, load_mnist

import pysim
from pysim import _persist

METRICS = ["sqeuclidean", "euclidean", "cosine", "ip", "mahalanobis"]


def clustered(rng, n, d, clusters=20, spread=0.3):
    centres = rng.standard_normal((clusters, d))
    return (centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, d))).astype(
        np.float32
    )


def random_vi(rng, d):
    A = rng.standard_normal((d, d))
    return A @ A.T / d + 0.1 * np.eye(d)


def build(X, metric="sqeuclidean", *, ids=None, threads=1, VI=None, **kw):
    if metric == "mahalanobis" and VI is None:
        VI = random_vi(np.random.default_rng(7), X.shape[1])
    index = pysim.HNSWIndex(X.shape[1], metric, VI=VI, **kw)
    index.add(X, ids, threads=threads)
    return index


def exact(index, X, Q, k, ids=None):
    """float64 reference neighbours (as caller ids) for an index built on rows X."""
    VI = None
    if index.metric == "mahalanobis":
        L = index._L
        VI = L.T @ L
    dists, nbrs = reference.knn(X.astype(np.float64), Q.astype(np.float64), k, index.metric, VI)
    if ids is not None:
        nbrs = np.where(nbrs >= 0, np.asarray(ids)[np.maximum(nbrs, 0)], -1)
    return dists, nbrs


def recall(found, truth):
    k = truth.shape[1]
    pairs = zip(found.tolist(), truth.tolist(), strict=True)
    return np.mean([len(set(f) & set(t)) / k for f, t in pairs])


# ---------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_index_is_exact(rng, metric, dtype):
    X = rng.standard_normal((60, 12)).astype(dtype)
    Q = rng.standard_normal((15, 12)).astype(dtype)
    index = build(X, metric)
    dists, nbrs = index.query(Q, k=10)
    want_d, want_i = exact(index, X, Q, 10)
    assert dists.dtype == np.float32 and nbrs.dtype == np.int64 and dists.shape == (15, 10)
    np.testing.assert_array_equal(nbrs, want_i)
    scale = 1.0 + np.abs(want_d).max()
    np.testing.assert_allclose(dists, want_d, rtol=1e-4, atol=1e-4 * scale)


def test_every_isa_walks_the_graph_to_the_same_neighbours(isa, rng):
    # Built and searched under each level. The graph is walked, not scanned: ef (64) is well
    # below the 3000 live points and there is no filter or tombstone, so the core's exact scan
    # (taken when at most ef points are admissible) cannot run, and the raw core search is
    # called, so neither can HNSWIndex.query's exact fallback for short walks.
    X = clustered(rng, 3000, 33)
    Q = clustered(rng, 50, 33)
    index = build(X, "euclidean")
    assert len(index) > 64
    dists, nbrs = index._index.search(index._prepare_queries(Q), 5, ef=64, threads=1, allowed=None)
    assert (nbrs >= 0).all()  # a full answer from the walk itself
    want_d, want_i = exact(index, X, Q, 5)
    assert recall(nbrs, want_i) >= 0.98
    hit = nbrs == want_i
    np.testing.assert_allclose(dists[hit], want_d[hit], rtol=1e-4, atol=1e-4)


def test_no_queries(rng):
    index = build(rng.standard_normal((20, 4)).astype(np.float32))
    dists, nbrs = index.query(np.empty((0, 4)), k=3)
    assert dists.shape == nbrs.shape == (0, 3)


def test_k_larger_than_index_pads(rng):
    X = rng.standard_normal((5, 4)).astype(np.float32)
    dists, nbrs = build(X).query(X[:2], k=8)
    assert (nbrs[:, 5:] == -1).all() and np.isinf(dists[:, 5:]).all()
    assert sorted(nbrs[0, :5].tolist()) == list(range(5))


def test_empty_index(rng):
    index = pysim.HNSWIndex(3)
    dists, nbrs = index.query(np.zeros(3), k=2)
    assert (nbrs == -1).all() and np.isinf(dists).all()
    assert len(index) == 0 and index.ids.size == 0
    assert index.recall(np.zeros((2, 3)), k=2) == 1.0


def test_cosine_zero_vectors_are_at_distance_one(rng):
    X = rng.standard_normal((10, 6)).astype(np.float32)
    X[3] = 0
    index = build(X, "cosine")
    dists, nbrs = index.query(np.zeros(6), k=10)
    np.testing.assert_allclose(dists, 1.0, atol=1e-6)
    d, i = index.query(X[3], k=10)
    np.testing.assert_allclose(d, 1.0, atol=1e-6)
    stored = index.get_items(np.flatnonzero(np.arange(10) != 3))
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1, atol=1e-6)


def test_one_dimensional_rows(rng):
    index = pysim.HNSWIndex(4, "euclidean")
    index.add(np.arange(4.0))
    index.add([1.0, 1.0, 1.0, 1.0], ids=7)
    dists, nbrs = index.query(np.arange(4.0), k=2)
    assert dists.shape == (1, 2) and nbrs.tolist() == [[0, 7]]


def test_mahalanobis_stores_mapped_rows(rng):
    X = rng.standard_normal((30, 5))
    VI = random_vi(rng, 5)
    index = build(X, "mahalanobis", VI=VI)
    L = index._L
    np.testing.assert_allclose(L.T @ L, VI, atol=1e-10)
    np.testing.assert_allclose(index.get_items([2, 4]), X[[2, 4]] @ L.T, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- recall


def embedded(rng, n, d, latent=10, clusters=100):
    """Clustered points on a random `latent`-dimensional subspace of R^d plus a little noise:
    low intrinsic dimension, like real embeddings."""
    basis = np.random.default_rng(99).standard_normal((latent, d)) / np.sqrt(latent)
    Z = clustered(rng, n, latent, clusters=clusters, spread=0.4).astype(np.float64)
    return (Z @ basis + 0.02 * rng.standard_normal((n, d))).astype(np.float32)


def unit_norm_jitter(rng, X):
    """Rows scaled to norms in [0.9, 1.1]: inner-product search that graph methods can do
    (with widely varying norms, MIPS recall is low for every HNSW, hnswlib included)."""
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    return (X * rng.uniform(0.9, 1.1, (len(X), 1))).astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
def test_recall_on_synthetic_data(rng, metric):
    X = clustered(rng, 6000, 24)
    Q = clustered(rng, 200, 24)
    if metric == "ip":
        X = unit_norm_jitter(rng, embedded(rng, 6000, 24, latent=8))
        Q = unit_norm_jitter(rng, embedded(rng, 200, 24, latent=8))
    # One build thread: a deterministic graph, so the bar below holds or fails the same way
    # on every machine and load (a 2-thread build's graph depends on thread timing).
    # ef=96 rather than the default 64: at 64, clustered cosine sits at 0.955, too near the bar
    # for a test whose graph changes with every ISA's rounding.
    index = build(X, metric, threads=1)
    _, nbrs = index.query(Q, k=10, ef=96)
    _, want = exact(index, X, Q, 10)
    r = recall(nbrs, want)
    assert r >= 0.95, r
    assert index.recall(Q, k=10, ef=96) == pytest.approx(r, abs=0.02)


def test_recall_mnist_default_ef():
    base, queries, gt = load_mnist()
    index = build(base, "euclidean", threads=2)
    dists, nbrs = index.query(queries, k=10)
    r = recall(nbrs, gt[:, :10])
    assert r >= 0.95, r
    want = np.linalg.norm(queries[:, None, :] - base[gt[:, :1]], axis=2)[:, 0]
    hit = nbrs[:, 0] == gt[:, 0]
    np.testing.assert_allclose(dists[hit, 0], want[hit], rtol=1e-5)


def test_recall_minilm_cosine_subset():
    base, queries, gt = load_minilm()
    index = build(base, "cosine", threads=2)
    _, nbrs = index.query(queries, k=10)
    assert recall(nbrs, gt[:, :10]) >= 0.95


@pytest.mark.slow
def test_recall_minilm_cosine_full():
    base, queries, gt = load_minilm(full=True)
    index = build(base, "cosine", threads=2)
    _, nbrs = index.query(queries, k=10)
    assert recall(nbrs, gt[:, :10]) >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_recall_large_synthetic(rng, metric):
    X = embedded(rng, 100000, 64)
    Q = embedded(rng, 300, 64)
    index = build(X, metric, threads=2)
    _, nbrs = index.query(Q, k=10)
    assert recall(nbrs, exact(index, X, Q, 10)[1]) >= 0.95


def test_tune_ef_reaches_target_and_sets_ef(rng):
    X = clustered(rng, 4000, 16)
    Q = clustered(rng, 100, 16)
    index = build(X, M=6, ef_construction=40)
    ef = index.tune_ef(Q, k=10, target_recall=0.99)
    assert index.ef == ef >= 10
    assert index.recall(Q, k=10) >= 0.99
    if ef > 10:
        assert index.recall(Q, k=10, ef=ef // 2) < 0.99 or ef // 2 < 10
    with pytest.raises(ValueError, match="target_recall"):
        index.tune_ef(Q, target_recall=1.5)


def test_ef_property_and_per_call_ef(rng):
    index = build(rng.standard_normal((300, 8)).astype(np.float32))
    assert index.ef == 64
    index.ef = 5
    assert index.ef == 5
    with pytest.raises(ValueError, match="ef"):
        index.ef = 0
    with pytest.raises(ValueError, match="ef"):
        index.query(np.zeros(8), k=1, ef=0)
    dists, nbrs = index.query(np.zeros(8), k=20, ef=1)  # ef below k: k is used
    assert (nbrs >= 0).all()


# ---------------------------------------------------------------------------- filters


@pytest.mark.parametrize("share", [0.6, 0.1, 0.01, 0.002])
def test_filter_returns_only_allowed_ids(rng, share):
    X = clustered(rng, 5000, 16)
    ids = rng.permutation(10**6)[:5000]
    Q = clustered(rng, 40, 16)
    index = build(X, "euclidean", ids=ids, threads=2)
    keep = rng.random(5000) < share
    allowed = ids[keep]
    dists, nbrs = index.query(Q, k=10, filter=allowed)
    assert np.isin(nbrs[nbrs >= 0], allowed).all()
    want_d, want_i = exact(index, X[keep], Q, 10, ids=allowed)
    if keep.sum() <= 2000:  # selective: answered exactly
        np.testing.assert_array_equal(nbrs, want_i)
        np.testing.assert_allclose(dists, want_d, rtol=1e-4, atol=1e-4)
    else:
        assert recall(nbrs, want_i) >= 0.9


def test_filter_callable_and_array_agree(rng):
    X = clustered(rng, 2000, 8)
    index = build(X)
    Q = X[:20] + 0.01
    a = index.query(Q, k=5, filter=np.arange(0, 2000, 3))
    b = index.query(Q, k=5, filter=lambda i: i % 3 == 0)
    c = index.query(Q, k=5, filter=set(range(0, 2000, 3)))
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[1], c[1])


def test_filter_edge_cases(rng):
    X = rng.standard_normal((500, 8)).astype(np.float32)
    index = build(X)
    dists, nbrs = index.query(X[:3], k=4, filter=[])
    assert (nbrs == -1).all()
    dists, nbrs = index.query(X[:3], k=4, filter=[123456, 7])  # unknown ids are ignored
    assert (nbrs[:, 0] == 7).all() and (nbrs[:, 1:] == -1).all()
    index.remove([7])
    dists, nbrs = index.query(X[:3], k=4, filter=[7])
    assert (nbrs == -1).all()
    with pytest.raises(TypeError, match="filter"):
        index.query(X[:1], filter=np.array([0.5, 1.0]))


# ---------------------------------------------------------------------------- ids, remove


def test_default_ids_continue_from_largest(rng):
    index = pysim.HNSWIndex(4)
    index.add(rng.random((3, 4)))
    index.add(rng.random((2, 4)), ids=[10, 20])
    index.add(rng.random((2, 4)))
    assert index.ids.tolist() == [0, 1, 2, 10, 20, 21, 22]
    index.remove([22])
    index.add(rng.random((1, 4)))
    assert 22 not in index and 23 in index  # removed ids do not come back by default


def test_remove_never_returns_removed_and_reuses_slots(rng):
    X = clustered(rng, 3000, 12)
    index = build(X, threads=2)
    gone = rng.choice(3000, 1000, replace=False)
    index.remove(gone)
    assert len(index) == 2000
    assert not any(int(g) in index for g in gone[:50])
    _, nbrs = index.query(X, k=20)
    assert not np.isin(nbrs, gone).any()
    live = np.setdiff1d(np.arange(3000), gone)
    _, nbrs1 = index.query(X[live], k=1)
    assert (nbrs1[:, 0] == live).mean() > 0.99
    capacity = index.capacity
    index.add(X[gone] + 0.5, ids=gone)  # slots of removed points are reused
    assert index.capacity == capacity and len(index) == 3000
    _, nbrs = index.query(X[gone] + 0.5, k=1)
    assert (nbrs[:, 0] == gone).mean() > 0.98
    with pytest.raises(KeyError):
        index.get_items([10**9])


def test_remove_unknown_id_removes_nothing(rng):
    index = build(rng.standard_normal((50, 4)).astype(np.float32))
    with pytest.raises(KeyError, match="77777"):
        index.remove([1, 2, 77777])
    with pytest.raises(KeyError):
        index.remove(-3)
    assert len(index) == 50 and 1 in index and 2 in index
    index.remove([3, 3])  # a repeat counts once
    assert len(index) == 49
    with pytest.raises(KeyError):
        index.remove([3])


def test_readding_an_id_replaces_its_vector(rng):
    X = rng.standard_normal((400, 6)).astype(np.float32)
    index = build(X)
    new = np.full(6, 9.0, np.float32)
    index.add(new, ids=[5])
    assert len(index) == 400
    np.testing.assert_array_equal(index.get_items([5])[0], new)
    dists, nbrs = index.query(new, k=1)
    assert nbrs[0, 0] == 5 and dists[0, 0] == 0
    _, nbrs = index.query(X[5], k=3)
    assert 5 not in nbrs[0]
    index.add(new, ids=[5])  # the same vector again: a no-op
    assert index.query(new, k=1)[1][0, 0] == 5


def test_all_removed_then_added_again(rng):
    X = rng.standard_normal((300, 5)).astype(np.float32)
    index = build(X)
    index.remove(np.arange(300))
    assert len(index) == 0 and (index.query(X[:2], k=3)[1] == -1).all()
    index.add(X, ids=np.arange(300))
    _, nbrs = index.query(X, k=1)
    assert (nbrs[:, 0] == np.arange(300)).mean() > 0.99


# ---------------------------------------------------------------------------- threads


def test_threads_one_is_deterministic(rng):
    X = clustered(rng, 2000, 10)
    a, b = build(X, seed=3), build(X, seed=3)
    sa, sb = a._get_state(), b._get_state()
    for name in sa[1]:
        np.testing.assert_array_equal(sa[1][name], sb[1][name], err_msg=name)
    assert sa[0] == sb[0]
    Q = X[:50] + 0.1
    np.testing.assert_array_equal(a.query(Q, k=5)[1], b.query(Q, k=5)[1])
    c = build(X, seed=4)
    assert not np.array_equal(c._get_state()[1]["levels"], sa[1]["levels"])


def test_multithreaded_build_matches_serial_quality(rng):
    X = clustered(rng, 4000, 16)
    Q = clustered(rng, 100, 16)
    want = exact(build(X[:1]), X, Q, 10)[1]
    for threads in (1, 2, 4):
        index = build(X, threads=threads)
        assert len(index) == 4000
        assert recall(index.query(Q, k=10, threads=threads)[1], want) >= 0.95


def _unreachable(index):
    """Live nodes that no link points to, on any level (no search can ever reach them)."""
    meta, a = index._get_state()
    n = len(a["levels"])
    linked = np.zeros(n, bool)
    for row, c in zip(a["links0"], a["counts0"], strict=True):
        linked[row[:c]] = True
    for row, c in zip(a["upper_links"], a["upper_counts"], strict=True):
        linked[row[:c]] = True
    linked[meta["entry"]] = True
    return int((~linked & (a["status"] == 0)).sum())


def test_threaded_build_keeps_every_point_reachable(rng):
    X = embedded(rng, 8000, 32)
    serial = build(X, M=8, ef_construction=64)
    threaded = build(X, M=8, ef_construction=64, threads=8)
    assert _unreachable(threaded) <= _unreachable(serial) + 1
    _, nbrs = threaded.query(X, k=1, ef=64)
    assert (nbrs[:, 0] == np.arange(8000)).mean() >= 0.998


def test_concurrent_queries_while_adding_and_removing(rng):
    d = 16
    X = clustered(rng, 6000, d)
    index = pysim.HNSWIndex(d, "sqeuclidean", M=8, ef_construction=60)
    index.add(X[:2000], ids=np.arange(2000))
    errors, stop = [], threading.Event()

    def reader(seed):
        r = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = X[r.integers(0, 6000, 8)]
                dists, nbrs = index.query(q, k=10, ef=int(r.integers(10, 80)), threads=1)
                ok = nbrs >= 0
                assert all((np.diff(d[o]) >= 0).all() for d, o in zip(dists, ok, strict=True))
                true = ((q[:, None, :] - X[np.maximum(nbrs, 0)]) ** 2).sum(-1)
                np.testing.assert_allclose(dists[ok], true[ok], rtol=1e-4, atol=1e-3)
                for row in nbrs:
                    assert len(set(row[row >= 0].tolist())) == int((row >= 0).sum())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    removed = set()
    try:
        for start in range(2000, 6000, 500):
            index.add(X[start : start + 500], ids=np.arange(start, start + 500), threads=2)
            gone = rng.choice(start, 100, replace=False)
            gone = np.array([g for g in gone if g not in removed])
            index.remove(gone)
            removed.update(gone.tolist())
            # Bring some back: their vectors land in reused slots (the re-link path).
            back = np.array(sorted(removed)[:40], dtype=np.int64)
            index.add(X[back], ids=back, threads=2)
            removed.difference_update(back.tolist())
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    live = np.array(sorted(set(range(6000)) - removed))
    assert len(index) == len(live) and np.array_equal(index.ids, live)
    _, nbrs = index.query(X[live], k=1, ef=100)
    assert (nbrs[:, 0] == live).mean() > 0.98
    _, nbrs = index.query(X, k=10)
    assert not np.isin(nbrs, list(removed)).any()


# ---------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("metric", METRICS)
def test_save_load_and_pickle_are_identical(tmp_path, rng, metric):
    X = clustered(rng, 1500, 10)
    index = build(X, metric, ids=np.arange(1500) * 3, ef_construction=50)
    index.remove([0, 3, 300])
    index.ef = 33
    Q = X[:40] + 0.05
    want = index.query(Q, k=7)
    path = tmp_path / "index.pysim"
    index.save(path)
    copies = [pysim.HNSWIndex.load(path), pickle.loads(pickle.dumps(index))]
    for other in copies:
        assert other.ef == 33 and other.metric == metric and len(other) == len(index)
        got = other.query(Q, k=7)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(other.ids, index.ids)
    # Later adds continue identically (same level generator state, same free slots).
    states = [_add_and_state(i, X[:20] * 1.5) for i in [index, *copies]]
    for name in states[0]:
        for other in states[1:]:
            np.testing.assert_array_equal(states[0][name], other[name], err_msg=name)


def _add_and_state(index, rows):
    index.add(rows, threads=1)
    return index._get_state()[1]


def _saved(tmp_path, rng, **kw):
    index = build(clustered(rng, 300, 6), **kw)
    index.remove([4])
    path = tmp_path / "good.pysim"
    index.save(path)
    return index, path


def test_corrupt_files_raise_value_error_naming_the_path(tmp_path, rng):
    _, path = _saved(tmp_path, rng)
    raw = path.read_bytes()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "flipped": raw[:300] + bytes([raw[300] ^ 0x40]) + raw[301:],
        "empty": b"",
        "foreign": b"\x89PNG\r\n\x1a\n" + raw[8:],
    }
    for name, blob in cases.items():
        bad = tmp_path / f"{name}.pysim"
        bad.write_bytes(blob)
        with pytest.raises(ValueError, match=name):
            pysim.HNSWIndex.load(bad)
    other = tmp_path / "kd.pysim"
    _persist.save(other, "kdtree", {}, {})
    with pytest.raises(ValueError, match="kd.pysim"):
        pysim.HNSWIndex.load(other)
    with pytest.raises(ValueError, match="pickle"):
        pickle.loads(pickle.dumps(build(np.eye(3))).replace(b"PYSIMEND", b"PYSIMXXX"))


def _tamper(arrays, meta, name):
    a = {k: np.array(v) for k, v in arrays.items()}
    m = dict(meta)
    n = m["n"]
    live = np.flatnonzero(a["status"] == 0)
    if name == "link_out_of_range":
        a["counts0"][live[0]] = max(1, a["counts0"][live[0]])
        a["links0"][live[0], 0] = n + 5
    elif name == "self_link":
        a["counts0"][live[0]] = max(1, a["counts0"][live[0]])
        a["links0"][live[0], 0] = live[0]
    elif name == "count_too_big":
        a["counts0"][live[1]] = a["links0"].shape[1] + 1
    elif name == "level_too_high":
        a["levels"][live[2]] = 200
    elif name == "upper_link_to_low_node":
        low = np.flatnonzero(a["levels"] == 0)[0]
        a["upper_counts"][0] = max(1, a["upper_counts"][0])
        a["upper_links"][0, 0] = low
    elif name == "duplicate_ids":
        a["labels"][live[1]] = a["labels"][live[0]]
    elif name == "negative_id":
        a["labels"][live[0]] = -5
    elif name == "bad_status":
        a["status"][live[0]] = 9
    elif name == "nan_vector":
        a["codes"][live[0], 0] = np.nan
    elif name == "entry_not_top":
        m["max_level"] = m["max_level"] + 1
    elif name == "entry_out_of_range":
        m["entry"] = n + 100
    elif name == "free_list_wrong":
        a["free_slots"] = np.array([live[0]], np.uint32)
    elif name == "huge_n":
        m["n"] = 10**12
    elif name == "wrong_dtype":
        a["links0"] = a["links0"].astype(np.int64)
    elif name == "missing_array":
        del a["upper_links"]
    elif name == "bad_metric":
        m["metric"] = "hamming"
    elif name == "next_id_too_small":
        m["next_id"] = 0
    elif name == "links_to_free_slot":
        a["status"][live[3]] = 2
        a["labels"][live[3]] = -1
        a["free_slots"] = np.append(a["free_slots"], np.uint32(live[3]))
    return m, a


TAMPER = [
    "link_out_of_range", "self_link", "count_too_big", "level_too_high",
    "upper_link_to_low_node", "duplicate_ids", "negative_id", "bad_status", "nan_vector",
    "entry_not_top", "entry_out_of_range", "free_list_wrong", "huge_n", "wrong_dtype",
    "missing_array", "bad_metric", "next_id_too_small", "links_to_free_slot",
]  # fmt: skip


@pytest.mark.parametrize("case", TAMPER)
def test_crafted_states_are_rejected(tmp_path, rng, case):
    index, _ = _saved(tmp_path, rng)
    meta, arrays = index._get_state()
    m, a = _tamper(arrays, meta, case)
    path = tmp_path / f"{case}.pysim"
    _persist.save(path, "hnsw", m, a)  # a valid container holding a bad graph
    with pytest.raises(ValueError, match=case):
        pysim.HNSWIndex.load(path)


# ---------------------------------------------------------------------------- bad input


# Bad-input tests read as one pytest.raises per argument, as every component's do (duplicates pairs
# them by shape).
def test_constructor_errors():
    with pytest.raises(ValueError, match="metric"):
        pysim.HNSWIndex(4, "hamming")
    with pytest.raises(ValueError, match="dim"):
        pysim.HNSWIndex(0)
    with pytest.raises(TypeError, match="dim"):
        pysim.HNSWIndex(4.5)
    with pytest.raises(ValueError, match="M"):
        pysim.HNSWIndex(4, M=1)
    with pytest.raises(ValueError, match="ef_construction"):
        pysim.HNSWIndex(4, ef_construction=0)
    with pytest.raises(ValueError, match="max_elements"):
        pysim.HNSWIndex(4, max_elements=-1)
    with pytest.raises(ValueError, match="VI"):
        pysim.HNSWIndex(4, "mahalanobis")
    with pytest.raises(ValueError, match="VI"):
        pysim.HNSWIndex(4, "euclidean", VI=np.eye(4))
    with pytest.raises(ValueError, match="semi-definite"):
        pysim.HNSWIndex(2, "mahalanobis", VI=[[1.0, 0.0], [0.0, -1.0]])


def test_bad_input_errors_leave_the_index_unchanged(rng):
    X = rng.standard_normal((100, 5)).astype(np.float32)
    index = build(X)
    before = index._get_state()
    bad_calls = [
        (ValueError, "columns", lambda: index.add(np.zeros((2, 4)))),
        (ValueError, "NaN", lambda: index.add(np.full((2, 5), np.nan))),
        (ValueError, "infinity", lambda: index.add(np.array([[np.inf] * 5]))),
        (ValueError, "distinct", lambda: index.add(np.zeros((2, 5)), ids=[7, 7])),
        (ValueError, ">= 0", lambda: index.add(np.zeros((2, 5)), ids=[1, -2])),
        (ValueError, "one id per row", lambda: index.add(np.zeros((2, 5)), ids=[1])),
        (TypeError, "integers", lambda: index.add(np.zeros((2, 5)), ids=[1.5, 2.5])),
        (TypeError, "sparse", lambda: index.add(scipy.sparse.csr_matrix(np.ones((2, 5))))),
        (TypeError, "real numbers", lambda: index.add(np.array([["a"] * 5]))),
        (ValueError, "threads", lambda: index.add(np.zeros((2, 5)), threads=0)),
        (ValueError, "columns", lambda: index.query(np.zeros((2, 4)))),
        (ValueError, "NaN", lambda: index.query(np.full(5, np.nan))),
        (ValueError, "k must be", lambda: index.query(np.zeros(5), k=0)),
        (TypeError, "k must be", lambda: index.query(np.zeros(5), k=2.0)),
        (ValueError, "ef", lambda: index.query(np.zeros(5), ef=-1)),
        (KeyError, "999", lambda: index.get_items([1, 999])),
        (KeyError, "999", lambda: index.remove([1, 999])),
    ]
    for exc, match, call in bad_calls:
        with pytest.raises(exc, match=match):
            call()
    after = index._get_state()
    assert before[0] == after[0]
    for name in before[1]:
        np.testing.assert_array_equal(before[1][name], after[1][name])


def test_membership_and_items(rng):
    X = rng.standard_normal((20, 3)).astype(np.float32)
    index = build(X, ids=np.arange(20) + 100)
    assert 100 in index and 119 in index and 99 not in index
    assert "100" not in index and -1 not in index and 2**70 not in index and True not in index
    np.testing.assert_array_equal(index.get_items([101, 100]), X[[1, 0]])
    assert index.get_items(105).shape == (1, 3)
    assert repr(index).startswith("HNSWIndex(dim=3")


def test_progress_bar_and_plain_fallback(rng, capsys, monkeypatch):
    X = rng.standard_normal((50, 4)).astype(np.float32)
    pysim.HNSWIndex(4).add(X, progress=True)
    monkeypatch.setitem(__import__("sys").modules, "tqdm.auto", None)
    pysim.HNSWIndex(4).add(X, progress=True)
    assert "50/50" in capsys.readouterr().err
    with pytest.raises(TypeError, match="progress"):
        pysim.HNSWIndex(4).add(X, progress="yes")
