"""Hardening of the indexes: fuzzed loaders, concurrent callers, Ctrl-C, memory over many cycles.

Why this file exists next to test_hardening.py / test_fuzz_persist.py: those check the
container and the kernels; here every index (BruteForceIndex, KDTreeIndex, HNSWIndex) is fed
damaged files and pickles, used from several threads at once, interrupted, and cycled, reusing
the machinery of hardening_tools.py. The figures the targets are about (fuzz cases and
crashes, lost / resurrected ids, interrupt latency, RSS growth) are printed in the "pysim
hardening figures" summary.

Resealed damage matters most: a blind flip is caught by the CRC, so only a file whose checksum
was recomputed after rewriting a field or a payload array (HNSW link lists, levels, labels...)
reaches the code that trusts those values. Such a file must either be rejected with ValueError
or load into an index whose query / add / remove work without crashing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from hardening_tools import (
    AllocationMeter,
    asan_active,
    check_blob_rejected,
    check_file_rejected,
    corruptions,
    measure_interrupts,
    report,
    rss_growth_in_child,
    seal,
    split_container,
    unpickler_for,
)
from hypothesis import HealthCheck, given, settings

import pysim

CI = os.environ.get("HYPOTHESIS_PROFILE") == "ci"
FUZZ_EXAMPLES = int(os.environ.get("PYSIM_FUZZ_EXAMPLES", "1000" if CI else "120"))
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LATENCY_BOUND = 3.0 if asan_active() else 1.0
needs_sigint = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill") or sys.platform == "win32",
    reason="needs POSIX signals (pthread_kill)",
)

# --------------------------------------------------------------------------------------------
# Small valid indexes (several HNSW levels, removed points, free slots) and how to use them


def _brute():
    X = np.random.default_rng(1).standard_normal((30, 5)).astype(np.float32)
    return pysim.BruteForceIndex(X, "sqeuclidean")


def _kdtree():
    X = np.random.default_rng(2).standard_normal((60, 3))
    return pysim.KDTreeIndex(X, "euclidean", leaf_size=4)


def _hnsw():
    rng = np.random.default_rng(3)
    index = pysim.HNSWIndex(6, "sqeuclidean", M=3, ef_construction=16, seed=7)
    index.add(rng.standard_normal((80, 6)).astype(np.float32), threads=1)
    index.remove([3, 10, 11, 40])
    return index


def _hnsw_quantized(quantization, metric, refine):
    """A quantised HNSW index whose state has every q_* array: sq ranges, observed ranges,
    codes, drift counters (some rows clipped) and - with refine > 0 - the float32 copy."""

    def make():
        rng = np.random.default_rng(4)
        index = pysim.HNSWIndex(
            6, metric, M=3, ef_construction=16, seed=7, quantization=quantization, refine=refine
        )
        index.add(rng.standard_normal((60, 6)).astype(np.float32), threads=1)
        index.add(2 * rng.standard_normal((20, 6)).astype(np.float32), threads=1)  # drifted
        index.remove([3, 10, 11, 40])
        return index

    return make


MAKERS = {
    "brute": _brute,
    "kdtree": _kdtree,
    "hnsw": _hnsw,
    "hnsw_sq8": _hnsw_quantized("sq8", "sqeuclidean", None),
    "hnsw_sq4_norefine": _hnsw_quantized("sq4", "cosine", 0),
}
CLASSES = {
    "brute": pysim.BruteForceIndex,
    "kdtree": pysim.KDTreeIndex,
    "hnsw": pysim.HNSWIndex,
    "hnsw_sq8": pysim.HNSWIndex,
    "hnsw_sq4_norefine": pysim.HNSWIndex,
}
_Q = np.random.default_rng(9).standard_normal((4, 6)).astype(np.float32)


def _exercise(index) -> None:
    """Use a loaded (possibly damaged-but-accepted) index the way a user would."""
    q = _Q[:, : index.dim]
    k = 3
    d, i = index.query(q, k=k)
    assert d.shape == (len(q), k) and i.shape == (len(q), k)
    if isinstance(index, pysim.HNSWIndex):
        index.query(q, k=k, ef=64, threads=2)
        ids = index.ids
        assert len(ids) == len(index)
        if len(ids):
            index.query(q, k=k, filter=ids[::2])
            index.get_items(ids[:3])
            index.remove(ids[:1])
        index.add(q, threads=1)
        index.query(q, k=k, ef=32)
    elif isinstance(index, pysim.KDTreeIndex):
        index.query_radius(q, 1.0)


# --------------------------------------------------------------------------------------------
# Resealed damage to the payload arrays, value by value


def _array_layout(valid: bytes) -> tuple[dict, bytes, list[tuple[dict, int]]]:
    header, payload = split_container(valid)
    offset, layout = 0, []
    for spec in header["arrays"]:
        dt = np.dtype(spec["dtype"])
        count = int(np.prod(spec["shape"], dtype=np.int64))
        layout.append((spec, offset))
        offset += count * dt.itemsize
    return header, payload, layout


def _odd_values(dt: np.dtype, n: int) -> list:
    if dt.kind == "f":
        return [np.nan, np.inf, -np.inf, 3e38, -0.0, 1e-45]
    info = np.iinfo(dt)
    vals = {0, 1, info.max, info.max - 1, n - 1, n, n + 1, 2 * n, info.min}
    if dt.kind == "i":
        vals |= {-1, -2}
    return sorted(v for v in vals if info.min <= v <= info.max)


def array_damage(valid: bytes, rng: np.random.Generator, positions: int = 3):
    """Resealed copies with one element (or a whole array) of one payload array overwritten
    by a boundary value: out-of-range link targets, levels past max_level, negative or
    duplicate labels, NaN vectors, counts larger than the list..."""
    header, payload, layout = _array_layout(valid)
    raw_header = json.dumps(header, sort_keys=True).encode()
    n = int(header["meta"].get("n", 0) or 0)
    for spec, offset in layout:
        dt = np.dtype(spec["dtype"])
        count = int(np.prod(spec["shape"], dtype=np.int64))
        if count == 0:
            continue
        picks = {0, count - 1} | set(rng.integers(0, count, positions).tolist())
        for value in _odd_values(dt, max(n, 1)):
            for pos in sorted(picks):
                buf = bytearray(payload)
                view = np.frombuffer(buf, dtype=dt, count=count, offset=offset)
                view[pos] = value
                yield f"{spec['name']}[{pos}] = {value}", seal(raw_header, bytes(buf))
            buf = bytearray(payload)
            np.frombuffer(buf, dtype=dt, count=count, offset=offset)[:] = value
            yield f"{spec['name']}[:] = {value}", seal(raw_header, bytes(buf))
        # Duplicates: the first element copied over the second (two nodes with one label...).
        if count > 1:
            buf = bytearray(payload)
            view = np.frombuffer(buf, dtype=dt, count=count, offset=offset)
            view[1] = view[0]
            yield f"{spec['name']}[1] = {spec['name']}[0]", seal(raw_header, bytes(buf))


@pytest.fixture(scope="module", params=sorted(MAKERS))
def valid_index(request):
    index = MAKERS[request.param]()
    blob = index.__reduce__()[1][1]  # the container bytes, as pickled
    return request.param, index, blob


def test_valid_indexes_round_trip(valid_index, tmp_path):
    name, index, blob = valid_index
    path = str(tmp_path / "ok.idx")
    index.save(path)
    loaded = CLASSES[name].load(path)
    np.testing.assert_array_equal(
        loaded.query(_Q[:, : index.dim], k=3)[1], index.query(_Q[:, : index.dim], k=3)[1]
    )
    again = unpickler_for(index)(blob)
    assert len(again) == len(index)


def test_resealed_array_damage(valid_index, tmp_path, request):
    """Every payload array, every boundary value, at its ends and random spots, file and pickle."""
    name, index, valid = valid_index
    cls = CLASSES[name]
    unpickle = unpickler_for(index)
    path = str(tmp_path / "damaged.idx")
    rng = np.random.default_rng(17)
    counts = {"rejected": 0, "loaded": 0}
    with AllocationMeter() as meter:
        for what, data in array_damage(valid, rng, positions=12 if CI else 3):
            for ok in (
                check_file_rejected(
                    cls.load, data, path, meter, what, may_succeed=True, exercise=_exercise
                ),
                check_blob_rejected(
                    unpickle, data, meter, what, may_succeed=True, exercise=_exercise
                ),
            ):
                counts["loaded" if ok else "rejected"] += 1
    total = sum(counts.values())
    report(
        request.config,
        f"fuzz {name} (resealed payload arrays): {total} cases, {counts['rejected']} ValueError, "
        f"{counts['loaded']} loaded and exercised, 0 crashes; {meter.summary()}",
    )
    assert counts["rejected"] > 0


# The fuzzing harness of tests/test_fuzz_persist.py over the real index classes: each test file
# keeps its own readable loop (duplicates pairs them).
@pytest.mark.parametrize("target", ["file", "pickle"])
def test_fuzzed_index_loaders(valid_index, tmp_path, request, target):
    """Hypothesis: truncation, flips at every header field, wrong magic / version, absurd
    sizes, resealed header rewrites, random bytes."""
    name, index, valid = valid_index
    cls = CLASSES[name]
    unpickle = unpickler_for(index)
    path = str(tmp_path / "fuzzed.idx")
    counts = {"rejected": 0, "loaded": 0}
    with AllocationMeter() as meter:

        @FUZZ_SETTINGS
        @given(corruptions(valid))
        def run(case):
            what, data, may_succeed = case
            if target == "file":
                ok = check_file_rejected(
                    cls.load, data, path, meter, what, may_succeed=may_succeed, exercise=_exercise
                )
            else:
                ok = check_blob_rejected(
                    unpickle, data, meter, what, may_succeed=may_succeed, exercise=_exercise
                )
            counts["loaded" if ok else "rejected"] += 1

        run()
    report(
        request.config,
        f"fuzz {name} ({target}, hypothesis): {sum(counts.values())} cases, "
        f"{counts['rejected']} ValueError, {counts['loaded']} loaded and exercised, "
        f"0 crashes; {meter.summary()}",
    )


# --------------------------------------------------------------------------------------------
# Concurrency


STRESS_SECONDS = 3.0


def test_hnsw_concurrent_add_remove_query(request):
    """4 threads query while 2 add and remove on one HNSWIndex; afterwards the live ids are
    exactly the expected ones, each found by its own vector, and no removed id is returned."""
    dim = 12
    rng = np.random.default_rng(21)
    index = pysim.HNSWIndex(dim, "sqeuclidean", M=8, ef_construction=40, seed=1)
    vectors: dict[int, np.ndarray] = {}
    base = rng.standard_normal((500, dim)).astype(np.float32)
    index.add(base, np.arange(500), threads=1)
    vectors.update({i: base[i] for i in range(500)})
    live = [set(range(0, 500, 2)), set(range(1, 500, 2))]  # each writer owns half the ids
    removed: set[int] = set()
    stop = threading.Event()
    errors: list[BaseException] = []
    query_count = [0] * 4
    bad_results = [0]
    short_results = [0]  # queries answered with fewer than k ids while writers were busy

    def writer(w: int) -> None:
        wrng = np.random.default_rng(100 + w)
        next_id = 1_000_000 * (w + 1)
        try:
            while not stop.is_set():
                n = int(wrng.integers(1, 20))
                X = wrng.standard_normal((n, dim)).astype(np.float32)
                ids = np.arange(next_id, next_id + n)
                next_id += n
                for i, x in zip(ids.tolist(), X, strict=True):
                    vectors[i] = x
                index.add(X, ids, threads=int(wrng.integers(1, 3)))
                live[w].update(ids.tolist())
                mine = sorted(live[w])
                gone = wrng.choice(
                    mine, size=min(len(mine) - 1, int(wrng.integers(1, 15))), replace=False
                ).tolist()
                index.remove(gone)
                live[w].difference_update(gone)
                removed.update(gone)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def reader(r: int) -> None:
        rrng = np.random.default_rng(200 + r)
        try:
            while not stop.is_set():
                Q = rrng.standard_normal((int(rrng.integers(1, 16)), dim)).astype(np.float32)
                d, i = index.query(
                    Q, k=10, ef=int(rrng.integers(10, 80)), threads=int(rrng.integers(1, 3))
                )
                # Ids must be ones that were ever added (or -1 padding), distances sorted.
                ok = (i == -1) | ((i >= 0) & (i < 500)) | ((i >= 1_000_000) & (i < 3_000_000))
                ordered = (d[:, 1:] >= d[:, :-1]).all()
                padded = (i == -1) == np.isinf(d)
                if not ok.all() or not ordered or not padded.all():
                    bad_results[0] += 1
                short_results[0] += int((i == -1).any(axis=1).sum())
                query_count[r] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(4)]
    for t in threads:
        t.start()
    time.sleep(STRESS_SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a stress thread hung"
    assert not errors, errors
    assert bad_results[0] == 0

    expected = live[0] | live[1]
    got = set(index.ids.tolist())
    lost = expected - got
    resurrected = got & removed
    unexpected = got - expected
    assert len(index) == len(got)

    # Each live id by its own vector: stored vector exact, and found by the graph search.
    ids = np.array(sorted(expected), dtype=np.int64)
    V = np.stack([vectors[i] for i in ids.tolist()])
    if len(ids):
        np.testing.assert_array_equal(
            index.get_items(ids[np.isin(ids, list(got))]), V[np.isin(ids, list(got))]
        )
    # Exact (ef >= len: a scan by contract): every live id is its own vector's top-10.
    _, found = index.query(V, k=10, ef=len(index) + 1, threads=2)
    not_found = int((~(found == ids[:, None]).any(axis=1)).sum())
    # Graph search: a rate (an uninterrupted build also leaves a rare node unreachable).
    _, found1 = index.query(V, k=10, ef=400, threads=2)
    self_hit = float((found1 == ids[:, None]).any(axis=1).mean()) if len(ids) else 1.0
    # No removed id in any result, for random queries and for every removed vector.
    R = np.stack([vectors[i] for i in sorted(removed)]) if removed else V[:0]
    _, ri = index.query(
        np.concatenate([R, rng.standard_normal((200, dim)).astype(np.float32)]), k=20, ef=200
    )
    removed_returned = int(np.isin(ri, list(removed)).sum())
    report(
        request.config,
        f"concurrency hnsw ({STRESS_SECONDS:g} s, 4 readers / 2 writers): "
        f"{sum(query_count)} query calls ({short_results[0]} rows short of k), "
        f"{len(removed)} removed, {len(ids)} live; lost {len(lost)}, "
        f"resurrected {len(resurrected)}, unexpected {len(unexpected)}, "
        f"not in own top-10 {not_found}, removed ids returned {removed_returned}, "
        f"own vector in graph top-10 (ef=400) {self_hit * 100:.2f}%",
    )
    assert not lost and not resurrected and not unexpected
    assert not_found == 0
    assert removed_returned == 0
    assert self_hit >= 0.99
    # The index stays usable.
    before = len(index)
    index.add(V[:5] + 1.0, threads=2)
    assert len(index) == before + 5
    assert index.query(V[:5] + 1.0, k=10, ef=400)[0][:, 0].max() == 0.0


@pytest.mark.parametrize("kind", ["brute", "kdtree"])
def test_exact_indexes_concurrent_read_only(kind, request):
    rng = np.random.default_rng(31)
    X = rng.standard_normal((3000, 8))
    index = (
        pysim.BruteForceIndex(X.astype(np.float32), "euclidean")
        if kind == "brute"
        else pysim.KDTreeIndex(X, "euclidean")
    )
    Q = [rng.standard_normal((int(rng.integers(1, 60)), 8)).astype(index.dtype) for _ in range(24)]
    serial = [index.query(q, k=7, threads=1) for q in Q]
    mismatches = [0]
    calls = [0]
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            for rep in range(6):
                for j in range(t, len(Q) + t):
                    j %= len(Q)
                    d, i = index.query(Q[j], k=7, threads=1 + (rep + j) % 2)
                    calls[0] += 1
                    if not (np.array_equal(d, serial[j][0]) and np.array_equal(i, serial[j][1])):
                        mismatches[0] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    report(
        request.config,
        f"concurrency {kind} read-only (4 threads): {calls[0]} queries, "
        f"{mismatches[0]} differ from serial",
    )
    assert mismatches[0] == 0


# --------------------------------------------------------------------------------------------
# Ctrl-C


def _check_consistent_after_interrupt(index, X, ids) -> int:
    """Each row of the interrupted batch is fully in (exact vector, found by itself) or absent,
    and len() counts exactly the present ones."""
    present = index.ids
    assert len(index) == len(present)
    in_batch = np.isin(ids, present)
    got = ids[in_batch]
    if len(got):
        np.testing.assert_array_equal(index.get_items(got), X[in_batch])
        # Exact search (ef >= len: a scan by contract) finds every present id by its vector.
        _, found = index.query(X[in_batch], k=1, ef=len(index) + 1, threads=2)
        np.testing.assert_array_equal(found[:, 0], got)
        # The graph search finds nearly all of them: a few nodes of an uninterrupted build are
        # unreachable too (the neighbour heuristic can leave a node with no in-links), so this
        # is a rate, not 100%.
        _, found = index.query(X[in_batch], k=10, ef=200, threads=2)
        hit = (found == got[:, None]).any(axis=1).mean()
        assert hit >= 0.99, f"only {hit:.2%} of present ids found by their own vector"
    assert all(
        (i in index) == bool(f) for i, f in zip(ids[:50].tolist(), in_batch[:50], strict=True)
    )
    return int(in_batch.sum())


@needs_sigint
@pytest.mark.parametrize("threads", [1, 2])
def test_sigint_hnsw_add(request, threads):
    rng = np.random.default_rng(41)
    dim = 32
    index = pysim.HNSWIndex(dim, "sqeuclidean", M=12, ef_construction=200, seed=3)
    first = rng.standard_normal((200, dim)).astype(np.float32)
    index.add(first, np.arange(200), threads=threads)
    X = rng.standard_normal((100_000, dim)).astype(np.float32)
    ids = np.arange(1000, 1000 + len(X))
    latency = measure_interrupts(lambda: index.add(X, ids, threads=threads), delay=0.3)
    inserted = _check_consistent_after_interrupt(index, X, ids)
    assert inserted < len(X)
    assert len(index) == 200 + inserted
    # Still usable: a later add and query work, and the earlier points are intact.
    extra = rng.standard_normal((50, dim)).astype(np.float32)
    index.add(extra, np.arange(500, 550), threads=threads)
    np.testing.assert_array_equal(index.get_items(np.arange(200)), first)
    _, found = index.query(extra, k=10, ef=200)
    assert (found == np.arange(500, 550)[:, None]).any(axis=1).all()
    report(
        request.config,
        f"interrupt hnsw add threads={threads}: {latency * 1e3:.1f} ms "
        f"({inserted} of {len(X)} rows in, all consistent)",
    )
    assert latency < LATENCY_BOUND


@pytest.fixture(scope="module")
def hnsw_for_queries():
    rng = np.random.default_rng(43)
    X = rng.standard_normal((5000, 32)).astype(np.float32)
    index = pysim.HNSWIndex(32, "sqeuclidean", M=8, ef_construction=40, seed=5)
    index.add(X, threads=2)
    return index, X


@needs_sigint
@pytest.mark.parametrize("threads", [1, 2])
def test_sigint_hnsw_query(request, hnsw_for_queries, threads):
    index, X = hnsw_for_queries
    before = index.query(X[:100], k=5, ef=200, threads=threads)
    Q = np.random.default_rng(44).standard_normal((1_000_000, 32)).astype(np.float32)
    latency = measure_interrupts(lambda: index.query(Q, k=10, ef=400, threads=threads), 0.3)
    report(request.config, f"interrupt hnsw query threads={threads}: {latency * 1e3:.1f} ms")
    assert latency < LATENCY_BOUND
    # Still usable, with the same answers as before the interrupt (a query changes nothing).
    after = index.query(X[:100], k=5, ef=200, threads=threads)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[0], before[0])


@needs_sigint
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["brute", "kdtree"])
def test_sigint_exact_query(request, kind, threads):
    rng = np.random.default_rng(45)
    if kind == "brute":
        X = rng.standard_normal((100_000, 64)).astype(np.float32)
        index = pysim.BruteForceIndex(X, "sqeuclidean")
        Q = rng.standard_normal((50_000, 64)).astype(np.float32)
    else:
        X = rng.standard_normal((100_000, 16))
        index = pysim.KDTreeIndex(X, "euclidean")
        Q = rng.standard_normal((400_000, 16))
    latency = measure_interrupts(lambda: index.query(Q, k=10, threads=threads), delay=0.3)
    report(request.config, f"interrupt {kind} query threads={threads}: {latency * 1e3:.1f} ms")
    assert latency < LATENCY_BOUND
    # Still exact afterwards.
    q = Q[:5]
    d, i = index.query(q, k=3, threads=threads)
    ref = ((q[:, None, :].astype(np.float64) - X[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(i, np.argsort(ref, axis=1, kind="stable")[:, :3])


@needs_sigint
@pytest.mark.parametrize("learner", ["NCA", "LMNN"])
def test_sigint_metric_learning_fit(request, learner):
    rng = np.random.default_rng(47)
    X = rng.standard_normal((3000, 40))
    y = rng.integers(0, 10, len(X))
    model = (
        pysim.NCA(max_iter=100_000, tol=0.0) if learner == "NCA" else pysim.LMNN(max_iter=100_000)
    )
    latency = measure_interrupts(lambda: model.fit(X, y), delay=0.3)
    report(request.config, f"interrupt {learner} fit: {latency * 1e3:.1f} ms")
    assert latency < LATENCY_BOUND


# --------------------------------------------------------------------------------------------
# Memory over many cycles

RSS_SETUP = """
import numpy as np, pysim
rng = np.random.default_rng(0)
index = pysim.HNSWIndex(16, "sqeuclidean", M=8, ef_construction=40, seed=1)
index.add(rng.standard_normal((2000, 16)).astype(np.float32), threads=1)
pool = rng.standard_normal((64, 16)).astype(np.float32)
state = {"next": 10_000, "i": 0}

def cycle():
    i = state["i"]; state["i"] += 1
    new = state["next"]; state["next"] += 1
    x = pool[i % 64]
    index.add(x, [new], threads=1)
    index.query(x, k=10, ef=40, threads=1)
    index.remove(new)

calls = [cycle]
"""


def test_hnsw_rss_flat_over_add_query_remove_cycles(request, tmp_path):
    growth = rss_growth_in_child(RSS_SETUP, 10_000, warm_up=1000, cwd=tmp_path)
    report(request.config, f"rss hnsw add/query/remove cycles: {growth.describe()}")
    assert growth.growth < 0.05
