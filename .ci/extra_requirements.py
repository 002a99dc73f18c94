"""Print the requirements of pyproject.toml's optional extras, one per line.

CI stages that need an extra's tools but already have pysim installed (docs, typing) install
just these, so the package is not rebuilt for each stage and the extra stays the one list.
Usage: python .ci/extra_requirements.py docs [test ...]
"""

import pathlib
import sys
import tomllib

root = pathlib.Path(__file__).resolve().parent.parent
extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
for name in sys.argv[1:]:
    print("\n".join(extras[name]))
