#!/usr/bin/env bash
# typing stage: the compiled module and its stub cannot drift, and the public API types check.
#
#   1. mypy.stubtest pysim._core: every name, signature and class member of the built module
#      against pysim/_core.pyi (what stubtest cannot accept from pybind11 - the metaclass of
#      the compiled classes, the stub's __all__ - is listed in .ci/stubtest-allowlist.txt
#      with the reason);
#   2. mypy --strict over .ci/typing_public_api.py, a typed user of every public name: the
#      signatures and return types the Python layer promises, as a strict user's checker sees
#      them (pysim's internals are followed silently, not held to --strict).
#
#   bash .ci/typing.sh [PYTHON]    PYTHON defaults to .venv/bin/python (pysim installed there)
#
# mypy is pinned so a new release cannot fail a clean clone's CI by itself. 1-2 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${1:-.venv/bin/python}
py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")" # absolute, symlink kept (the venv)
"$py" -m pip install -q "mypy==2.4.1" || exit 1
status=0
# Run outside the source tree, so the installed package (with its compiled module) is checked.
tmp=$(mktemp -d)
cd "$tmp" || exit 1
echo "+ stubtest pysim._core"
"$py" -P -m mypy.stubtest pysim._core --allowlist "$root/.ci/stubtest-allowlist.txt" || status=1
echo "+ mypy --strict .ci/typing_public_api.py"
"$py" -P -m mypy --strict --follow-imports=silent --cache-dir="$tmp/cache" \
    "$root/.ci/typing_public_api.py" || status=1
cd "$root" && rm -rf "$tmp"
exit $status
