"""Print one of the README's two opening commands (`bench` = line 1, `test` = line 2).

CI runs exactly what the README tells users to run, so the two can never drift apart.
"""

import pathlib
import sys

text = pathlib.Path(__file__).resolve().parent.parent.joinpath("README.md").read_text()
block = text.split("```", 2)[1].splitlines()[1:]  # first fenced block, minus its language tag
lines = [line.strip() for line in block if line.strip() and not line.strip().startswith("#")]
print(lines[{"bench": 0, "test": 1}[sys.argv[1]]])
