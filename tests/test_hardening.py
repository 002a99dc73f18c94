"""Hardening: resource limits, Ctrl-C, memory over repeated calls, concurrent callers, portability.

What the tests promise (and print, in the "pysim hardening figures" summary):

- An output that cannot fit (cdist / dot of 10^6 x 10^6) raises MemoryError before anything
  is allocated: checked with tracemalloc and under an address-space cap.
- SIGINT (a real signal, Python's default handler, as Ctrl-C) during a long call raises
  KeyboardInterrupt within a second, with 1 and 2 threads, on the tiled and the one-to-many
  paths, in-process and in a separate interpreter; afterwards the pool still gives exact
  results. The bound (< 1 s) is a behaviour contract, not a speed benchmark: the pool polls
  every ~5 ms of work, so the measured latency is normally a few milliseconds.
- 10,000 repeated calls (every entry point, both dtypes, errors included) grow RSS by < 5%.
- Object files outside the x86 units of csrc/simd/isa/ hold no AVX instructions and nothing
  is compiled with -march=native (.ci/check_isa_objects.py over the build tree).

The helpers live in hardening_tools.py so the index tests reuse them. Tests marked
``testing_hooks`` drive the pool through ``_core._pool_spin``, which exists only in PYSIM_TESTING
builds (every build from a checkout; release wheels deselect them).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import reference
from hardening_tools import (
    AllocationMeter,
    asan_active,
    measure_interrupts,
    report,
    rss_bytes,
    rss_growth_in_child,
)

import pysim
from pysim import _core

ROOT = Path(__file__).resolve().parent.parent
# Seconds from SIGINT to KeyboardInterrupt. Under AddressSanitizer (.ci/sanitize.sh: -O1,
# instrumented, several times slower) that run checks the memory safety of the interrupted
# paths; the latency contract itself is held by every uninstrumented run.
LATENCY_BOUND = 3.0 if asan_active() else 1.0

needs_sigint = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill") or sys.platform == "win32",
    reason="needs POSIX signals (pthread_kill)",
)


# --------------------------------------------------------------------------------------------
# Resource limits


@pytest.mark.parametrize("func", ["cdist", "dot"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_impossible_output_raises_memory_error_before_allocating(func, dtype):
    A = np.zeros((10**6, 1), dtype=dtype)
    fn = getattr(pysim, func)
    with AllocationMeter(native_cap=256 << 20) as meter:
        used, outcome = meter.measure(lambda: fn(A, A))
    assert isinstance(outcome, MemoryError), f"{func} returned or raised {outcome!r}"
    assert "(1000000, 1000000)" in str(outcome)
    assert used < 1 << 20, f"{func} allocated {used} bytes before refusing"


def test_output_larger_than_ram_is_refused_but_out_is_honoured():
    # One row against many: a 10^6-wide output is fine and must still be computed.
    A = np.ones((1, 3), dtype=np.float32)
    B = np.ones((10**6, 3), dtype=np.float32)
    out = np.empty((1, 10**6), dtype=np.float32)
    res = pysim.cdist(A, B, out=out)
    assert res is out or np.shares_memory(res, out)
    assert float(np.abs(out).max()) == 0.0


# --------------------------------------------------------------------------------------------
# Interrupts


def _check_pool_still_exact(rng, threads: int) -> None:
    A = rng.standard_normal((37, 19))
    B = rng.standard_normal((53, 19))
    got = pysim.cdist(A, B, "sqeuclidean", threads=threads)
    want = reference.cdist(A, B, "sqeuclidean")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    for q in (A[:1], A[:2]):  # one-to-many path too
        np.testing.assert_allclose(
            pysim.cdist(q, B, threads=threads), reference.cdist(q, B, "sqeuclidean"), rtol=1e-12
        )


@pytest.fixture(scope="module")
def big_pair():
    """Operands for a tiled cdist that runs for seconds (interrupted after 0.2 s)."""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((3000, 2048), dtype=np.float32)
    return A, A[::-1].copy()


@pytest.fixture(scope="module")
def tall():
    """One-to-many operands: 2 queries against 4e6 x 32 float32 rows (512 MB)."""
    rng = np.random.default_rng(6)
    B = np.empty((4_000_000, 32), dtype=np.float32)
    B[:] = rng.standard_normal((1, 32), dtype=np.float32)
    B[::7] += 1.0
    return B[:2].copy(), B


@needs_sigint
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("func", ["cdist", "dot"])
def test_sigint_interrupts_tiled_call(request, rng, big_pair, threads, func):
    A, B = big_pair
    fn = getattr(pysim, func)
    with _scalar_kernels():  # slower kernels: the call surely outlasts the delay
        latency = measure_interrupts(lambda: fn(A, B, threads=threads), delay=0.2)
    report(request.config, f"interrupt {func} tiled threads={threads}: {latency * 1e3:.1f} ms")
    assert latency < LATENCY_BOUND
    _check_pool_still_exact(rng, threads)


@needs_sigint
@pytest.mark.parametrize("threads", [1, 2])
def test_sigint_interrupts_one_to_many_call(request, rng, tall, threads):
    Q, B = tall
    with _scalar_kernels():
        start = time.perf_counter()
        pysim.cdist(Q, B[: len(B) // 8], "cosine", threads=threads)
        full = 8 * (time.perf_counter() - start)  # estimated from an eighth of the rows
        # A bandwidth-bound scan is short even over 512 MB: interrupt a quarter of the way in.
        latency = measure_interrupts(
            lambda: pysim.cdist(Q, B, "cosine", threads=threads), delay=full / 4
        )
    report(
        request.config,
        f"interrupt cdist one-to-many threads={threads}: {latency * 1e3:.1f} ms "
        f"(uninterrupted call ~{full * 1e3:.0f} ms)",
    )
    assert latency < LATENCY_BOUND
    _check_pool_still_exact(rng, threads)


@pytest.mark.testing_hooks
@needs_sigint
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "jobs,chunks,chunk_seconds",
    [(1, 400, 0.01), (2000, 1, 0.002), (4000, 2, 0.0005)],
    ids=["one-long-job", "many-1-chunk-jobs", "many-tiny-jobs"],
)
def test_sigint_interrupts_pool_work(request, rng, threads, jobs, chunks, chunk_seconds):
    # Synthetic work (busy chunks) of known shape. The many-short-jobs cases are what an index
    # does when it loops over batches inside one C++ call: each job is shorter than the poll
    # interval, so polling must be counted across jobs.
    total = jobs * chunks * chunk_seconds / threads
    assert total >= 2.0
    latency = measure_interrupts(
        lambda: _core._pool_spin(jobs, chunks, chunk_seconds, threads), delay=0.2
    )
    report(
        request.config,
        f"interrupt pool {jobs} jobs x {chunks} chunks x {chunk_seconds * 1e3:g} ms "
        f"threads={threads}: {latency * 1e3:.1f} ms",
    )
    assert latency < LATENCY_BOUND
    assert _core._pool_spin(3, 8, 0.0, threads) == 24
    _check_pool_still_exact(rng, threads)


@pytest.mark.testing_hooks
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("fail_at", [0, 5, 31])
def test_chunk_error_propagates_and_pool_recovers(rng, threads, fail_at):
    with pytest.raises(ValueError, match="on purpose"):
        _core._pool_spin(4, 8, 0.0, threads, fail_at)
    assert _core._pool_spin(4, 8, 0.0, threads) == 32
    _check_pool_still_exact(rng, threads)


SIGINT_CHILD = textwrap.dedent(
    """
    import signal, sys, time
    import numpy as np
    import pysim
    from pysim import _core
    # As in a terminal: a parent started as a shell background job passes SIGINT down ignored,
    # and Python keeps an inherited SIG_IGN instead of installing its handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _core._set_isa("scalar")
    A = np.random.default_rng(0).standard_normal((3000, 2048), dtype=np.float32)
    print("ready", flush=True)
    try:
        pysim.cdist(A, A, threads=int(sys.argv[1]))
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    small = np.arange(12.0).reshape(4, 3)
    print("ok" if np.allclose(pysim.cdist(small, small), ((small[:, None] - small) ** 2).sum(-1))
          else "wrong", flush=True)
    """
)


@needs_sigint
@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_in_a_separate_interpreter(request, tmp_path, threads):
    """Ctrl-C as a user sends it: SIGINT from outside to a plain `python` running cdist."""
    with subprocess.Popen(
        [sys.executable, "-c", SIGINT_CHILD, str(threads)],
        cwd=tmp_path,  # never the source tree, whose pysim/ has no compiled module
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(0.3)
            sent = time.perf_counter()
            child.send_signal(signal.SIGINT)
            line = child.stdout.readline().strip()
            latency = time.perf_counter() - sent
            # Not communicate(): it would skip what readline() already buffered.
            rest = child.stdout.read()
            err = child.stderr.read()
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    assert line == "interrupted", f"child said {line!r}; stderr: {err}"
    assert rest.split() == ["ok"], err
    assert child.returncode == 0, err
    report(
        request.config,
        f"interrupt (separate interpreter) threads={threads}: {latency * 1e3:.1f} ms",
    )
    assert latency < LATENCY_BOUND


@needs_sigint
def test_interrupt_leaves_other_threads_calls_intact(rng, big_pair):
    """Ctrl-C stops the main thread's call only; calls running in other threads on the same
    pool complete with exact results."""
    A = rng.standard_normal((400, 64))
    B = rng.standard_normal((300, 64))
    want = reference.cdist(A, B, "euclidean")
    errors: list[str] = []
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            got = pysim.cdist(A, B, "euclidean", threads=2)
            if not np.allclose(got, want, rtol=1e-12, atol=1e-12):
                errors.append("wrong result")

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        BA, BB = big_pair
        with _scalar_kernels():
            latency = measure_interrupts(lambda: pysim.cdist(BA, BB, threads=2), delay=0.2)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    assert not any(w.is_alive() for w in workers)
    assert errors == []
    assert latency < LATENCY_BOUND


class _scalar_kernels:
    """Temporarily run the scalar kernels (the isa fixture's switch, as a context manager)."""

    def __enter__(self):
        self.previous = pysim.simd_info()["isa"]
        assert _core._set_isa("scalar")

    def __exit__(self, *exc):
        _core._set_isa(self.previous)


# --------------------------------------------------------------------------------------------
# Concurrent callers


def test_concurrent_callers_get_exact_results(rng):
    """Four Python threads share the pool (each call with threads=2) for many calls."""
    cases = []
    for i in range(8):
        A = rng.standard_normal((int(rng.integers(1, 200)), 33)).astype(
            np.float32 if i % 2 else np.float64
        )
        B = rng.standard_normal((int(rng.integers(1, 300)), 33)).astype(A.dtype)
        metric = ["sqeuclidean", "euclidean", "cosine", "ip"][i % 4]
        cases.append((A, B, metric, pysim.cdist(A, B, metric, threads=1)))
    failures: list[str] = []

    def run(offset: int) -> None:
        for r in range(60):
            A, B, metric, want = cases[(offset + r) % len(cases)]
            got = pysim.cdist(A, B, metric, threads=2)
            if not np.array_equal(got, want):
                failures.append(f"thread {offset} round {r}")

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a caller is stuck"
    assert failures == []


# --------------------------------------------------------------------------------------------
# Memory stays flat over repeated calls


RSS_SETUP = """
import numpy as np
import pysim
from pysim import _core

rng = np.random.default_rng(12345)
A32 = rng.standard_normal((40, 24)).astype(np.float32)
B32 = rng.standard_normal((70, 24)).astype(np.float32)
A64, B64 = A32.astype(np.float64), B32.astype(np.float64)
out = np.empty((40, 70), dtype=np.float32)
bad = np.ones((3, 5))
VI = np.eye(24)

def raises(fn):
    try:
        fn()
    except (ValueError, TypeError):
        return
    raise AssertionError("expected an error")

calls = [
    lambda: pysim.cdist(A32, B32, "euclidean", threads=2),
    lambda: pysim.cdist(A64, B64, "cosine", threads=1),
    lambda: pysim.cdist(A32[:1], B32, "sqeuclidean", threads=2),
    lambda: pysim.cdist(A64[:2], B64, "ip"),
    lambda: pysim.cdist(A32, B32, out=out),
    lambda: pysim.cdist(A64, B64, "mahalanobis", VI=VI),
    lambda: pysim.dot(A32, B32),
    lambda: pysim.paired_distances(A64, A64[::-1], "euclidean"),
    lambda: raises(lambda: pysim.cdist(A32, bad)),
    lambda: raises(lambda: _core.cdist_f32(A32, B32[:, :5], _core.Metric.sqeuclidean, 1)),
    lambda: raises(lambda: _core._pool_spin(1, 4, 0.0, 2, 1)),
]
"""


@pytest.mark.testing_hooks
def test_rss_flat_over_10000_calls(request, tmp_path):
    """10,000 calls of every entry point (both dtypes, both paths, out=, errors raised in C++
    and in Python) in a fresh interpreter, whose small baseline makes 5% a tight bound."""
    if rss_bytes() is None:
        pytest.skip("RSS is read from /proc (Linux only)")
    if asan_active():
        pytest.skip("under AddressSanitizer freed memory sits in quarantine; RSS is meaningless")
    res = rss_growth_in_child(RSS_SETUP, 10_000, cwd=tmp_path)
    report(request.config, f"RSS over {res.describe()}")
    assert res.growth < 0.05


# --------------------------------------------------------------------------------------------
# Portability: AVX only in the per-ISA objects, no -march=native


def _load_checker():
    path = ROOT / ".ci" / "check_isa_objects.py"
    if not path.exists():
        pytest.skip(f"{path} is not part of this checkout")
    spec = importlib.util.spec_from_file_location("check_isa_objects", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_avx_outside_isa_objects():
    checker = _load_checker()
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) is not installed")
    build = checker.find_build_dir(ROOT)
    if build is None:
        pytest.skip(f"no CMake build tree under {ROOT / 'build'} (installed from a wheel?)")
    problems, summary = checker.check_objects(build)
    assert problems == [], "\n".join(problems)
    assert summary["baseline_objects"] > 0


def test_no_march_native_in_the_build():
    checker = _load_checker()
    problems = checker.check_sources(ROOT)
    build = checker.find_build_dir(ROOT)
    if build is not None:
        problems += checker.check_flags(build)
    assert problems == [], "\n".join(problems)


COMDAT_HEADER = """
__attribute__((noinline)) inline float sumsq(const float* a, int n) {
    float s = 0;
    for (int i = 0; i < n; ++i) s += a[i] * a[i];
    return s;
}
"""


def test_isa_checker_catches_leaks(tmp_path):
    """The checker itself: AVX in a baseline object, an AVX copy of an inline function shared
    with baseline code, and -march=native in the compile flags must all be reported."""
    checker = _load_checker()
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None or shutil.which("objdump") is None or shutil.which("nm") is None:
        pytest.skip("needs g++, objdump and nm")
    if os.uname().machine != "x86_64":
        pytest.skip("x86-64 only")
    build = tmp_path / "build"
    core = build / "CMakeFiles" / "pysim_core.dir" / "csrc"
    (core / "brute").mkdir(parents=True)
    (core / "simd" / "isa").mkdir(parents=True)
    (tmp_path / "common.hpp").write_text(COMDAT_HEADER)
    (tmp_path / "isa.cpp").write_text(
        '#include "common.hpp"\nfloat isa_entry(const float* a, int n) { return sumsq(a, n); }\n'
    )
    (tmp_path / "base.cpp").write_text(
        '#include "common.hpp"\nfloat base_entry(const float* a, int n) { return sumsq(a, n); }\n'
    )
    (tmp_path / "leak.cpp").write_text(
        "void scale(float* a, int n) { for (int i = 0; i < n; ++i) a[i] *= 3; }\n"
    )

    def compile_(src: str, obj: Path, *flags: str) -> None:
        subprocess.run([cxx, "-O3", *flags, "-c", str(tmp_path / src), "-o", str(obj)], check=True)

    compile_("isa.cpp", core / "simd" / "isa" / "avx2.cpp.o", "-mavx2", "-mfma")
    compile_("base.cpp", core / "brute" / "distances.cpp.o")
    problems, summary = checker.check_objects(build)
    assert summary == {"baseline_objects": 1, "isa_objects": 1, "weak_avx_functions": 1}
    assert len(problems) == 1 and "sumsq" in problems[0] and "weak function" in problems[0]

    compile_("leak.cpp", core / "brute" / "leak.cpp.o", "-mavx2")
    problems, _ = checker.check_objects(build)
    assert any("leak.cpp.o: AVX instruction" in p for p in problems)

    rule = "CXX_COMPILER__pysim_core"
    obj = "CMakeFiles/pysim_core.dir/csrc"
    (build / "build.ninja").write_text(
        f"build {obj}/brute/x.cpp.o: {rule} /src/csrc/brute/x.cpp\n"
        "  FLAGS = -O3 -march=native\n"
        f"build {obj}/simd/isa/avx2.cpp.o: {rule} /src/csrc/simd/isa/avx2.cpp\n"
        "  FLAGS = -O3 -mavx2 -mfma\n"
        f"build {obj}/common/y.cpp.o: {rule} /src/csrc/common/y.cpp\n"
        "  FLAGS = -O3 -mavx512f\n"
    )
    flags = checker.check_flags(build)
    assert len(flags) == 2
    assert "x.cpp: compiled with -march=native" in flags[0]
    assert "y.cpp: ISA flags" in flags[1]


@pytest.mark.parametrize("kind", ["brute", "kdtree", "hnsw"])
def test_huge_k_raises_memory_error_before_allocating(kind):
    X = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    if kind == "brute":
        index = pysim.BruteForceIndex(X)
    elif kind == "kdtree":
        index = pysim.KDTreeIndex(X)
    else:
        index = pysim.HNSWIndex(4)
        index.add(X)
    with pytest.raises(MemoryError, match="k"):
        index.query(X, k=10**9)
    assert len(index) == 50
