"""The NEON kernels, checked on an x86 machine through a cross compiler and qemu.

Two native programs, each built from the NEON unit, the portable unit and a checker:

* tests/native/float_neon_check.cpp: every float32/float64 distance kernel (pair, many, panel,
  pack + tile with each epilogue; all tails and row remainders) against a double / long double
  reference within the contract's tolerances, and the panel kernel bit for bit against scalar;
  the float64 shifted exponential in ulps against a long double exp, with its edge cases;
* tests/native/quant_neon_check.cpp: every compressed-code kernel and conversion against the
  portable kernels that test_quant_kernels.py checks against numpy, built without and with the
  Armv8.2 dot-product instructions.

Needs aarch64-linux-gnu-g++ and qemu-aarch64 (Debian: g++-aarch64-linux-gnu, qemu-user); .ci/qemu.sh
installs both and requires these tests to run. On an aarch64 machine the Python-level kernel
tests exercise the NEON level natively instead.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CXX = shutil.which("aarch64-linux-gnu-g++")
QEMU = shutil.which("qemu-aarch64")

CHECKS = {
    "float": ("tests/native/float_neon_check.cpp", "scalar.cpp", "neon.cpp"),
    "quant": ("tests/native/quant_neon_check.cpp", "quant_scalar.cpp", "quant_neon.cpp"),
}


@pytest.mark.slow
@pytest.mark.skipif(
    CXX is None or QEMU is None, reason="needs aarch64-linux-gnu-g++ and qemu-aarch64"
)
@pytest.mark.parametrize(
    ("check", "march"),
    [("float", "armv8-a"), ("quant", "armv8-a"), ("quant", "armv8.2-a+dotprod")],
)
def test_neon_kernels(tmp_path, check, march):
    exe = tmp_path / f"{check}_neon_check"
    checker, *units = CHECKS[check]
    sources = [checker, *(f"csrc/simd/isa/{u}" for u in units)]
    # The flags CMakeLists.txt gives the core: no contraction, no errno from sqrt.
    flags = ["-std=c++17", "-O2", "-static", "-ffp-contract=off", "-fno-math-errno"]
    subprocess.run(
        [CXX, *flags, f"-march={march}", "-Icsrc", *sources, "-o", str(exe)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    out = subprocess.run([QEMU, "-cpu", "max", str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert out.stdout.startswith(("OK", "dotprod OK")), out.stdout
    assert ("dotprod" in out.stdout) == ("dotprod" in march), out.stdout  # the flag took effect
