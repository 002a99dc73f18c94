#!/usr/bin/env bash
# Old-CPU stage: run pysim under user-mode QEMU emulating CPUs older than the build machine.
#
# - SandyBridge has AVX but neither AVX2 nor FMA: dispatch must choose the scalar kernels, and
#   the kernel tests must pass there (any AVX2/FMA/AVX-512 instruction reached from baseline
#   code would be an illegal instruction). numpy's OpenBLAS is told to use its SSE kernels
#   (OPENBLAS_CORETYPE=Prescott): its own SandyBridge kernels fault under QEMU's emulation,
#   which has nothing to do with pysim.
# - Haswell has AVX2 and FMA but no AVX-512: dispatch must choose avx2.
# (Older models such as Nehalem cannot run numpy >= 2.4 wheels at all, so they prove nothing.)
#
# Usage: .ci/qemu.sh PYTHON   (an interpreter with pysim installed, e.g. .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-.venv/bin/python}
start=$(date +%s)

if ! command -v qemu-x86_64 >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "+ apt-get install qemu-user"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends qemu-user) >/dev/null 2>&1 || true
    fi
fi
if ! command -v qemu-x86_64 >/dev/null; then
    echo "qemu: SKIPPED (qemu-user is not installable here)"
    exit 0
fi
if [ "$(uname -m)" != "x86_64" ]; then
    echo "qemu: SKIPPED (x86-64 hosts only)"
    exit 0
fi
# Absolute but not resolved: the venv is found through the symlink's own location.
py_abs=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")
smoke=$(pwd)/.ci/qemu_smoke.py
filter() { grep -v "TCG doesn't support requested feature" || true; }

echo "+ qemu-x86_64 -cpu Haswell $py .ci/qemu_smoke.py avx2"
(cd / && qemu-x86_64 -cpu Haswell "$py_abs" "$smoke" avx2) 2>&1 | filter
echo "+ qemu-x86_64 -cpu SandyBridge $py .ci/qemu_smoke.py scalar"
(cd / && qemu-x86_64 -cpu SandyBridge "$py_abs" "$smoke" scalar) 2>&1 | filter
echo "+ OPENBLAS_CORETYPE=Prescott qemu-x86_64 -cpu SandyBridge $py -P -m pytest (kernel tests)"
OPENBLAS_CORETYPE=Prescott qemu-x86_64 -cpu SandyBridge "$py_abs" -P -m pytest -q \
    -p no:cacheprovider -m "not slow" \
    tests/test_simd_kernels.py tests/test_distances_api.py tests/test_properties.py 2>&1 | filter
echo "qemu: OK (SandyBridge -> scalar, Haswell -> avx2, kernel tests pass on SandyBridge; $(( $(date +%s) - start ))s)"
