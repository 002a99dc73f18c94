"""HNSW benchmarks: pysim.HNSWIndex against hnswlib, faiss IndexHNSWFlat and usearch.

Every contender builds with M = 16 and ef_construction = 200 on the same float32 data:
  * recall/QPS sweep: batch search of all queries on 1 thread, ef from 10 to 256, k = 10,
    recall@10 against the dataset's exact ground truth;
  * build time on 1 and 2 threads;
  * index memory: resident-memory growth while building, each contender in a fresh process
    (plus the library's own count where it has one);
  * a filtered query admitting 1% of the points: pysim's id-array filter (and its callable
    fallback) against hnswlib's Python-callback filter, recall against exact search over the
    allowed points.
Datasets: the MNIST split (euclidean), MiniLM (cosine) and clustered (100,000 x 128) synthetic
data (10,000 x 128 unless ``run.py --full`` / PYSIM_BENCH_FULL=1).

At the end of a session the sweep is summarised (QPS at recall 0.95 and 0.99, interpolated
on the recall/QPS curve) and plotted to benchmarks/results/hnsw_recall_qps.png.

Run: ``pytest benchmarks/bench_hnsw.py --benchmark-only -s`` (``-k mnist`` etc. to narrow);
``python benchmarks/bench_hnsw.py --summary results.json`` redraws table and plot from a saved
``--benchmark-json`` file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _common import (
    child_json,
    clustered,
    exact_knn,
    full,
    limit_threads,
    load_minilm,
    load_mnist,
    peer,
    recall_at_k,
    record,
    rounds,
)

M, EF_CONSTRUCTION, K = 16, 200, 10
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]
CONTENDERS = ["pysim", "hnswlib", "faiss", "usearch"]
# The default run stays on embedded data; the shared real sets join with --full.
DATASETS = ["mnist", "minilm", "clustered"] if full() else ["clustered"]
RESULTS = Path(__file__).resolve().parent / "results"

_data_cache: dict[str, dict] = {}
_index_cache: dict[tuple[str, str], object] = {}
_sweep: list[dict] = []


# ---------------------------------------------------------------------------- data


# Each part sizes and caches its own workload (this one 10k/100k clustered rows); the shared
# loaders are _common's (duplicates pairs the cache idiom with bench_quant_kernels').
def dataset(name: str, *, with_truth: bool = True) -> dict:
    if name not in _data_cache:
        if name == "mnist":
            d = load_mnist()
        elif name == "minilm":
            d = load_minilm()
        else:
            n = 100_000 if full() else 10_000
            X = clustered(n + 1000, 128, seed=0)
            d = {"base": X[:n], "queries": X[n:], "metric": "euclidean"}
            if with_truth:
                d["gt"] = exact_knn(d["base"], d["queries"], 100, "euclidean")
        _data_cache[name] = d
    return _data_cache[name]


# ---------------------------------------------------------------------------- contenders


class Pysim:
    name = "pysim"

    def build(self, X, metric, threads):
        import pysim

        index = pysim.HNSWIndex(
            X.shape[1], metric, M=M, ef_construction=EF_CONSTRUCTION, max_elements=len(X)
        )
        index.add(X, threads=threads)
        return index

    def search(self, index, Q, k, ef):
        return index.query(Q, k, ef=ef, threads=1)[1]

    def memory(self, index):
        return index.memory_bytes()


class Hnswlib:
    name = "hnswlib"

    def build(self, X, metric, threads):
        hnswlib = peer("hnswlib")
        index = hnswlib.Index("cosine" if metric == "cosine" else "l2", X.shape[1])
        index.init_index(len(X), M=M, ef_construction=EF_CONSTRUCTION, random_seed=0)
        index.add_items(X, num_threads=threads)
        return index

    def search(self, index, Q, k, ef):
        index.set_ef(max(ef, k))
        return index.knn_query(Q, k, num_threads=1)[0].astype(np.int64)

    def memory(self, index):
        return None


class Faiss:
    name = "faiss"

    def build(self, X, metric, threads):
        faiss = peer("faiss")
        if metric == "cosine":
            X = X / np.linalg.norm(X, axis=1, keepdims=True)
            index = faiss.IndexHNSWFlat(X.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexHNSWFlat(X.shape[1], M)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        with limit_threads(threads):
            index.add(np.ascontiguousarray(X, np.float32))
        return index, metric == "cosine"

    def search(self, built_index, Q, k, ef):
        index, cosine = built_index
        if cosine:
            Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
        index.hnsw.efSearch = max(ef, k)
        with limit_threads(1):
            return index.search(Q, k)[1]

    def memory(self, index):
        return None


class Usearch:
    name = "usearch"

    def build(self, X, metric, threads):
        index_cls = peer("usearch.index").Index
        index = index_cls(
            ndim=X.shape[1],
            metric="cos" if metric == "cosine" else "l2sq",
            dtype="f32",
            connectivity=M,
            expansion_add=EF_CONSTRUCTION,
        )
        index.add(np.arange(len(X)), X, threads=threads)
        return index

    def search(self, index, Q, k, ef):
        index.expansion_search = max(ef, k)
        return np.asarray(index.search(Q, k, threads=1).keys, np.int64)

    def memory(self, index):
        return int(index.memory_usage)


ADAPTERS = {c.name: c() for c in (Pysim, Hnswlib, Faiss, Usearch)}


def built(contender: str, name: str):
    key = (contender, name)
    if key not in _index_cache:
        d = dataset(name)
        _index_cache[key] = ADAPTERS[contender].build(d["base"], d["metric"], os.cpu_count() or 1)
    return _index_cache[key]


def median_seconds(benchmark) -> float:
    return float(benchmark.stats.stats.median)


# ---------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("ef", EFS)
@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("name", DATASETS)
def test_search_sweep(benchmark, name, contender, ef):
    d = dataset(name)
    adapter = ADAPTERS[contender]
    index = built(contender, name)
    Q = d["queries"]
    found = adapter.search(index, Q, K, ef)
    rec = recall_at_k(found, d["gt"], K)
    cpu = []

    def run():
        # CPU time next to wall time: on a shared machine the wall clock also counts the time
        # other processes held the core; the search is single-threaded, so process CPU time
        # is its cost.
        t = time.process_time()
        adapter.search(index, Q, K, ef)
        cpu.append(time.process_time() - t)

    benchmark.pedantic(run, rounds=rounds(), iterations=1)
    qps = len(Q) / median_seconds(benchmark)
    qps_cpu = len(Q) / max(float(np.median(cpu)), 1e-9)
    record(
        benchmark,
        contender=contender,
        dataset=name,
        case=f"search-{name}",
        ef=ef,
        recall=rec,
        qps=qps,
        qps_cpu=qps_cpu,
        threads=1,
        k=K,
    )
    _sweep.append(
        {
            "contender": contender,
            "dataset": name,
            "ef": ef,
            "recall": rec,
            "qps": qps,
            "qps_cpu": qps_cpu,
        }
    )


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("name", DATASETS)
def test_build(benchmark, name, contender, threads):
    d = dataset(name)
    adapter = ADAPTERS[contender]
    result = {}

    cpu = []

    def run():
        t = time.process_time()  # all threads of the process: the build's total CPU cost
        result["index"] = adapter.build(d["base"], d["metric"], threads)
        cpu.append(time.process_time() - t)

    benchmark.pedantic(run, rounds=max(1, min(rounds(), 3)), iterations=1)
    found = adapter.search(result["index"], d["queries"], K, 64)
    record(
        benchmark,
        contender=contender,
        dataset=name,
        case=f"build-{name}",
        threads=threads,
        build_s=median_seconds(benchmark),
        build_cpu_s=float(np.median(cpu)),
        recall=recall_at_k(found, d["gt"], K),
        ef=64,
    )


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("name", [d for d in ("mnist", "clustered") if d in DATASETS])
def test_memory(benchmark, name, contender):
    peer({"pysim": "pysim", "faiss": "faiss", "usearch": "usearch"}.get(contender, contender))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    )
    out = {}

    def run():
        out.update(child_json([sys.executable, __file__, "--memory", contender, name], env))

    benchmark.pedantic(run, rounds=1, iterations=1)
    record(
        benchmark,
        contender=contender,
        dataset=name,
        case=f"memory-{name}",
        memory_bytes=out["rss_bytes"],
        reported_bytes=out["reported_bytes"],
        build_s=out["build_s"],
        threads=out["threads"],
    )


def _memory_child(contender: str, name: str) -> None:
    """Runs in a fresh process: resident-memory growth of one build."""

    import ctypes
    import gc

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except OSError:
        trim = None

    def rss() -> int:
        # Freed temporaries (input checks, the libraries' own scratch) must not count:
        # hand free heap pages back to the OS before reading the resident size.
        gc.collect()
        if trim is not None:
            trim(0)
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    d = dataset(name, with_truth=False)
    adapter = ADAPTERS[contender]
    adapter.build(d["base"][:10], d["metric"], 1)  # import and warm up the library
    before = rss()
    t = time.perf_counter()
    index = adapter.build(d["base"], d["metric"], 2)
    build_s = time.perf_counter() - t
    grown = rss() - before
    print(
        json.dumps(
            {
                "rss_bytes": grown,
                "reported_bytes": adapter.memory(index),
                "build_s": build_s,
                "threads": 2,
            }
        )
    )


@pytest.mark.parametrize("variant", ["pysim-array", "pysim-callable", "hnswlib-callback"])
@pytest.mark.parametrize("name", [d for d in ("mnist", "clustered") if d in DATASETS])
def test_filtered_one_percent(benchmark, name, variant):
    d = dataset(name)
    n = len(d["base"])
    allowed = np.sort(np.random.default_rng(1).choice(n, max(1, n // 100), replace=False))
    allowed_set = set(allowed.tolist())
    Q = d["queries"][:200]
    truth = allowed[exact_knn(d["base"][allowed], Q, K, d["metric"])]
    if variant == "hnswlib-callback":
        index = built("hnswlib", name)
        index.set_ef(64)

        def run():
            return index.knn_query(Q, K, num_threads=1, filter=lambda i: i in allowed_set)[0]
    else:
        index = built("pysim", name)
        filt = allowed if variant == "pysim-array" else (lambda i: i in allowed_set)

        def run():
            return index.query(Q, K, threads=1, filter=filt)[1]

    found = run()
    benchmark.pedantic(run, rounds=max(1, min(rounds(), 3)), iterations=1)
    record(
        benchmark,
        contender=variant.split("-")[0],
        variant=variant,
        dataset=name,
        case=f"filter1pct-{name}",
        recall=recall_at_k(found, truth, K),
        qps=len(Q) / median_seconds(benchmark),
        threads=1,
        ef=64,
    )


# ---------------------------------------------------------------------------- summary


def qps_at(points: list[tuple[float, float]], target: float) -> float | None:
    """QPS where the recall/QPS curve crosses `target` (linear in recall between the two
    sweep points that bracket it); None when the target was never reached."""
    points = sorted(points)
    for (r0, q0), (r1, q1) in zip(points, points[1:], strict=False):
        if r0 <= target <= r1:
            return q0 if r1 == r0 else q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    if points and points[0][0] >= target:
        return max(q for r, q in points if r >= target)
    return None


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    if _sweep:
        write_summary(_sweep)


def write_summary(sweep: list[dict]) -> None:
    """Table (hnsw_summary.md) and plot (hnsw_recall_qps.png) of a recall/QPS sweep."""
    RESULTS.mkdir(exist_ok=True)
    lines = [
        "| dataset | contender | QPS @ 0.95 | QPS @ 0.99 | CPU QPS @ 0.95 | CPU QPS @ 0.99 "
        "| max recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in DATASETS:
        for contender in CONTENDERS:
            runs = [s for s in sweep if s["dataset"] == name and s["contender"] == contender]
            if not runs:
                continue
            cells = [
                qps_at([(s["recall"], s[key]) for s in runs], t)
                for key in ("qps", "qps_cpu")
                for t in (0.95, 0.99)
            ]
            fmt = " | ".join(f"{c:,.0f}" if c else "-" for c in cells)
            best = max(s["recall"] for s in runs)
            lines.append(f"| {name} | {contender} | {fmt} | {best:.4f} |")
    text = "\n".join(lines)
    (RESULTS / "hnsw_summary.md").write_text(text + "\n")
    print("\n" + text)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = [n for n in DATASETS if any(s["dataset"] == n for s in sweep)]
    fig, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 8), squeeze=False)
    for row, (key, unit) in enumerate(
        [("qps", "queries / s (wall)"), ("qps_cpu", "queries / CPU-s")]
    ):
        for ax, name in zip(axes[row], names, strict=True):
            for contender in CONTENDERS:
                pts = sorted(
                    (s["recall"], s[key])
                    for s in sweep
                    if s["dataset"] == name and s["contender"] == contender
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=contender)
            ax.set(title=f"{name} (k={K}, 1 thread)", xlabel="recall@10", ylabel=unit, yscale="log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "hnsw_recall_qps.png", dpi=120)
    plt.close(fig)


def _sweep_from_json(path: str) -> list[dict]:
    keys = ("contender", "dataset", "ef", "recall", "qps", "qps_cpu")
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    return [
        {k: r["extra_info"][k] for k in keys}
        for r in runs
        if str(r["extra_info"].get("case", "")).startswith("search-")
    ]


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--memory":
    _memory_child(sys.argv[2], sys.argv[3])
elif __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--summary":
    # Rebuild the table and plot from a saved pytest-benchmark JSON file.
    write_summary(_sweep_from_json(sys.argv[2]))
