"""Shared benchmark helpers: datasets, peers, thread control, recall, result records.

Every benchmark is a pytest-benchmark test. Besides the timing, each test stores what the
report needs in ``benchmark.extra_info`` (contender, case, threads, recall, ...), so the
suite driver (``benchmarks/run.py``) can build tables and plots from pytest-benchmark's JSON,
and ``pytest benchmarks/ --benchmark-only`` keeps working for developers.

Rules every benchmark follows: same float32 inputs for every contender; the same thread count
for everyone (threadpoolctl for BLAS/OpenMP peers); each contender's output is checked
against an exact reference before its time counts; a missing peer is skipped with a printed
reason, never an error.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def data_dir() -> Path | None:
    """Folder with the shared datasets: $PYSIM_DATA, else ../shared/data above the repo."""
    return datasets.shared_data_dir()


def require_data(name: str) -> Path:
    """Path of one shared dataset folder, or skip the benchmark with the reason."""
    root = data_dir()
    if root is None or not (root / name).is_dir():
        pytest.skip(f"dataset {name!r} not found (set PYSIM_DATA to the shared data folder)")
    return root / name


def read_idx(path: Path) -> np.ndarray:
    """An MNIST-style IDX file (optionally gzipped) as a numpy array."""
    return datasets.read_idx(path)


def load_mnist() -> dict[str, np.ndarray]:
    """MNIST test split: first 9,000 images as base, last 1,000 as queries (Euclidean)."""
    require_data("mnist")
    return datasets.load_dataset("mnist")


def load_minilm() -> dict[str, np.ndarray]:
    """20,000 MiniLM sentence embeddings + 1,000 queries (cosine) with exact top-100."""
    require_data("minilm-dev")
    return datasets.load_dataset("minilm")


def clustered(n: int, d: int, *, clusters: int = 100, seed: int = 0, spread: float = 0.15):
    """float32 points around `clusters` Gaussian centres: the usual synthetic ANN workload."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    noise = rng.standard_normal((n, d)).astype(np.float32) * spread
    return centres[labels] + noise


def uniform(n: int, d: int, *, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d), dtype=np.float32)


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact neighbour ids in float64, in blocks, ties to the smaller index (ground truth)."""
    return datasets.exact_knn(base, queries, k, metric)


def recall_at_k(found: np.ndarray, gt: np.ndarray, k: int) -> float:
    """Mean fraction of the true k nearest found among the returned k (set overlap)."""
    return datasets.recall_at_k(found, gt, k)


def peer(module: str) -> Any:
    """Import an optional peer, or skip with a printed reason."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        print(f"skipped: {module} not available ({exc.__class__.__name__}: {exc})")
        pytest.skip(f"{module} not installed")


@contextmanager
def limit_threads(n: int):
    """Cap BLAS and OpenMP pools (numpy, scipy, scikit-learn, faiss) at n threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n):
        faiss = None
        try:
            import faiss  # noqa: F401
        except ImportError:
            pass
        old = None
        if faiss is not None:
            old = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(n)
        try:
            yield
        finally:
            if faiss is not None and old is not None:
                faiss.omp_set_num_threads(old)


#: Seconds to wait before a contender is timed (see settle_threads).
SETTLE_S = 0.3


def settle_threads() -> None:
    """Let the previous contender's worker threads go idle before the next one is timed.

    OpenBLAS's (and OpenMP's) worker threads spin for a while after a threaded call: one
    2-thread 600 x 600 product left a worker burning 106 ms of CPU over the next 0.3 s. A
    contender timed right after a BLAS one shares its 2 cores with that spin (pysim's
    1000 x 10000 x 128 cdist took 21 ms in the kernel table's order against 11.5 ms alone).
    Every contender waits the same before its warm-up call.
    """
    time.sleep(SETTLE_S)


def record(benchmark, **info: Any) -> None:
    """Attach report fields to a pytest-benchmark result (strings, numbers, bools).

    Every part calls it with its own fields, so the calls look alike by shape (duplicates
    pairs them); the table and plot code reads the fields by name.
    """
    benchmark.extra_info.update(info)


def rounds() -> int:
    """Timed rounds per benchmark ($PYSIM_BENCH_ROUNDS; default 5 with ``--full``, 3 in the
    quick run, which must fit its 10-minute budget): the median is reported."""
    return int(os.environ.get("PYSIM_BENCH_ROUNDS", "5" if full() else "3"))


def full() -> bool:
    """True when the per-issue (large) workloads were asked for (``run.py --full``)."""
    return os.environ.get("PYSIM_BENCH_FULL", "") == "1"


# --- What the suite driver (run.py) passes down through the environment ----------------------


def threads(default: tuple[int, ...] = (2,)) -> list[int]:
    """Thread counts to benchmark: ``run.py --threads 1,2`` ($PYSIM_BENCH_THREADS) or ``default``.

    Use it to parametrise: ``@pytest.mark.parametrize("threads", threads((1, 2)))``.
    """
    env = os.environ.get("PYSIM_BENCH_THREADS", "").strip()
    if not env:
        return list(default)
    return [int(t) for t in env.split(",") if t.strip()]


def ann_datasets(default: list[str], full_set: list[str] | None = None) -> list[str]:
    """Dataset names a search benchmark runs on.

    ``run.py --dataset PATH`` ($PYSIM_BENCH_DATASET) replaces them all with ``"user"``;
    ``--full`` picks ``full_set`` (the per-issue workloads, e.g. ``["mnist", "minilm",
    "clustered-100000x128"]``); otherwise ``default``: embedded data only (``"digits"``,
    ``"clustered-NxD"``), so the default run needs no download. Load each with
    :func:`dataset`.
    """
    if os.environ.get("PYSIM_BENCH_DATASET"):
        return ["user"]
    if full() and full_set is not None:
        return list(full_set)
    return list(default)


def dataset(name: str) -> dict[str, Any]:
    """A named dataset with exact ground truth, or skip the benchmark with the reason.

    Returns the dict of :func:`datasets.load_dataset`: ``base``/``queries`` float32,
    ``gt`` (q, 100) int64 nearest first, ``metric``, ``name``; ``y_base``/``y_queries`` when
    labelled. Shared between tests (cached): never modify the arrays in place.
    """
    try:
        return datasets.load_dataset(name)
    except (FileNotFoundError, ImportError) as exc:
        print(f"skipped: dataset {name!r} ({exc})")
        pytest.skip(str(exc))


#: The quick run spends this share of each contender's nominal budget: the default suite
#: must finish, install included, within 10 minutes on a 2-core machine (`--full` is unscaled).
QUICK_BUDGET_SCALE = 0.3


def adaptive_rounds(seconds_per_call: float, budget: float = 2.0) -> int:
    """Timed rounds for one contender.

    With ``--full``, :func:`rounds` (``--repeats``), except for calls over 30 s (scipy's
    mahalanobis cdist), timed once; in the default quick run, as many as fit in ``budget``
    seconds (at least 1, at most :func:`rounds`), so a slow peer does not eat the 10-minute
    budget. The median is reported either way.
    """
    if full():
        return rounds() if seconds_per_call < 30 else 1
    budget *= QUICK_BUDGET_SCALE
    return int(max(1, min(rounds(), budget // max(seconds_per_call, 1e-9))))


def child_json(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `argv` (a child Python process, e.g. a memory probe that needs a fresh heap) and
    return the JSON object on the last line of its stdout; a failing child fails the benchmark
    with the tail of its stderr."""
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        pytest.fail(f"{argv[:3]} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
