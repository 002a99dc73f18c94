"""Exact k-NN by brute force: pysim.BruteForceIndex against faiss IndexFlatL2, scikit-learn
NearestNeighbors(algorithm="brute") and numpy (BLAS matmul + argpartition).

Cases (k = 10, threads = 1 and 2, float32 everywhere, squared-L2 / L2 neighbours):
  mnist      MNIST test split: first 9,000 images as base, last 1,000 as queries (d = 784)
  c100k      (100,000 x 128) clustered, 1,000 queries from the same distribution
  single1m   one query against (1,000,000 x 128): a memory-bound scan, compared with a
             read-bandwidth yardstick (two Python threads summing the halves of a 1 GB array)

Every contender's neighbours are checked against the exact float64 reference before its
timing counts (recall@10 is stored; pysim, being exact, must reach 1.0). Index construction
is outside the timing: only the search is measured. extra_info carries contender, case,
threads, qps (queries per second of the median round) and recall.
"""

from __future__ import annotations

import functools
import threading
import time

import numpy as np
import pytest
from _common import (
    clustered,
    exact_knn,
    full,
    limit_threads,
    load_mnist,
    peer,
    recall_at_k,
    record,
    rounds,
)

K = 10
THREADS = [1, 2]
CONTENDERS = ["pysim", "faiss", "sklearn", "numpy"]


@functools.cache
def dataset(case: str):
    if case == "mnist":
        d = load_mnist()
        return d["base"], d["queries"], d["gt"][:, :K].astype(np.int64)
    if case == "c100k":
        base = clustered(100_000, 128, seed=0)
        queries = clustered(1_000, 128, seed=1)
        return base, queries, exact_knn(base, queries, K, "euclidean")
    if case == "single1m":
        rng = np.random.default_rng(7)
        base = rng.standard_normal((1_000_000, 128), dtype=np.float32)
        queries = rng.standard_normal((1, 128), dtype=np.float32)
        return base, queries, exact_knn(base, queries, K, "euclidean")
    raise ValueError(case)


def numpy_knn(base: np.ndarray, base_sq: np.ndarray, queries: np.ndarray, k: int):
    """The textbook numpy answer: BLAS distances by the norm expansion, then argpartition."""
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 256):
        D = base_sq[None, :] - 2 * (queries[s : s + 256] @ base.T)
        part = np.argpartition(D, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(D, part, 1), axis=1, kind="stable")
        out[s : s + 256] = np.take_along_axis(part, order, 1)
    return out


def make_search(contender: str, base: np.ndarray, threads: int):
    """Build the contender's index (untimed); return a function queries -> neighbour ids."""
    if contender == "pysim":
        import pysim

        index = pysim.BruteForceIndex(base, "sqeuclidean")
        return lambda q: index.query(q, K, threads=threads)[1]
    if contender == "faiss":
        faiss = peer("faiss")
        index = faiss.IndexFlatL2(base.shape[1])
        index.add(base)
        return lambda q: index.search(q, K)[1]
    if contender == "sklearn":
        neighbors = peer("sklearn.neighbors")
        nn = neighbors.NearestNeighbors(n_neighbors=K, algorithm="brute", n_jobs=threads)
        nn.fit(base)
        return lambda q: nn.kneighbors(q, return_distance=False)
    if contender == "numpy":
        base_sq = np.einsum("ij,ij->i", base, base)
        return lambda q: numpy_knn(base, base_sq, q, K)
    raise ValueError(contender)


def run_case(benchmark, case: str, contender: str, threads: int) -> None:
    base, queries, gt = dataset(case)
    with limit_threads(threads):
        search = make_search(contender, base, threads)
        found = search(queries)  # checked before any timing counts
        recall = recall_at_k(found, gt, K)
        if contender == "pysim":
            np.testing.assert_array_equal(found, gt)  # exact, ties by the smaller index
        assert recall >= 0.99, f"{contender} recall@{K} = {recall:.4f} on {case}"
        # The checked call above already warmed the caches; --full adds a warm-up round anyway.
        benchmark.pedantic(
            search, args=(queries,), rounds=rounds(), iterations=1, warmup_rounds=int(full())
        )
    median = benchmark.stats.stats.median
    record(
        benchmark,
        contender=contender,
        case=case,
        threads=threads,
        k=K,
        n=len(base),
        dim=base.shape[1],
        n_queries=len(queries),
        recall=recall,
        qps=len(queries) / median,
    )


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("contender", CONTENDERS)
def test_mnist(benchmark, contender, threads):
    run_case(benchmark, "mnist", contender, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("contender", CONTENDERS)
def test_clustered_100k(benchmark, contender, threads):
    run_case(benchmark, "c100k", contender, threads)


# ---------------------------------------------------------------------------------------------
# one query against a million rows: a read-bandwidth-bound scan


@functools.cache
def _yardstick_array() -> np.ndarray:
    return np.ones(1 << 28, np.float32)  # 1 GiB


def read_bandwidth(repeats: int = 5) -> float:
    """Bytes per second two Python threads reach summing the halves of a 1 GiB array
    (numpy releases the GIL in reductions): the machine's practical read bandwidth."""
    arr = _yardstick_array()
    half = len(arr) // 2
    times = []
    for _ in range(repeats):
        parts = [arr[:half], arr[half:]]
        workers = [threading.Thread(target=np.sum, args=(p,)) for p in parts]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        times.append(time.perf_counter() - start)
    return arr.nbytes / float(np.median(times))


def test_read_bandwidth_yardstick(benchmark):
    arr = _yardstick_array()
    half = len(arr) // 2

    def two_thread_sum():
        workers = [threading.Thread(target=np.sum, args=(p,)) for p in (arr[:half], arr[half:])]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    benchmark.pedantic(two_thread_sum, rounds=rounds(), iterations=1, warmup_rounds=1)
    record(
        benchmark,
        contender="numpy-sum-2-threads",
        case="read_bandwidth",
        threads=2,
        gbps=arr.nbytes / benchmark.stats.stats.median / 1e9,
    )


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("contender", ["pysim", "faiss"])
def test_single_query_1m(benchmark, contender, threads):
    run_case(benchmark, "single1m", contender, threads)
    base = dataset("single1m")[0]
    gbps = base.nbytes / benchmark.stats.stats.median / 1e9
    yard = read_bandwidth() / 1e9
    record(benchmark, gbps=gbps, yardstick_gbps=yard, bandwidth_fraction=gbps / yard)
