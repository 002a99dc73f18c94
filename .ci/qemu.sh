#!/usr/bin/env bash
# Emulated-CPU stage: run pysim under user-mode QEMU on CPUs the build machine is not.
#
# - SandyBridge has AVX but neither AVX2 nor FMA: dispatch must choose the scalar kernels, and
#   the kernel tests must pass there (any AVX2/FMA/AVX-512 instruction reached from baseline
#   code would be an illegal instruction). numpy's OpenBLAS is told to use its SSE kernels
#   (OPENBLAS_CORETYPE=Prescott): its own SandyBridge kernels fault under QEMU's emulation,
#   which has nothing to do with pysim.
# - Haswell has AVX2 and FMA but no AVX-512: dispatch must choose avx2.
#   (Older models such as Nehalem cannot run numpy >= 2.4 wheels at all, so they prove nothing.)
# - aarch64: the NEON float and compressed-code kernels, cross-compiled and checked under
#   qemu-aarch64 (tests/test_neon.py).
#
# What it needs (qemu-user, an aarch64 cross compiler) is installed with apt-get when missing.
# Nothing here is optional: a missing tool, a skipped test or a non-x86-64 host fails the stage.
#
# Usage: .ci/qemu.sh PYTHON   (an interpreter with pysim installed, e.g. .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-.venv/bin/python}
start=$(date +%s)

not_ok() {
    echo "qemu: NOT OK ($*)"
    exit 1
}

if [ "$(uname -m)" != "x86_64" ]; then
    not_ok "x86-64 hosts only: the emulated CPUs are x86-64 ones"
fi
missing=()
command -v qemu-x86_64 >/dev/null && command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "+ apt-get install ${missing[*]}"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}") >/dev/null 2>&1 ||
            not_ok "apt-get install ${missing[*]} failed"
    fi
fi
for tool in qemu-x86_64 qemu-aarch64 aarch64-linux-gnu-g++; do
    command -v "$tool" >/dev/null || not_ok "$tool is missing and not installable here (needs root and apt-get)"
done

# Absolute but not resolved: the venv is found through the symlink's own location.
py_abs=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")
smoke=$(pwd)/.ci/qemu_smoke.py
filter() { grep -v "TCG doesn't support requested feature" || true; }

echo "+ qemu-x86_64 -cpu Haswell $py .ci/qemu_smoke.py avx2"
(cd / && qemu-x86_64 -cpu Haswell "$py_abs" "$smoke" avx2) 2>&1 | filter
echo "+ qemu-x86_64 -cpu SandyBridge $py .ci/qemu_smoke.py scalar"
(cd / && qemu-x86_64 -cpu SandyBridge "$py_abs" "$smoke" scalar) 2>&1 | filter

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run_pytest() {  # run_pytest LABEL COMMAND...: passes only if tests ran and none was skipped
    local label=$1
    shift
    if ! "$@" 2>&1 | filter | tee "$log"; then
        not_ok "$label failed"
    fi
    if grep -Eq "[0-9]+ skipped" "$log" || ! grep -Eq "[0-9]+ passed" "$log"; then
        not_ok "$label: a test was skipped or none ran"
    fi
}
echo "+ OPENBLAS_CORETYPE=Prescott qemu-x86_64 -cpu SandyBridge $py -P -m pytest (kernel tests)"
run_pytest "SandyBridge kernel tests" env OPENBLAS_CORETYPE=Prescott \
    qemu-x86_64 -cpu SandyBridge "$py_abs" -P -m pytest -q -p no:cacheprovider -m "not slow" \
    tests/test_simd_kernels.py tests/test_distances_api.py tests/test_properties.py
echo "+ $py -m pytest tests/test_neon.py (NEON kernels, cross-compiled, under qemu-aarch64)"
run_pytest "NEON kernel checks" "$py_abs" -P -m pytest -q -p no:cacheprovider -rs tests/test_neon.py
echo "qemu: OK (SandyBridge -> scalar, Haswell -> avx2, kernel tests pass on SandyBridge, NEON float and quantised kernels pass under qemu-aarch64; $(( $(date +%s) - start ))s)"
