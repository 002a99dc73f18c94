"""pytest plugin used by ``run.py``: reports progress and the benchmark process's environment.

The driver runs each part in its own pytest process (a crash or a leak in one part cannot take
the suite down, and the BLAS environment is set for that process alone). That process writes
one JSON object per line to the file named by ``$PYSIM_BENCH_PROGRESS``; the driver tails it to
move its progress bar, to collect skip reasons, and to record what threadpoolctl saw *inside*
the benchmark process (which BLAS kernel each library really ran, with how many threads).

Loaded with ``-p _progress``; does nothing when the variable is not set, so a developer's plain
``pytest benchmarks/ --benchmark-only`` is unaffected.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

_PATH = os.environ.get("PYSIM_BENCH_PROGRESS")


def _emit(event: str, **data: Any) -> None:
    if not _PATH:
        return
    data["event"] = event
    data["time"] = time.time()
    with open(_PATH, "a", encoding="utf-8") as f:
        f.write(json.dumps(data, default=str) + "\n")


def pytest_collection_finish(session) -> None:
    _emit("collected", n=len(session.items))


def pytest_collectreport(report) -> None:
    if report.failed:
        _emit("collect_error", nodeid=report.nodeid, message=str(report.longrepr)[-2000:])


def pytest_runtest_logstart(nodeid, location) -> None:
    _emit("start", nodeid=nodeid)


def pytest_runtest_logreport(report) -> None:
    # One "done" per test: at its call phase, or at setup when it never got that far.
    done = report.when == "call" or (report.when == "setup" and not report.passed)
    if report.when == "teardown" and report.failed:
        done = True
    if not done:
        return
    reason = None
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
    elif report.failed:
        reason = str(getattr(report.longrepr, "reprcrash", None) or report.longrepr)[-600:]
    _emit(
        "done",
        nodeid=report.nodeid,
        outcome=report.outcome,
        reason=reason,
        seconds=round(getattr(report, "duration", 0.0), 3),
    )


def pytest_sessionfinish(session, exitstatus) -> None:
    info: Any
    try:
        from threadpoolctl import threadpool_info

        info = threadpool_info()
    except Exception as exc:  # noqa: BLE001 - only informative
        info = f"threadpoolctl unavailable: {exc}"
    env = {
        k: os.environ.get(k)
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "PYSIM_SIMD")
    }
    simd = None
    try:
        import pysim

        simd = pysim.simd_info()
    except Exception as exc:  # noqa: BLE001
        simd = f"unavailable: {exc}"
    _emit("env", threadpool_info=info, environ=env, simd_info=simd, exitstatus=int(exitstatus))
