#!/usr/bin/env bash
# typing stage: the public API type-checks as a strict user's checker sees it.
#
#   mypy --strict over .ci/typing_public_api.py, a typed user of every public name (the
#   signatures and return types the Python layer promises; pysim's internals are followed
#   silently, not held to --strict), and over the compiled module's stub pysim/_core.pyi
#   (strict except for pybind11's bare generic return types).
#
# That the stub matches the compiled module (names, signatures, class members, constants) is
# tests/test_packaging.py's job, in every test run; this stage does not repeat it.
#
#   bash .ci/typing.sh [PYTHON]    PYTHON defaults to .venv/bin/python (pysim installed there)
#
# mypy is pinned so a new release cannot fail a clean clone's CI by itself. About a minute.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${1:-.venv/bin/python}
py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")" # absolute, symlink kept (the venv)
"$py" -m pip install -q "mypy==2.4.1" || exit 1
# Run outside the source tree, so the installed package (with its compiled module) is checked.
tmp=$(mktemp -d)
cd "$tmp" || exit 1
status=0
echo "+ mypy --strict .ci/typing_public_api.py"
"$py" -P -m mypy --strict --follow-imports=silent --cache-dir="$tmp/cache" \
    "$root/.ci/typing_public_api.py" || status=1
# The stub keeps pybind11's bare `tuple` / `dict` / `list` return types (tests/test_packaging.py
# compares them with the compiled signatures), hence --allow-any-generics there only.
echo "+ mypy --strict --allow-any-generics -m pysim._core (the stub)"
"$py" -P -m mypy --strict --allow-any-generics --follow-imports=silent \
    --cache-dir="$tmp/cache" -m pysim._core || status=1
cd "$root" && rm -rf "$tmp"
exit $status
