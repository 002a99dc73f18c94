"""The NEON compressed-code kernels, checked on an x86 machine through a cross compiler and qemu.

tests/native/quant_neon_check.cpp compares every NEON kernel (all shapes, tail dimensions) and
conversion with the portable kernels that test_quant_kernels.py checks against numpy; it is
built twice, without and with the Armv8.2 dot-product instructions. Needs
aarch64-linux-gnu-g++ and qemu-aarch64 (Debian: g++-aarch64-linux-gnu, qemu-user); on an
aarch64 machine test_quant_kernels.py runs the NEON level natively instead.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CXX = shutil.which("aarch64-linux-gnu-g++")
QEMU = shutil.which("qemu-aarch64")


@pytest.mark.slow
@pytest.mark.skipif(
    CXX is None or QEMU is None, reason="needs aarch64-linux-gnu-g++ and qemu-aarch64"
)
@pytest.mark.parametrize("march", ["armv8-a", "armv8.2-a+dotprod"])
def test_neon_kernels_match_portable_ones(tmp_path, march):
    exe = tmp_path / "quant_neon_check"
    sources = [
        "tests/native/quant_neon_check.cpp",
        "csrc/simd/isa/quant_scalar.cpp",
        "csrc/simd/isa/quant_neon.cpp",
    ]
    subprocess.run(
        [
            CXX,
            "-std=c++17",
            "-O2",
            "-static",
            f"-march={march}",
            "-Icsrc",
            *sources,
            "-o",
            str(exe),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    out = subprocess.run([QEMU, "-cpu", "max", str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert "OK" in out.stdout
