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

import gzip
import importlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def data_dir() -> Path | None:
    """Folder with the shared datasets: $PYSIM_DATA, else ../shared/data next to the repo."""
    for c in (os.environ.get("PYSIM_DATA"), REPO.parent / "shared" / "data"):
        if c and Path(c).is_dir():
            return Path(c)
    return None


def require_data(name: str) -> Path:
    """Path of one shared dataset folder, or skip the benchmark with the reason."""
    root = data_dir()
    if root is None or not (root / name).is_dir():
        pytest.skip(f"dataset {name!r} not found (set PYSIM_DATA to the shared data folder)")
    return root / name


def read_idx(path: Path) -> np.ndarray:
    """An MNIST-style IDX file (optionally gzipped) as a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int(x) for x in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist() -> dict[str, np.ndarray]:
    """MNIST test split: first 9,000 images as base, last 1,000 as queries (Euclidean)."""
    root = require_data("mnist")
    X = read_idx(root / "t10k-images-idx3-ubyte.gz").reshape(10000, 784).astype(np.float32)
    y = read_idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    gt = np.load(root / "mnist10k_gt_top100.npy").astype(np.int64)
    return {
        "base": X[:9000],
        "queries": X[9000:],
        "gt": gt,
        "y_base": y[:9000],
        "y_queries": y[9000:],
        "metric": "euclidean",
    }


def load_minilm() -> dict[str, np.ndarray]:
    """20,000 MiniLM sentence embeddings + 1,000 queries (cosine) with exact top-100."""
    root = require_data("minilm-dev")
    return {
        "base": np.load(root / "base.npy"),
        "queries": np.load(root / "queries.npy"),
        "gt": np.load(root / "gt_top100.npy").astype(np.int64),
        "metric": "cosine",
    }


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
    """Exact neighbour ids in float64, in blocks (the benchmarks' ground truth)."""
    B = base.astype(np.float64)
    if metric == "cosine":
        B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-300)
    bn = (B**2).sum(1)
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 256):
        Q = queries[s : s + 256].astype(np.float64)
        if metric == "cosine":
            D = -(Q @ B.T)
        elif metric == "ip":
            D = -(Q @ B.T)
        else:
            D = bn[None, :] - 2 * Q @ B.T
        part = np.argpartition(D, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(D, part, 1), axis=1, kind="stable")
        out[s : s + 256] = np.take_along_axis(part, order, 1)
    return out


def recall_at_k(found: np.ndarray, gt: np.ndarray, k: int) -> float:
    """Mean fraction of the true k nearest found among the returned k (set overlap)."""
    found = np.asarray(found)[:, :k]
    gt = np.asarray(gt)[:, :k]
    hits = sum(len(set(f.tolist()) & set(g.tolist())) for f, g in zip(found, gt))
    return hits / (k * len(gt))


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


def record(benchmark, **info: Any) -> None:
    """Attach report fields to a pytest-benchmark result (strings, numbers, bools)."""
    benchmark.extra_info.update(info)


def rounds() -> int:
    """Timed rounds per benchmark ($PYSIM_BENCH_ROUNDS, default 5): the median is reported."""
    return int(os.environ.get("PYSIM_BENCH_ROUNDS", "5"))


def full() -> bool:
    """True when the per-issue (large) workloads were asked for (``run.py --full``)."""
    return os.environ.get("PYSIM_BENCH_FULL", "") == "1"
