"""Distance kernels: pysim against every peer a user would otherwise call, in one run.

What is measured: ``cdist`` for sqeuclidean, cosine and ip, and ``dot``, all
float32, on (m, n, d) = (1000, 10000, 128), (1000, 10000, 768), (1, 1000000, 128) and
(10000, 10000, 16); mahalanobis on (1000, 10000, 128); the read-bandwidth yardstick for the
one-query case; and the speed-up of every instruction set over scalar code.

How it stays honest:
- Every contender gets the same float32 arrays and computes everything from them on every
  call (norms, normalisation, factorisation of VI), as a user calling it would.
- Same thread count for all: ``threads`` for pysim and simsimd, threadpoolctl for every BLAS
  and OpenMP pool (numpy, scipy, scikit-learn, faiss); scipy's cdist is single-threaded by
  design and is recorded as such.
- Before its time counts, each output is compared with a float64 reference on up to 64 rows,
  relative to the norms (pysim must meet its contract, 1e-5; peers must give the same answer,
  1e-3); the error is stored with the timing.
- A peer that is not installed is skipped with a printed reason.
- Default (quick) run: the issue's shapes, but a contender whose full call would take more
  than ~1 s (scipy, mostly) is timed on fewer query rows (``rows_timed`` in the JSON; speeds
  are compared per pair, so this is fair), and rounds adapt to a ~1.5 s budget per contender.
  ``run.py --full`` (PYSIM_BENCH_FULL=1) times every contender on all rows with all rounds.

GFLOP/s counts 2*m*n*d (one multiply-add per element pair; for mahalanobis the pairwise part
only); GB/s counts the n*d*4 bytes of the big operand (for the one-query case).
"""

from __future__ import annotations

import concurrent.futures
import functools
import time

import numpy as np
import pytest
from _common import (
    adaptive_rounds,
    full,
    limit_threads,
    peer,
    record,
    rounds,
    settle_threads,
    threads,
)

import pysim
from pysim import _core

CASES = [(1000, 10000, 128), (1000, 10000, 768), (1, 1000000, 128), (10000, 10000, 16)]
MAHALANOBIS_CASE = (1000, 10000, 128)
ISA_CASE = (1000, 10000, 128)
METRICS = ["sqeuclidean", "cosine", "ip", "dot"]
CONTENDERS = ["pysim", "numpy", "scipy", "sklearn", "faiss", "simsimd"]
THREADS = threads((2,))
CHECK_ROWS = 64
PYSIM_TOL, PEER_TOL = 1e-5, 1e-3
SLOW_CALL = 0.5  # seconds: above this (quick run only) a contender is timed on fewer rows


def case_id(case: tuple[int, int, int]) -> str:
    return "x".join(str(v) for v in case)


def group(title: str, t: int) -> str:
    """Benchmark group; the thread count joins the title only when several are compared."""
    return title if len(THREADS) == 1 else f"{title} t={t}"


@functools.lru_cache(maxsize=1)
def operands(case: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Seeded standard-normal float32 operands (one case in memory at a time)."""
    m, n, d = case
    rng = np.random.default_rng(20240 + d)
    X = rng.standard_normal((m, d), dtype=np.float32)
    Y = rng.standard_normal((n, d), dtype=np.float32)
    return X, Y


# --------------------------------------------------------------------------------------------
# Reference and check
# --------------------------------------------------------------------------------------------


def _terms(X: np.ndarray, Y: np.ndarray):
    """float64 norms and products of the first CHECK_ROWS rows of X against all of Y."""
    A, B = X[:CHECK_ROWS].astype(np.float64), Y.astype(np.float64)
    return np.linalg.norm(A, axis=1)[:, None], np.linalg.norm(B, axis=1)[None, :], A @ B.T


@functools.lru_cache(maxsize=1)
def _case_terms(case: tuple[int, int, int]):
    """:func:`_terms` of one case's operands, computed once for all its metrics and peers."""
    return _terms(*operands(case))


def reference(terms, metric: str, rows: int):
    """float64 result on the first ``rows`` rows, and the magnitude of its terms (the unit of
    the relative error)."""
    na, nb, dots = terms
    na, dots = na[:rows], dots[:rows]
    if metric in ("sqeuclidean", "euclidean"):
        # float64 cancellation error (~1e-16 of the norms) is far below the tolerances.
        return np.maximum(na**2 + nb**2 - 2 * dots, 0), na**2 + nb**2 + 1e-300
    if metric == "dot":
        return dots, na * nb + 1e-300
    if metric == "ip":
        return 1.0 - dots, na * nb + 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dots / (na * nb), 0.0)
    return 1.0 - cos, np.ones_like(dots)


def check(contender: str, out, X: np.ndarray, Y: np.ndarray, metric: str, L=None) -> float:
    """Max error relative to the norms on the first rows; fail the benchmark if too large.

    ``X``, ``Y`` are one case's full operands (their float64 terms are cached per case);
    ``out`` may hold fewer rows (a slow peer timed on a subset).
    """
    rows = min(len(out), CHECK_ROWS)
    got = np.asarray(out)[:rows].astype(np.float64)
    if L is not None:  # mahalanobis: Euclidean distance between rows mapped by the factor
        ref, scale = reference(
            _terms(X[:rows].astype(np.float64) @ L, Y.astype(np.float64) @ L), "sqeuclidean", rows
        )
        ref, scale = np.sqrt(ref), np.sqrt(scale)
    else:
        ref, scale = reference(_case_terms((len(X), len(Y), X.shape[1])), metric, rows)
    if got.shape != ref.shape:
        pytest.fail(f"{contender}: output shape {got.shape}, expected {ref.shape}")
    err = float(np.max(np.abs(got - ref) / scale)) if got.size else 0.0
    tol = PYSIM_TOL if contender.startswith("pysim") else PEER_TOL
    if not err <= tol:  # also catches NaN
        pytest.fail(f"{contender} differs from the float64 reference: {err:.3g} > {tol:g}")
    return err


# --------------------------------------------------------------------------------------------
# Contenders: name -> function (X, Y) -> result, built for one metric and thread count
# --------------------------------------------------------------------------------------------


def _skip(reason: str):
    print(f"skipped: {reason}")
    pytest.skip(reason)


def _split_rows(fn, Y: np.ndarray, t: int, pool) -> np.ndarray:
    """Run a single-threaded one-to-many kernel on t slices of Y (faiss releases the GIL)."""
    bounds = np.linspace(0, len(Y), t + 1).astype(int)
    slices = zip(bounds[:-1], bounds[1:], strict=True)
    parts = list(pool.map(lambda ab: fn(Y[ab[0] : ab[1]]), slices))
    return np.concatenate(parts)[None, :]


def numpy_formula(metric: str):
    def run(X, Y):
        if metric == "sqeuclidean":  # |x|^2 + |y|^2 - 2 X Y^T, in place like a careful user
            D = X @ Y.T
            D *= -2
            D += np.einsum("ij,ij->i", X, X)[:, None]
            D += np.einsum("ij,ij->i", Y, Y)[None, :]
            return D
        if metric == "cosine":
            Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
            Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
            D = Xn @ Yn.T
            return np.subtract(1, D, out=D)
        D = X @ Y.T
        return D if metric == "dot" else np.subtract(1, D, out=D)

    return run


def make(contender: str, metric: str, t: int, pool):
    """The callable for one contender, or a printed skip when it cannot run this metric."""
    if contender == "pysim":
        if metric == "dot":
            return lambda X, Y: pysim.dot(X, Y, threads=t)
        return lambda X, Y: pysim.cdist(X, Y, metric, threads=t)
    if contender == "numpy":
        return numpy_formula(metric)
    if contender == "scipy":
        if metric not in ("sqeuclidean", "cosine"):
            _skip(f"scipy.spatial.distance.cdist has no {metric!r} metric")
        dist = peer("scipy.spatial.distance")
        return lambda X, Y: dist.cdist(X, Y, metric)
    if contender == "sklearn":
        pw = peer("sklearn.metrics.pairwise")
        if metric == "sqeuclidean":
            return lambda X, Y: pw.pairwise_distances(X, Y, metric="euclidean", squared=True)
        if metric == "cosine":
            return lambda X, Y: pw.pairwise_distances(X, Y, metric="cosine")
        if metric == "dot":
            return lambda X, Y: pw.linear_kernel(X, Y)
        _skip("scikit-learn has no inner-product distance (1 - linear_kernel is numpy's formula)")
    if contender == "faiss":
        faiss = peer("faiss")

        def run(X, Y):
            if len(X) == 1:  # faiss's SIMD one-to-many kernels, one slice of Y per thread
                x = np.ascontiguousarray(X[0])

                def one(Ys):
                    out = np.empty(len(Ys), np.float32)
                    ptr = faiss.swig_ptr
                    if metric == "sqeuclidean":
                        faiss.fvec_L2sqr_ny(ptr(out), ptr(x), ptr(Ys), X.shape[1], len(Ys))
                    else:
                        faiss.fvec_inner_products_ny(ptr(out), ptr(x), ptr(Ys), X.shape[1], len(Ys))
                        if metric == "cosine":
                            norms = np.empty(len(Ys), np.float32)
                            faiss.fvec_norms_L2(ptr(norms), ptr(Ys), X.shape[1], len(Ys))
                            out /= norms * np.linalg.norm(x)
                    return out

                D = _split_rows(one, Y, t, pool)
            elif metric == "sqeuclidean":
                return faiss.pairwise_distances(X, Y)
            else:
                if metric == "cosine":
                    X, Y = X.copy(), Y.copy()
                    faiss.normalize_L2(X)
                    faiss.normalize_L2(Y)
                # faiss's wrapper computes inner products with numpy's matmul.
                D = faiss.pairwise_distances(X, Y, faiss.METRIC_INNER_PRODUCT)
            return D if metric in ("dot", "sqeuclidean") else np.subtract(1, D, out=D)

        return run
    if contender == "simsimd":
        simsimd = peer("simsimd")
        name = {"ip": "dot"}.get(metric, metric)

        def run(X, Y):
            D = np.asarray(simsimd.cdist(X, Y, name, threads=t, out_dtype="float32"))
            return np.subtract(1, D, out=D) if metric == "ip" else D

        return run
    raise ValueError(contender)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def timed_rows(fn, X: np.ndarray, Y: np.ndarray) -> int:
    """All rows, or (quick run only, for a call estimated over 2 * SLOW_CALL) as many as fit in
    about SLOW_CALL / 2 seconds.

    The cost of a call is modelled as fixed + per-row (norms of Y, factorising VI and page
    faults are fixed), fitted on 64 and 256 rows after a warm-up call (first calls pay for
    thread-pool start-up); noise that makes the per-row cost look negative means "fast".
    """
    m = len(X)
    if full() or m <= 256:
        return m
    t0 = time.perf_counter()
    fn(X[:16], Y)
    t16 = time.perf_counter() - t0
    if t16 * m / 16 <= 2 * SLOW_CALL:  # even counting everything as per-row cost: fast
        return m
    if t16 > SLOW_CALL / 8:  # very slow per row (scipy's mahalanobis): no further probing
        return int(max(16, SLOW_CALL / 2 / t16 * 16 // 16 * 16))
    t64 = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        fn(X[:64], Y)
        t64 = min(t64, time.perf_counter() - t0)
    t0 = time.perf_counter()
    fn(X[:256], Y)
    per_row = max(0.0, (time.perf_counter() - t0 - t64) / 192)
    if t64 + per_row * (m - 64) <= 2 * SLOW_CALL:  # margin: a noisy probe keeps all rows
        return m
    rows = 64 + (SLOW_CALL / 2 - t64) / per_row if per_row > 0 else m
    return int(min(m, max(64, rows // 16 * 16)))


def run_timed(benchmark, contender: str, fn, X, Y, metric: str, t: int, *, L=None, **info):
    settle_threads()  # the previous contender's BLAS / OpenMP threads stop spinning first
    rows = timed_rows(fn, X, Y)
    Xr = X[:rows]
    t0 = time.perf_counter()
    out = fn(Xr, Y)  # warm-up call, also the one checked
    first = time.perf_counter() - t0
    err = check(contender, out, X, Y, metric, L)
    del out
    # The quick run sizes its rounds from the cost of a call, judged on a second call: the
    # warm-up also pays first touches of its output (a fresh 400 MB took 1.0 s on a VM, 24 ms
    # once touched) and thread start-up, and one slow warm-up left a contender a single round.
    t0 = time.perf_counter()
    fn(Xr, Y)
    per_call = min(first, time.perf_counter() - t0)
    benchmark.pedantic(fn, args=(Xr, Y), rounds=adaptive_rounds(per_call, 1.5), iterations=1)
    median = _median(benchmark, first)
    m, n, d = len(X), len(Y), X.shape[1]
    record(
        benchmark,
        contender=contender,
        metric=metric,
        case=case_id((m, n, d)),
        m=m,
        n=n,
        d=d,
        rows_timed=rows,
        threads=t,
        dtype="float32",
        max_rel_err=err,
        pairs_per_s=rows * n / median,
        gflops=2.0 * rows * n * d / median / 1e9,
        gbps=(n * d * 4 / median / 1e9) if m == 1 else None,
        **info,
    )


def _median(benchmark, fallback: float) -> float:
    """Median of the timed rounds (the warm-up time when run with --benchmark-disable)."""
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats is not None else fallback


def _params():
    # Ordered by case so each case's operands are generated once.
    for case in CASES:
        for metric in METRICS:
            for contender in CONTENDERS:
                for t in THREADS:
                    yield pytest.param(
                        case, metric, contender, t, id=f"{case_id(case)}-{metric}-{contender}-t{t}"
                    )


@pytest.fixture(scope="module")
def pool():
    with concurrent.futures.ThreadPoolExecutor(max(THREADS)) as ex:
        yield ex


@pytest.mark.parametrize(("case", "metric", "contender", "t"), list(_params()))
def test_kernel(benchmark, pool, case, metric, contender, t):
    """cdist (or dot) of one case and metric for one contender."""
    benchmark.group = group(f"{'dot' if metric == 'dot' else 'cdist'} {case_id(case)} {metric}", t)
    X, Y = operands(case)
    with limit_threads(t):
        fn = make(contender, metric, t, pool)
        if contender == "scipy":
            t_used = 1  # scipy's cdist has no threads
        else:
            t_used = t
        run_timed(
            benchmark,
            contender,
            fn,
            X,
            Y,
            metric,
            t_used,
            kernel="dot" if metric == "dot" else "cdist",
        )


@pytest.fixture(scope="module")
def mahalanobis_data():
    X, Y = operands(MAHALANOBIS_CASE)
    rng = np.random.default_rng(7)
    W = rng.standard_normal((4 * X.shape[1], X.shape[1]))
    VI = np.linalg.inv(np.cov(W, rowvar=False))  # a well-conditioned inverse covariance
    VI = (VI + VI.T) / 2
    L = np.linalg.cholesky(VI)  # VI = L L^T, so d(a, b) = |L^T (a - b)| = |(a - b) @ L|
    return X, Y, VI, L


@pytest.mark.parametrize("t", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("contender", ["pysim", "numpy", "scipy", "sklearn", "faiss", "simsimd"])
def test_mahalanobis(benchmark, mahalanobis_data, contender, t):
    """cdist mahalanobis: pysim vs numpy (factor, transform, BLAS formula) vs scipy."""
    X, Y, VI, L = mahalanobis_data
    benchmark.group = group(f"cdist {case_id(MAHALANOBIS_CASE)} mahalanobis", t)
    if contender in ("faiss", "simsimd"):
        _skip(f"{contender} has no mahalanobis cdist")
    if contender == "sklearn":
        _skip("sklearn pairwise_distances(metric='mahalanobis') calls scipy's cdist (timed)")
    with limit_threads(t):
        if contender == "pysim":

            def fn(A, B):
                return pysim.cdist(A, B, "mahalanobis", VI=VI, threads=t)
        elif contender == "numpy":

            def fn(A, B):
                Lf = np.linalg.cholesky(VI).astype(np.float32)
                D = numpy_formula("sqeuclidean")(A @ Lf, B @ Lf)
                np.maximum(D, 0, out=D)
                return np.sqrt(D, out=D)
        else:
            dist = peer("scipy.spatial.distance")

            def fn(A, B):
                return dist.cdist(A, B, "mahalanobis", VI=VI)

        run_timed(
            benchmark,
            contender,
            fn,
            X,
            Y,
            "mahalanobis",
            1 if contender == "scipy" else t,
            L=L,
            kernel="cdist",
        )


@pytest.fixture(scope="module")
def isa_restore():
    previous = pysim.simd_info()["isa"]
    yield
    _core._set_isa(previous)


@pytest.mark.parametrize("t", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("metric", ["sqeuclidean", "dot"])
@pytest.mark.parametrize("isa", _core._available_isas())
def test_isa(benchmark, isa_restore, isa, metric, t):
    """pysim forced to each instruction set this CPU has: the speed-up over scalar."""
    benchmark.group = group(f"isa {case_id(ISA_CASE)} {metric}", t)
    X, Y = operands(ISA_CASE)
    previous = pysim.simd_info()["isa"]
    assert _core._set_isa(isa)
    try:
        fn = make("pysim", metric, t, None)
        run_timed(benchmark, f"pysim-{isa}", fn, X, Y, metric, t, isa=isa, kernel="isa")
    finally:
        _core._set_isa(previous)


@pytest.mark.parametrize("t", [max(THREADS)], ids=lambda t: f"t{t}")
def test_read_bandwidth(benchmark, t):
    """Yardstick: t Python threads (2 by default) each sum a share of a 1 GB float32 array."""
    benchmark.group = "read bandwidth (yardstick)"
    nbytes = 1_000_000_000
    A = np.ones(nbytes // 4, np.float32)
    halves = np.array_split(A, t)
    with concurrent.futures.ThreadPoolExecutor(t) as ex:

        def read():
            return sum(ex.map(np.sum, halves))

        t0 = time.perf_counter()
        total = read()
        first = time.perf_counter() - t0
        assert abs(total - A.size) < 1e-3 * A.size  # the sums really read every element
        benchmark.pedantic(read, rounds=max(3, rounds()), iterations=1)
    median = _median(benchmark, first)
    record(
        benchmark,
        contender="yardstick",
        kernel="read",
        case="1 GB",
        threads=t,
        bytes=nbytes,
        gbps=nbytes / median / 1e9,
    )
