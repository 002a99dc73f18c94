#!/usr/bin/env bash
# Sanitizer stage: build pysim with AddressSanitizer + UndefinedBehaviorSanitizer
# (CMake option PYSIM_SANITIZE) into its own venv and build folder, then run the tests that
# exercise the compiled core under it. Any ASan or UBSan report fails the stage.
#
# Why this recipe (GCC 12, an uninstrumented CPython):
# - The ASan runtime must be the first library in the process, or it refuses to start
#   ("ASan runtime does not come first in initial library list"). A Python extension is loaded
#   by dlopen long after start-up, so libasan is put in LD_PRELOAD; the path is taken from the
#   built module's own dependencies (ldd), so it always matches the compiler that built it.
# - libstdc++ is preloaded too: ASan binds its __cxa_throw interceptor when it starts, and
#   python itself does not link libstdc++, so without it the first C++ exception (a
#   ValueError from `require`, a KeyboardInterrupt from the pool) dies in
#   "CHECK failed: real___cxa_throw != 0".
# - detect_leaks=0: the interpreter leaks by design at exit; leaks are measured separately
#   (tests/test_hardening.py, RSS over repeated calls).
# - allocator_may_return_null=1: tests that ask for absurd sizes must see MemoryError, as they
#   would with glibc, instead of ASan aborting on the allocation.
# - UBSan is built with -fno-sanitize-recover, so the first report aborts the test process;
#   both runtimes also write to log files, which are scanned afterwards so a report in a
#   subprocess (tests spawn interpreters) cannot go unnoticed.
#
# Usage: .ci/sanitize.sh [pytest args...]   (default: the kernel, persistence and hardening tests)
# Env:   PYSIM_SANITIZE_VENV (default .venv-sanitize), PYSIM_SANITIZE_BUILD (build/sanitize)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

venv=${PYSIM_SANITIZE_VENV:-.venv-sanitize}
build=${PYSIM_SANITIZE_BUILD:-build/sanitize}

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
venv_abs=$(cd "$venv" && pwd)
if [ -n "${PYSIM_SANITIZE_SKIP_BUILD:-}" ]; then
    echo "+ reusing the sanitized install in $venv (PYSIM_SANITIZE_SKIP_BUILD)"
else
    echo "+ building the sanitized extension in $build (venv $venv)"
    "$venv/bin/pip" install -q \
        -Cbuild-dir="$build" \
        -Ccmake.build-type=RelWithDebInfo \
        -Ccmake.define.CMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
        -Ccmake.define.PYSIM_SANITIZE=ON \
        ".[test]"
fi
build_done=$(date +%s)

# From / so that the source tree's pysim/ (no compiled module) does not shadow the install.
so=$(cd / && "$venv_abs/bin/python" -c '
import importlib.util, pathlib
print(next(pathlib.Path(importlib.util.find_spec("pysim").origin).parent.glob("_core*.so")))')
deps=$(ldd "$so")
asan_rt=$(awk '/libasan\.so/ {print $3}' <<<"$deps")
cxx_rt=$(awk '/libstdc\+\+\.so/ {print $3}' <<<"$deps")
if [ -z "$asan_rt" ] || ! grep -q 'libubsan\.so' <<<"$deps"; then
    echo "sanitize: FAILED ($so is not linked against libasan and libubsan; PYSIM_SANITIZE ignored?)"
    exit 1
fi

# The module must really be instrumented (calls into both runtimes).
syms=$(nm -D --undefined-only "$so")
if ! grep -q '__asan_report' <<<"$syms" || ! grep -q '__ubsan_handle' <<<"$syms"; then
    echo "sanitize: FAILED ($so has no ASan/UBSan instrumentation)"
    exit 1
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/pysim-sanitize.XXXXXX")
export LD_PRELOAD="$asan_rt${cxx_rt:+ $cxx_rt}"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:handle_sigill=1:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"
export PYSIM_SANITIZED=1
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-dev}

# Negative control: a heap use-after-free (through ctypes, whose memmove ASan intercepts)
# must abort and leave a report where the scan below looks, or a clean result means nothing.
set +e
"$venv/bin/python" -c '
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
p = libc.malloc(64)
libc.free(p)
ctypes.memmove(ctypes.create_string_buffer(64), p, 64)
' 2>/dev/null
control=$?
set -e
if [ "$control" -eq 0 ] || ! grep -qs 'ERROR: AddressSanitizer' "$logs"/asan.*; then
    echo "sanitize: FAILED (negative control: a use-after-free went unreported; exit $control)"
    exit 1
fi
rm -f "$logs"/asan.*

if [ "$#" -eq 0 ]; then
    set -- tests/test_simd_kernels.py tests/test_distances_api.py tests/test_properties.py \
        tests/test_dispatch.py tests/test_fuzz_persist.py tests/test_hardening.py
    for f in tests/test_brute*.py tests/test_kdtree*.py tests/test_hnsw*.py tests/test_persist*.py \
        tests/test_recommend.py; do
        [ -e "$f" ] && set -- "$@" "$f"
    done
fi
echo "+ LD_PRELOAD=$LD_PRELOAD ASAN_OPTIONS=$ASAN_OPTIONS $venv/bin/pytest -q -m 'not slow' $*"
set +e
"$venv/bin/pytest" -q -p no:cacheprovider -m "not slow" "$@"
status=$?
set -e
unset LD_PRELOAD

reports=0
for f in "$logs"/*; do
    [ -e "$f" ] || continue
    # Everything a sanitizer writes counts, except allocator_may_return_null's notes on
    # refused huge allocations (the MemoryError tests ask for those).
    if grep -E 'Sanitizer|runtime error:' "$f" | grep -qvE 'WARNING: AddressSanitizer failed to allocate'; then
        reports=$((reports + 1))
        echo "---- sanitizer report: $f"
        cat "$f"
    fi
done
rm -rf "$logs"
elapsed=$(( $(date +%s) - start ))
if [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then
    echo "sanitize: FAILED (pytest exit $status, $reports sanitizer reports, ${elapsed}s)"
    exit 1
fi
echo "sanitize: OK (0 sanitizer reports; build $((build_done - start))s, total ${elapsed}s)"
