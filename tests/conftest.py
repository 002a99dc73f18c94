"""Shared fixtures: seeded rng, the every-ISA fixture, tolerances, shared-data lookup."""

from __future__ import annotations

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


def shared_data_dir() -> Path | None:
    """The shared datasets folder (PYSIM_DATA, default ../shared/data), or None if absent."""
    here = Path(__file__).resolve().parent
    candidates = [os.environ.get("PYSIM_DATA"), here.parent.parent / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None
