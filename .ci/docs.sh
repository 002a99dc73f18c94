#!/usr/bin/env bash
# docs stage: build the documentation site with warnings as errors and every gallery example
# executed, against the pysim installed in the venv (the readme-tests stage installed it; the
# docs extra's tools are added without rebuilding the package).
#
#   bash .ci/docs.sh [PYTHON]     PYTHON defaults to .venv/bin/python; output in docs/_build/html
#
# sphinx-build is run as the venv's script, not `python -m sphinx`, so the source tree's
# pysim/ (which has no compiled core) is never on sys.path. Takes about 2-3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-.venv/bin/python}
py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")" # absolute, symlink kept (the venv)
bin=$(dirname "$py")

mapfile -t reqs < <("$py" .ci/extra_requirements.py docs)
"$py" -m pip install -q "${reqs[@]}"

rm -rf docs/_build docs/auto_examples docs/api/generated docs/sg_execution_times.rst
export MPLBACKEND=agg
"$bin/sphinx-build" -W --keep-going -q -b html docs docs/_build/html
echo "docs built: $(find docs/_build/html -name '*.html' | wc -l) pages," \
    "$(find docs/auto_examples -name 'plot_*.py' | wc -l) examples executed"
