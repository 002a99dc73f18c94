"""PYSIM_SIMD is honoured at import, and a level the CPU lacks falls back with a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pysim import _core

SNIPPET = (
    "import json, warnings\n"
    "with warnings.catch_warnings(record=True) as w:\n"
    "    warnings.simplefilter('always')\n"
    "    import pysim\n"
    "print(json.dumps({'info': pysim.simd_info(),"
    " 'warnings': [str(x.category.__name__) + ':' + str(x.message) for x in w]}))\n"
)


def run_with(env_value: str, cwd) -> dict:
    # A neutral working directory: `python -c` puts it first on sys.path, and the source tree's
    # pysim/ (without the compiled module) must not shadow the installed package.
    env = dict(os.environ, PYSIM_SIMD=env_value)
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("level", _core._available_isas())
def test_env_forces_an_available_level(level, tmp_path):
    res = run_with(level, tmp_path)
    assert res["info"]["isa"] == level
    assert res["info"]["requested"] == level
    assert res["info"]["override"] is None
    assert res["warnings"] == []


@pytest.mark.parametrize(
    "level", ["neon" if "avx2" in _core._available_isas() else "avx512", "bogus"]
)
def test_unavailable_level_falls_back_with_warning(level, tmp_path):
    res = run_with(level, tmp_path)
    assert res["info"]["isa"] == res["info"]["detected"]
    assert level in res["info"]["override"]
    assert any(w.startswith("RuntimeWarning") for w in res["warnings"])
