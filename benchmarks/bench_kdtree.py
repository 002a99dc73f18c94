"""KD-tree: pysim.KDTreeIndex against scipy cKDTree, scikit-learn KDTree and pykdtree.

What is measured: build time, k=10 query throughput and the peak memory of
a build, at threads 1 and 2, on (1,000,000 x 3) uniform, (1,000,000 x 8) clustered and
(200,000 x 16) clustered float32 data with 100,000 queries drawn from the same distribution
(the last rows of one generated matrix, so queries and data share cluster centres).
``run.py --full`` (PYSIM_BENCH_FULL=1) runs those sizes; the default run divides n and the
query count by 5 so the whole suite stays short. ``run.py --dataset PATH`` runs on the
user's data instead (Euclidean, d <= 32; otherwise skipped with the reason).

How it stays honest:
- Every contender gets the same float32 arrays. pysim, pykdtree and scikit-learn keep float32
  (scikit-learn converts to float64 inside, as it always does); cKDTree copies to float64.
- Same thread count for all: ``threads=`` for pysim, ``workers=`` for cKDTree, ``n_jobs`` for
  scikit-learn's NearestNeighbors(algorithm="kd_tree") (its KDTree has no threads of its
  own), threadpoolctl for pykdtree's OpenMP pool. Builds of cKDTree, scikit-learn and
  pykdtree are single-threaded by design and are recorded at the thread count asked for.
- Every query result is checked before its time counts: on the first CHECK_ROWS queries the
  distances must equal the float64 brute-force k-th distances (relative 1e-5), and the
  share of exactly matching neighbour ids is stored as ``recall``.
- A contender whose full query call would take more than SLOW_CALL seconds in the default run
  is timed on fewer queries (``queries_timed``); rates are per query, so this is fair.
  Rounds follow the suite's budget (``adaptive_rounds``; with ``--full`` all ``--repeats``
  rounds, one for calls over 30 s); the median is reported.
- Peak build memory is measured in a fresh subprocess that loads the data from a file: VmHWM
  after the build minus VmRSS before it (the peak counter is reset through
  /proc/self/clear_refs once the data is loaded; glibc's mmap threshold is fixed so that
  large blocks are fresh pages), stored with its ratio to the data's size.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _common import (
    adaptive_rounds,
    child_json,
    clustered,
    full,
    limit_threads,
    peer,
    record,
    rounds,
    threads,
    uniform,
)
from _common import dataset as shared_dataset

import pysim

K = 10
CHECK_ROWS = 200
SLOW_CALL = 1.5  # seconds (default run only)
THREADS = threads((1, 2))
CONTENDERS = ["pysim", "scipy", "sklearn", "pykdtree"]
MAX_USER_DIM = 32  # a user dataset beyond this is no KD-tree workload (brute force wins)

# name -> (generator, n, d); queries are extra rows of the same generated matrix.
DATASETS = {
    "uniform-1Mx3": ("uniform", 1_000_000, 3),
    "clustered-1Mx8": ("clustered", 1_000_000, 8),
    "clustered-200kx16": ("clustered", 200_000, 16),
}
N_QUERIES = 100_000


def names() -> list[str]:
    """The issue's datasets, or ``user`` for ``run.py --dataset PATH``."""
    return ["user"] if os.environ.get("PYSIM_BENCH_DATASET") else list(DATASETS)


def sizes(name: str) -> tuple[str, int, int, int]:
    """(generator, n, d, n_queries): the issue's sizes with --full, a tenth of them otherwise."""
    gen, n, d = DATASETS[name]
    if full():
        return gen, n, d, N_QUERIES
    return gen, n // 10, d, N_QUERIES // 10


def make(gen: str, n: int, d: int, nq: int) -> tuple[np.ndarray, np.ndarray]:
    X = (uniform if gen == "uniform" else clustered)(n + nq, d, seed=0)
    return np.ascontiguousarray(X[:n]), np.ascontiguousarray(X[n:])


def base_and_queries(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name != "user":
        return make(*sizes(name))
    data = shared_dataset("user")
    if data["metric"] not in ("euclidean", "sqeuclidean"):
        pytest.skip(f"KD-trees search Euclidean distances; this dataset is {data['metric']}")
    if data["base"].shape[1] > MAX_USER_DIM:
        pytest.skip(f"d = {data['base'].shape[1]} > {MAX_USER_DIM}: not a KD-tree workload")
    return np.ascontiguousarray(data["base"]), np.ascontiguousarray(data["queries"])


@functools.lru_cache(maxsize=1)
def dataset(name: str):
    """Base, queries and the float64 exact k-NN distances of the first CHECK_ROWS queries."""
    X, Q = base_and_queries(name)
    rows = min(CHECK_ROWS, len(Q))
    B = X.astype(np.float64)
    bn = (B**2).sum(1)
    want = np.empty((rows, K))
    want_ids = np.empty((rows, K), np.int64)
    for s in range(0, rows, 10):
        q = Q[s : s + 10].astype(np.float64)
        D = np.maximum(bn[None, :] - 2 * q @ B.T + (q**2).sum(1)[:, None], 0)
        part = np.argpartition(D, K - 1, axis=1)[:, :K]
        # Exact distances of the candidates (the expansion above cancels).
        exact = ((B[part] - q[:, None, :]) ** 2).sum(-1)
        order = np.lexsort((part, exact), axis=1)
        want[s : s + 10] = np.sqrt(np.take_along_axis(exact, order, 1))
        want_ids[s : s + 10] = np.take_along_axis(part, order, 1)
    return X, Q, want, want_ids


# ------------------------------------------------------------------------- contenders


def builder(contender: str, t: int):
    """A zero-argument function building this contender's tree over X (same call each time)."""
    if contender == "pysim":
        return lambda X: pysim.KDTreeIndex(X, threads=t)  # default leaf_size
    if contender == "scipy":
        spatial = peer("scipy.spatial")
        return lambda X: spatial.cKDTree(X)
    if contender == "sklearn":
        neighbors = peer("sklearn.neighbors")
        return lambda X: neighbors.NearestNeighbors(
            n_neighbors=K, algorithm="kd_tree", n_jobs=t
        ).fit(X)
    if contender == "pykdtree":
        kdtree = peer("pykdtree.kdtree")
        return lambda X: kdtree.KDTree(X)
    raise ValueError(contender)


def searcher(contender: str, tree, t: int):
    """A function Q -> (distances, ids) for this contender's tree at t threads."""
    if contender == "pysim":
        return lambda Q: tree.query(Q, k=K, threads=t)
    if contender == "scipy":
        return lambda Q: tree.query(Q, k=K, workers=t)
    if contender == "sklearn":
        return lambda Q: tree.kneighbors(Q, return_distance=True)
    if contender == "pykdtree":
        return lambda Q: tree.query(Q, k=K)
    raise ValueError(contender)


def check(contender: str, out, want: np.ndarray, want_ids: np.ndarray) -> float:
    """Fail unless the k-NN distances of the checked rows are exact; return id agreement."""
    dist, ids = (np.asarray(a) for a in out)
    rows = len(want)
    dist = dist[:rows].astype(np.float64)
    if not np.allclose(dist, want, rtol=1e-5, atol=1e-6 * max(1.0, float(want.max()))):
        pytest.fail(f"{contender}: k-NN distances differ from the float64 reference")
    return float((ids[:rows] == want_ids).mean())


# ------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("name", names())
def test_build(benchmark, name, contender, threads):
    X, _, _, _ = dataset(name)
    build = builder(contender, threads)
    with limit_threads(threads):
        start = time.perf_counter()
        build(X)  # warm-up, and the estimate for the number of rounds
        n_rounds = adaptive_rounds(time.perf_counter() - start)
        benchmark.pedantic(build, args=(X,), rounds=n_rounds, iterations=1)
    record(
        benchmark,
        contender=contender,
        case=name,
        phase="build",
        threads=threads,
        n=len(X),
        dim=X.shape[1],
        build_threaded=contender == "pysim",
    )


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("name", names())
def test_query(benchmark, name, contender, threads):
    X, Q, want, want_ids = dataset(name)
    with limit_threads(threads):
        tree = builder(contender, threads)(X)
        search = searcher(contender, tree, threads)
        start = time.perf_counter()
        recall = check(contender, search(Q[: len(want)]), want, want_ids)
        per_query = (time.perf_counter() - start) / len(want)
        Qt = Q
        if not full() and per_query * len(Q) > SLOW_CALL:
            Qt = Q[: max(len(want), int(SLOW_CALL / per_query))]
        start = time.perf_counter()
        search(Qt)  # warm-up at full size
        n_rounds = adaptive_rounds(time.perf_counter() - start, budget=4.0)
        if full():  # slow peers (minutes per call) get one round, as adaptive_rounds allows
            n_rounds = rounds() if per_query * len(Q) < 30 else 1
        benchmark.pedantic(search, args=(Qt,), rounds=n_rounds, iterations=1)
    record(
        benchmark,
        contender=contender,
        case=name,
        phase="query",
        threads=threads,
        k=K,
        n=len(X),
        dim=X.shape[1],
        queries_timed=len(Qt),
        recall=recall,
        qps=len(Qt) / benchmark.stats.stats.median,
    )


_MEMORY_PROBE = r"""
import json, sys
sys.path.insert(0, {bench_dir!r})
import numpy as np
import bench_kdtree as b

def status():
    out = {{}}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out

X = np.load({path!r})
build = b.builder({contender!r}, {threads})
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status()["VmRSS"]
tree = build(X)
print(json.dumps({{"peak": status()["VmHWM"] - before, "data": X.nbytes}}))
"""


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("name", names())
def test_build_memory(benchmark, tmp_path, name, contender):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("peak-memory probe needs Linux /proc/self/clear_refs")
    builder(contender, 1)  # skips here when the peer is missing
    path = tmp_path / "data.npy"
    np.save(path, dataset(name)[0])
    code = _MEMORY_PROBE.format(
        bench_dir=str(Path(__file__).parent),
        path=str(path),
        contender=contender,
        threads=max(THREADS),
    )
    # The child reads the data with one allocation, and glibc's fixed mmap threshold makes
    # every large block fresh pages (freed memory reused from the heap would hide in VmRSS).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = {}

    def probe():
        result.update(child_json([sys.executable, "-P", "-c", code], env))

    benchmark.pedantic(probe, rounds=1, iterations=1)
    record(
        benchmark,
        contender=contender,
        case=name,
        phase="build_memory",
        threads=max(THREADS),
        peak_mb=result["peak"] / 1e6,
        data_mb=result["data"] / 1e6,
        peak_ratio=result["peak"] / result["data"],
    )
