"""Benchmarks run peers that emit their own warnings; do not turn those into errors here."""

from __future__ import annotations

import warnings

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("default"))


warnings.simplefilter("default")
