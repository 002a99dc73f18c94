"""Shared fixtures: seeded rng, the every-ISA fixture, tolerances, test-data lookup.

Tests are written out rather than abstracted: set-up lines, parametrisations and bad-input
blocks repeat across tests by shape (duplicates pairs them) so that each test reads, and
fails, on its own; helpers here and in hardening_tools.py hold what is the same logic.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

import pysim
from pysim import _core

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ISAS = _core._available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test once per instruction-set level this CPU can execute."""
    previous = pysim.simd_info()["isa"]
    assert _core._set_isa(request.param)
    yield request.param
    _core._set_isa(previous)


@pytest.fixture
def rng(request):
    seed = int(os.environ.get("PYSIM_TEST_SEED", "12345"))
    request.node.user_properties.append(("seed", seed))
    return np.random.default_rng(seed)


def rel_tolerance(dtype) -> float:
    """The contract's accuracy, relative to the norms: 1e-5 for float32, 1e-12 for float64."""
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def repo_data(name: str) -> Path:
    """tests/data/<name>: a small real dataset kept in the repository (tests/data/README.md),
    so real-data tests run on a clean clone."""
    path = Path(__file__).resolve().parent / "data" / name
    assert path.is_dir(), f"{path} is missing from the checkout"
    return path


def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNIST's test split from tests/data/mnist: base (9000, 784) and queries (1000, 784) as
    float32 pixels 0..255, and the exact Euclidean top-100 (1000, 100) int32 of each query."""
    root = repo_data("mnist")
    with gzip.open(root / "t10k-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    X = np.frombuffer(raw, np.uint8, offset=16).reshape(10000, 784).astype(np.float32)
    return X[:9000], X[9000:], np.load(root / "mnist10k_gt_top100.npy")


def load_minilm(full: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MiniLM embeddings (unit-length float32, 384-d): base, queries and the exact cosine
    top-100 (int32). tests/data/minilm-2k (2000 + 200 vectors), or with full=True the shared
    20,000 + 1,000 set, which is not in the repository (the test is skipped without it)."""
    if full:
        shared = shared_data_dir()
        if shared is None or not (shared / "minilm-dev").is_dir():
            pytest.skip("the full MiniLM set is not in the repository (set PYSIM_DATA)")
        root = shared / "minilm-dev"
    else:
        root = repo_data("minilm-2k")
    base, queries, gt = (np.load(root / f) for f in ("base.npy", "queries.npy", "gt_top100.npy"))
    return base, queries, gt


def shared_data_dir() -> Path | None:
    """The shared datasets folder (PYSIM_DATA, default ../shared/data), or None if absent: only
    the slow full-size tests need it (the default run uses repo_data)."""
    here = Path(__file__).resolve().parent
    candidates = [os.environ.get("PYSIM_DATA"), here.parent.parent / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None
