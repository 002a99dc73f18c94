"""pysim.distributed.ShardedIndex on a real LocalCluster (2 worker processes x 1 thread).

One cluster for this module (starting worker processes costs seconds); every test makes
its own index and closes it. Exact answers are compared with a single BruteForceIndex over
the union (same ids, same order, same distances); HNSW recall with a single HNSWIndex.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

import pysim  # noqa: E402
from pysim.distributed import ShardedIndex, merge_topk  # noqa: E402
from pysim.distributed import _worker as W  # noqa: E402


@pytest.fixture(scope="module")
def client():
    # Module scope (all the tests that need a cluster are here): started once, and gone
    # before other test files run - its event-loop thread would otherwise allocate during
    # their tracemalloc measurements.
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: no "port 8787 in use" warning
        scheduler_port=0,
        silence_logs=40,
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _inventory(client) -> dict[str, list]:
    return client.run(W.run_inventory)


def _exact(X, Q, k, metric="sqeuclidean", ids=None):
    """BruteForceIndex over the union; rows sorted by id, answers mapped to ids."""
    if ids is None:
        ids = np.arange(len(X))
    order = np.argsort(ids)
    d, r = pysim.BruteForceIndex(X[order], metric).query(Q, k)
    return d, np.where(r >= 0, ids[order][np.maximum(r, 0)], -1)


def _recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])


# ---------------------------------------------------------------------------- merge


def test_merge_orders_ties_nan_and_padding():
    a = (np.array([[1.0, 2.0, np.inf]], np.float32), np.array([[7, 3, -1]]))
    b = (np.array([[1.0, np.nan, 0.5]], np.float32), np.array([[2, 9, 8]]))
    d, i = merge_topk([a, b], 5)
    assert i.tolist() == [[8, 2, 7, 3, 9]]  # ties by the smaller id, NaN after numbers
    assert d[0, :4].tolist() == [0.5, 1.0, 1.0, 2.0] and np.isnan(d[0, 4])
    d, i = merge_topk([a], 4)  # padding stays at the tail, filled to k
    assert i.tolist() == [[7, 3, -1, -1]]
    assert np.isinf(d[0, 2:]).all()


# ---------------------------------------------------------------------------- exact


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_brute_equals_single_index_over_union(client, rng, metric):
    X = rng.standard_normal((700, 12)).astype(np.float32)
    Q = rng.standard_normal((40, 12)).astype(np.float32)
    with ShardedIndex(12, metric, kind="brute", n_shards=3, client=client) as index:
        index.add(X[:300])
        index.add(X[300:])
        assert len(index) == 700 and index.n_shards == 3
        assert sum(index.shard_sizes.values()) == 700
        for k in (1, 10, 800):
            d, i = index.query(Q, k)
            ed, ei = _exact(X, Q, k, metric)
            np.testing.assert_array_equal(i, ei)
            np.testing.assert_array_equal(d, ed)


def test_brute_ties_and_arbitrary_ids(client, rng):
    X = rng.integers(0, 3, (400, 3)).astype(np.float64)  # many exact ties
    ids = rng.permutation(10_000)[:400].astype(np.int64)
    Q = rng.integers(0, 3, (30, 3)).astype(np.float64)
    with ShardedIndex(3, kind="brute", client=client) as index:
        index.add(X[:200], ids[:200])
        index.add(X[200:], ids[200:])  # interleaved ids: shards re-sort their rows
        d, i = index.query(Q, 25)
        ed, ei = _exact(X, Q, 25, ids=ids)
        np.testing.assert_array_equal(i, ei)
        np.testing.assert_array_equal(d, ed)
        assert d.dtype == np.float64
        np.testing.assert_array_equal(index.ids, np.sort(ids))


def test_filter_and_remove_are_routed(client, rng):
    X = rng.standard_normal((500, 8)).astype(np.float32)
    Q = rng.standard_normal((20, 8)).astype(np.float32)
    with ShardedIndex(8, kind="brute", client=client) as index:
        index.add(X)
        allowed = rng.choice(500, 60, replace=False)
        d, i = index.query(Q, 5, filter=np.append(allowed, [10**9]))  # unknown ids ignored
        ed, ei = _exact(X[allowed], Q, 5, ids=allowed)
        np.testing.assert_array_equal(i, ei)
        np.testing.assert_array_equal(d, ed)
        d2, i2 = index.query(Q, 5, filter=lambda j: j in set(allowed.tolist()))
        np.testing.assert_array_equal(i2, ei)
        one_shard = np.arange(0, 500, index.n_shards)[:3]  # ids 0, S, 2S: all on shard 0
        _, i3 = index.query(Q, 5, filter=one_shard)
        assert set(i3[:, :3].ravel()) == set(one_shard) and (i3[:, 3:] == -1).all()

        gone = rng.choice(500, 200, replace=False)
        index.remove(gone)
        assert len(index) == 300
        keep = np.setdiff1d(np.arange(500), gone)
        d, i = index.query(Q, 10)
        ed, ei = _exact(X[keep], Q, 10, ids=keep)
        np.testing.assert_array_equal(i, ei)
        np.testing.assert_array_equal(d, ed)
        with pytest.raises(KeyError):
            index.remove([gone[0]])
        inv = [e for es in _inventory(client).values() for e in es if e[0] == index._uid]
        rows = {e[1]: e[3] for e in inv if e[2] == "index"}
        assert rows == index.shard_sizes


def test_hnsw_recall_matches_single_index(client):
    from pysim.distributed import _merge  # noqa: F401

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, 32)).astype(np.float32)
    X = centres[rng.integers(0, 40, 4000)] + 0.3 * rng.standard_normal((4000, 32)).astype(
        np.float32
    )
    Q = X[:200] + 0.05 * rng.standard_normal((200, 32)).astype(np.float32)
    _, truth = _exact(X, Q, 10)
    single = pysim.HNSWIndex(32, M=8, ef_construction=64)
    single.add(X, threads=1)
    base = _recall(single.query(Q, 10, ef=16)[1], truth)
    with ShardedIndex(32, M=8, ef_construction=64, client=client) as index:
        index.add(X)
        d, i = index.query(Q, 10, ef=16)
        assert d.dtype == np.float32 and i.dtype == np.int64
        assert (np.diff(d, axis=1) >= 0).all()
        assert _recall(i, truth) >= base - 0.005
        index.remove(np.arange(100))
        _, i = index.query(Q, 10, ef=16)
        assert (i >= 100).all()


def test_hnsw_quantized_shards(client, rng):
    X = rng.standard_normal((600, 16)).astype(np.float32)
    with ShardedIndex(16, quantization="sq8", client=client) as index:
        index.add(X)
        _, i = index.query(X[:20], 1)
        assert (i[:, 0] == np.arange(20)).all()


# ---------------------------------------------------------------------------- bad input


def test_bad_input_refused_before_workers(client, rng, monkeypatch):
    with pytest.raises(ValueError, match="metric"):
        ShardedIndex(4, "nope", client=client)
    with pytest.raises(ValueError, match="kind"):
        ShardedIndex(4, kind="ivf", client=client)
    with pytest.raises(TypeError):
        ShardedIndex(4, client=client, bogus=1)
    with pytest.raises(ValueError, match="replicas"):
        ShardedIndex(4, replicas=3, client=client)
    X = rng.standard_normal((50, 4)).astype(np.float32)
    with ShardedIndex(4, client=client) as index:
        index.add(X)
        before = _inventory(client)
        with pytest.raises(ValueError, match="columns"):
            index.add(np.ones((3, 5)))
        with pytest.raises(ValueError, match="NaN"):
            index.add(np.full((3, 4), np.nan))
        with pytest.raises(ValueError, match="already"):
            index.add(X[:2], ids=[3, 1000])
        with pytest.raises(ValueError, match="distinct"):
            index.add(X[:2], ids=[1000, 1000])
        with pytest.raises(ValueError, match="k must"):
            index.query(X[:1], 0)
        with pytest.raises(ValueError, match="columns"):
            index.query(np.ones((2, 3)))
        with pytest.raises(ValueError, match="columns"):
            index.add(da.ones((10, 5), chunks=5))
        with pytest.raises(TypeError, match="real numbers"):
            index.add(da.ones((10, 4), chunks=5, dtype="c8"))
        assert _inventory(client) == before and len(index) == 50

    def no_client():
        raise ValueError("No global client found")

    monkeypatch.setattr(distributed, "get_client", no_client)
    with pytest.raises(ValueError, match=r"Client\(\)"):
        ShardedIndex(4)


def test_import_pysim_does_not_import_dask():
    code = "import sys, pysim; pysim.HNSWIndex; pysim.BruteForceIndex; print('dask' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == "False"


def test_close_releases_worker_memory(client, rng):
    index = ShardedIndex(4, kind="brute", client=client)
    index.add(rng.standard_normal((20, 4)))
    uid = index._uid
    assert any(e[0] == uid for es in _inventory(client).values() for e in es)
    index.close()
    assert not any(e[0] == uid for es in _inventory(client).values() for e in es)
    with pytest.raises(ValueError, match="closed"):
        index.query(np.zeros(4))


# ---------------------------------------------------------------------------- dask arrays


def test_dask_array_add_and_lazy_query(client, rng):
    X = rng.standard_normal((900, 10)).astype(np.float32)
    Q = rng.standard_normal((70, 10)).astype(np.float32)
    dX = da.from_array(X, chunks=(250, 5))  # column chunks are joined on the workers
    with ShardedIndex(10, kind="brute", n_shards=3, client=client) as index:
        index.add(dX)
        assert len(index) == 900
        dQ = da.from_array(Q, chunks=(30, 10))
        d, i = index.query(dQ, 7)
        assert isinstance(d, da.Array) and isinstance(i, da.Array)
        assert d.chunks == ((30, 30, 10), (7,)) and i.dtype == np.int64
        d, i = client.compute([d, i], sync=True)
        ed, ei = _exact(X, Q, 7)
        np.testing.assert_array_equal(i, ei)
        np.testing.assert_array_equal(d, ed)
        nd, ni = index.query(Q, 7)  # numpy in, numpy out
        assert isinstance(nd, np.ndarray)
        np.testing.assert_array_equal(ni, ei)
        _, fi = index.query(dQ, 3, filter=np.arange(100))
        assert (fi.compute() < 100).all()


def test_dask_add_is_validated_on_workers_before_any_shard(client, rng):
    X = rng.standard_normal((300, 6)).astype(np.float32)
    X[250, 2] = np.nan
    with ShardedIndex(6, client=client) as index:
        with pytest.raises(ValueError, match="NaN"):
            index.add(da.from_array(X, chunks=100))
        assert len(index) == 0
        inv = [e for es in _inventory(client).values() for e in es if e[0] == index._uid]
        assert all(e[3] == 0 for e in inv)


def test_dask_add_never_gathers_on_the_client(client, rng, monkeypatch):
    dX = da.random.default_rng(5).standard_normal((600, 8), chunks=(200, 8)).astype(np.float32)
    X = dX.compute()

    def refuse(*args, **kwargs):
        raise AssertionError("the client gathered data")

    with ShardedIndex(8, kind="brute", client=client) as index:
        monkeypatch.setattr(type(client), "gather", refuse)
        index.add(dX)
        monkeypatch.undo()
        _, i = index.query(X[:20], 1)
        np.testing.assert_array_equal(i[:, 0], np.arange(20))


@pytest.mark.parametrize("replicas", [1, 2])
def test_placement_pinned_and_never_copied(client, rng, replicas):
    from dask.sizeof import sizeof

    X = rng.standard_normal((800, 8)).astype(np.float32)
    with ShardedIndex(8, replicas=replicas, n_shards=4, client=client) as index:
        index.add(X)
        for _ in range(3):
            index.query(da.from_array(X[:100], chunks=25), 5)[1].compute()
            index.query(X[:100], 5)
        inv = _inventory(client)
        where: dict[tuple[int, str], list[str]] = {}
        for addr, entries in inv.items():
            for uid, shard, role, _rows, _nbytes in entries:
                if uid == index._uid:
                    where.setdefault((shard, role), []).append(addr)
        for s in range(4):
            assert len(where[(s, "index")]) == replicas  # never more copies than replicas
            assert len(set(where[(s, "index")] + where.get((s, "log"), []))) == 2
            assert sorted(where[(s, "index")]) == sorted(
                a for a, r in index.placement[s] if r == "index"
            )
        # No shard is a Dask key anywhere: the scheduler has nothing to copy.
        assert sum(client.run(W.run_shards_in_dask_data).values()) == 0
    shard = W.HnswShard(8, "sqeuclidean", {})
    shard.add(X, np.arange(len(X)), 1)
    assert sizeof(shard) == shard.memory_bytes() >= X.nbytes


# ---------------------------------------------------------------------------- fault tolerance


def _kill(client, addr) -> None:
    """SIGKILL the worker process at `addr` (its nanny starts a fresh one, at a new address)."""
    pid = client.run(os.getpid, workers=[addr])[addr]
    os.kill(pid, signal.SIGKILL)


def _wait_two_workers(client) -> None:
    """Until exactly two live workers answer (a killed one is gone, its successor is up).

    The nanny restarts a killed worker; on a loaded machine the restart can time out, so
    after a while the cluster is scaled back to two workers instead."""
    deadline = time.time() + 180
    scaled = False
    while time.time() < deadline:
        pids = client.run(os.getpid, on_error="return")
        if len(pids) == 2 and all(isinstance(p, int) for p in pids.values()):
            return
        if not scaled and time.time() > deadline - 170:
            client.cluster.scale(2)
            scaled = True
        time.sleep(0.2)
    raise AssertionError("the cluster did not get back to two workers")


@pytest.mark.parametrize(
    "kind,replicas",
    [("brute", 1), pytest.param("hnsw", 1, marks=pytest.mark.slow), ("hnsw", 2)],
    ids=["brute-r1", "hnsw-r1", "hnsw-r2"],
)
def test_worker_killed_during_query_loop(client, rng, tmp_path, kind, replicas):
    X = rng.standard_normal((1200, 16)).astype(np.float32)
    Q = rng.standard_normal((60, 16)).astype(np.float32)
    _wait_two_workers(client)
    params = {"M": 8, "ef_construction": 40} if kind == "hnsw" else {}
    with ShardedIndex(16, kind=kind, replicas=replicas, client=client, **params) as index:
        index.add(X[:500])
        if kind == "hnsw" and replicas == 1:
            index.save(tmp_path / "saved")  # the rebuild then starts from this save
        index.add(X[500:1000])
        index.remove(np.arange(0, 1000, 7))
        index.add(X[1000:])
        expected = [index.query(Q[j : j + 3], 5) for j in range(0, 60, 3)]
        victim = index.placement[0][0][0]  # the worker holding shard 0's index
        killer = None
        got = []
        for j in range(0, 60, 3):
            if j == 9:
                killer = threading.Thread(target=_kill, args=(client, victim))
                killer.start()
            got.append(index.query(Q[j : j + 3], 5))
        killer.join()
        for (ed, ei), (gd, gi) in zip(expected, got, strict=True):
            np.testing.assert_array_equal(gi, ei)
            np.testing.assert_array_equal(gd, ed)
        # The lost copies were restored: every shard has all its holders on live workers.
        live = set(client.sync(client.scheduler.identity, n_workers=-1)["workers"])
        index.query(Q[:1], 1)
        for holders in index.placement.values():
            assert all(a in live for a, _ in holders) or len(live) < 2
        assert victim not in live
        d, i = index.query(Q, 5)
        np.testing.assert_array_equal(i, np.concatenate([e[1] for e in expected]))


def test_worker_killed_during_add_names_failed_shards(client, rng, monkeypatch):
    X = rng.standard_normal((400, 8)).astype(np.float32)
    _wait_two_workers(client)
    with ShardedIndex(8, kind="brute", n_shards=2, client=client) as index:
        index.add(X[:200])
        victim = index.placement[1][0][0]
        assert index.placement[0][0][0] != victim
        begin = ShardedIndex._begin

        def begin_then_kill(self):
            spec = begin(self)
            _kill(client, victim)
            time.sleep(0.5)
            return spec

        monkeypatch.setattr(ShardedIndex, "_begin", begin_then_kill)
        with pytest.raises(pysim.distributed.ShardFailureError) as info:
            index.add(X[200:])
        monkeypatch.undo()
        assert info.value.shards == (1,), str(
            info.value
        )  # shard 1's only copy was on the killed worker
        lost_ids = info.value.ids
        assert set(lost_ids.tolist()) == set(range(201, 400, 2))
        added = np.setdiff1d(np.arange(400), lost_ids)
        np.testing.assert_array_equal(index.ids, added)
        d, i = index.query(X[:30], 10)
        ed, ei = _exact(X[added], X[:30], 10, ids=added)
        np.testing.assert_array_equal(i, ei)
        index.add(X[lost_ids], lost_ids)  # the failed rows can simply be added again
        _, i = index.query(X[:30], 1)
        np.testing.assert_array_equal(i[:, 0], np.arange(30))


# ---------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("kind", ["brute", "hnsw"])
def test_save_load_round_trip(client, rng, tmp_path, kind):
    X = rng.standard_normal((500, 8)).astype(np.float32)
    Q = rng.standard_normal((25, 8)).astype(np.float32)
    with ShardedIndex(8, "euclidean", kind=kind, n_shards=3, client=client) as index:
        index.add(X)
        index.remove([3, 4, 5])
        expected = index.query(Q, 6)
        index.save(tmp_path / "ix")
        sizes = index.shard_sizes
    files = sorted(p.name for p in (tmp_path / "ix").iterdir())
    assert files == ["manifest.pysim"] + [f"shard-{s:05d}.{kind}.pysim" for s in range(3)]
    if kind == "hnsw":  # a shard file is the shard class's own format
        assert len(pysim.HNSWIndex.load(tmp_path / "ix" / "shard-00001.hnsw.pysim")) == sizes[1]
    with ShardedIndex.load(tmp_path / "ix", client=client) as loaded:
        assert len(loaded) == 497 and loaded.shard_sizes == sizes and loaded.metric == "euclidean"
        got = loaded.query(Q, 6)
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(got[0], expected[0])
        loaded.add(X[:2])  # default ids continue after the largest
        assert loaded.ids[-2:].tolist() == [500, 501]
    url = "file://" + str(tmp_path / "ix")
    with ShardedIndex.load(url, client=client) as loaded:
        np.testing.assert_array_equal(loaded.query(Q, 6)[1], expected[1])


def test_load_missing_or_corrupt_shard_names_it(client, rng, tmp_path):
    with ShardedIndex(4, kind="brute", n_shards=2, client=client) as index:
        index.add(rng.standard_normal((50, 4)))
        index.save(tmp_path / "ix")
    before = sum(len(es) for es in _inventory(client).values())
    shard = tmp_path / "ix" / "shard-00001.brute.pysim"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="shard-00001"):
        ShardedIndex.load(tmp_path / "ix", client=client)
    shard.unlink()
    with pytest.raises(ValueError, match="shard-00001"):
        ShardedIndex.load(tmp_path / "ix", client=client)
    with pytest.raises(ValueError, match="manifest"):
        ShardedIndex.load(tmp_path / "nothing", client=client)
    assert sum(len(es) for es in _inventory(client).values()) == before  # nothing left behind


@pytest.mark.slow
def test_later_workers_receive_new_shards(client, rng):
    _wait_two_workers(client)
    X = rng.standard_normal((600, 6)).astype(np.float32)
    with ShardedIndex(6, kind="brute", client=client) as index:
        index.add(X[:300])
        assert index.n_shards == 2
        client.cluster.scale(3)
        client.wait_for_workers(3, timeout=120)
        index.add(X[300:])
        assert index.n_shards == 3 and index.shard_sizes[2] > 0
        assert len({hs[0][0] for hs in index.placement.values()}) == 3
        d, i = index.query(X[:40], 8)
        ed, ei = _exact(X, X[:40], 8)
        np.testing.assert_array_equal(i, ei)
    client.cluster.scale(2)
    _wait_two_workers(client)


# ---------------------------------------------------------------------------- placement plan


def test_plan_never_puts_a_log_with_its_own_shard():
    from pysim.distributed import _cluster as C

    ws = ["tcp://a:1", "tcp://b:1", "tcp://c:1"]
    plan = C.plan_holders(0, 5, ws, 1)
    assert [hs[0] for hs in plan] == [[ws[s % 3], "index"] for s in range(5)]
    assert all(hs[1][1] == "log" and hs[1][0] != hs[0][0] for hs in plan)
    assert [h[0] for h in C.plan_holders(3, 1, ws, 2)[0]] == [ws[0], ws[1]]
    # One worker: a log there would die with the shard, so there is none.
    assert C.plan_holders(0, 2, ws[:1], 1) == [[[ws[0], "index"]], [[ws[0], "index"]]]


@pytest.mark.parametrize("colocated", [False, True], ids=["no-log", "log-on-own-worker"])
def test_log_moves_to_another_worker_when_there_is_one(client, rng, monkeypatch, colocated):
    """An index made while one worker was known (no log, or a log beside its shard) gets a
    log on the other worker at its next call; the co-located log is freed."""
    from pysim.distributed import _cluster as C

    _wait_two_workers(client)
    X = rng.standard_normal((300, 8)).astype(np.float32)
    first = sorted(C.alive(client))[0]

    def one_worker_plan(start, count, workers, replicas):
        extra = [[first, "log"]] if colocated else []
        return [[[first, "index"], *extra] for _ in range(count)]

    monkeypatch.setattr(C, "plan_holders", one_worker_plan)
    with ShardedIndex(8, kind="brute", n_shards=2, client=client) as index:
        monkeypatch.undo()
        assert all(h[0] == first for hs in index.placement.values() for h in hs)
        index.add(X[:150])  # heals first: each shard's log goes to the other worker
        index.add(X[150:])
        for hs in index.placement.values():
            assert [r for _, r in hs] == ["index", "log"] and hs[1][0] != first
        inv = _inventory(client)
        assert not [e for e in inv[first] if e[0] == index._uid and e[2] == "log"]
        other = [a for a in inv if a != first][0]
        logs = [e for e in inv[other] if e[0] == index._uid and e[2] == "log"]
        assert sorted(e[1] for e in logs) == [0, 1]
        d, i = index.query(X[:20], 5)
        ed, ei = _exact(X, X[:20], 5)
        np.testing.assert_array_equal(i, ei)
        # The log really protects the shard: kill its worker, the answers stay the same.
        _kill(client, first)
        d2, i2 = index.query(X[:20], 5)
        np.testing.assert_array_equal(i2, ei)
        np.testing.assert_array_equal(d2, d)
    _wait_two_workers(client)


def test_large_query_batch_is_scattered_and_answered(client, rng):
    X = rng.standard_normal((900, 32)).astype(np.float32)
    Q = rng.standard_normal((700, 32)).astype(np.float32)  # 89.6 kB: scattered, not inlined
    with ShardedIndex(32, kind="brute", client=client) as index:
        index.add(X)
        d, i = index.query(Q, 7)
        ed, ei = _exact(X, Q, 7)
        np.testing.assert_array_equal(i, ei)
        np.testing.assert_allclose(d, ed, rtol=1e-5, atol=1e-5)
