"""The README's Python code blocks, run as written, so no example there drifts from the API.

Every fenced ```python block of README.md is executed in order, in one namespace (a later
block may use an earlier block's names, as a reader would), inside a temporary working
directory (the tour saves an index file) in which the repository's ``data/`` folder is linked,
so a block reading ``data/...`` as the README tells a reader to works as written. A block that
raises fails this test with the block's first line in the message. Blocks in other languages
(the shell commands) are not run here; CI runs the first block's commands itself
(.ci/readme_command.py).
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# ```python skip-test marks a block that needs what a test cannot have (a cluster's shared
# folder): examples/plot_sharded_index.py runs that API in the docs build instead.
FENCE = re.compile(r"^```python(?![^\n]*skip-test)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[str]:
    return FENCE.findall(README.read_text(encoding="utf-8"))


def test_readme_has_python_blocks():
    assert python_blocks(), "README.md has no ```python block; the extraction pattern is stale"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    if (ROOT / "data").is_dir():
        (tmp_path / "data").symlink_to(ROOT / "data", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for number, block in enumerate(python_blocks(), start=1):
        code = compile(block, f"README.md python block {number}", "exec")
        try:
            exec(code, namespace)
        except Exception as exc:  # noqa: BLE001  (report which block failed, then fail)
            first = block.strip().splitlines()[0]
            pytest.fail(f"README python block {number} ({first!r}) raised {exc!r}")
