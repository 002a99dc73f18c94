"""Batched distances: cdist, dot, paired_distances and simd_info.

Thin wrappers: validate and convert (``_validation``), then call the dtype-specific kernel of
the compiled core, which releases the GIL and runs on the pool of ``threads`` threads.

Finiteness of the operands is checked where it is cheapest: when the output is smaller than
the inputs (one query against many rows), the kernels' own pass is the check (a NaN or inf in
any row makes its distance non-finite), and only then are the inputs scanned to name the
culprit; otherwise the small inputs are scanned first.

Magnitudes. Squares of float32 values beyond about 2**±63 under- or overflow, so Euclidean
distances of 1e-30-scale data came back 0 and of 1e19-scale data inf. Rows whose magnitude is
outside the safe range are scaled by a power of two (exact) before the kernels, and the
results scaled back (``np.ldexp``, exact up to the final rounding): the documented accuracy
then holds at every magnitude. The scan that finds the magnitude is the finiteness check.

``out=`` must not overlap an input (``np.shares_memory``): the kernels read the inputs while
they write the output, so ``dot(X, X, out=X)`` would compute from half-overwritten rows.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from . import _core
from ._validation import (
    METRICS,
    as_matrix,
    by_dtype,
    check_finite_array,
    finite_magnitude,
    rescaling_exponent,
    resolve_metric,
    resolve_threads,
    result_dtype,
    to_array,
)


@functools.lru_cache(maxsize=1)
def _physical_memory() -> int:
    """Bytes of memory this process may use (the largest output worth attempting): the RAM
    of the machine, or a smaller cgroup (container) limit; intp max if neither is known."""
    limit = int(np.iinfo(np.intp).max)
    try:
        limit = min(limit, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # Windows, or sysconf lacks the names
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                limit = min(limit, int(f.read().strip()))
        except (OSError, ValueError):  # absent, or "max" (no limit)
            pass
    return limit


def _check_out_size(m: int, n: int, dtype: np.dtype) -> None:
    # Refuse an output that cannot exist before anything is allocated: bigger than the
    # address space, or than the machine's RAM (under Linux overcommit such a malloc can
    # succeed, and the process is then killed while the kernels fill the pages).
    nbytes = m * n * dtype.itemsize
    if nbytes <= 1 << 26:
        return  # small outputs always fit; skips the memory lookup (cgroup file reads)
    limit = min(int(np.iinfo(np.intp).max), _physical_memory())
    if nbytes > limit:
        raise MemoryError(
            f"a ({m}, {n}) {dtype} output needs {nbytes / 2**30:.1f} GiB, more than this "
            f"machine's {limit / 2**30:.1f} GiB of memory"
        )


def _prepare_pair(XA: Any, XB: Any, metric: str | None, VI: Any):
    """Both operands canonical (shared dtype, C-contiguous, same width) and the metric
    resolved; mahalanobis rows come back mapped (finite inputs checked first)."""
    A, B = to_array(XA, "XA"), to_array(XB, "XB")
    dtype = result_dtype(A, B)
    A = as_matrix(A, "XA", dtype, check_finite=False)
    B = as_matrix(B, "XB", dtype, check_finite=False)
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"XA and XB must have the same number of columns, got {A.shape[1]} and {B.shape[1]}"
        )
    if metric is None:
        return A, B, dtype, None
    mapping = resolve_metric(metric, VI, A.shape[1])
    if mapping.L is not None:
        check_finite_array(A, "XA")
        check_finite_array(B, "XB")
        A = mapping.map_rows(A, dtype, "XA")
        B = mapping.map_rows(B, dtype, "XB")
    return A, B, dtype, mapping.core


#: Metrics whose value scales with the rows (d(2^e a, 2^e b) = 2^(p e) d(a, b)), by power p.
_SCALE_POWER = {METRICS["euclidean"]: 1, METRICS["sqeuclidean"]: 2}


def _rescaled(A: np.ndarray, B: np.ndarray, code: Any, magnitude: float, run):
    """run() on rows brought to magnitude ~1 by an exact power-of-two scaling when squares of
    values of `magnitude` would under- or overflow (float32 at 1e-30 or 1e19); results are
    scaled back exactly (np.ldexp), so they are the unscaled distances correctly rounded."""
    e = rescaling_exponent(magnitude, A.dtype) if code in _SCALE_POWER else 0
    if e == 0:
        return None
    result = run(np.ldexp(A, e), np.ldexp(B, e))
    with np.errstate(over="ignore", under="ignore"):  # correctly rounded to inf / 0
        return np.ldexp(result, -_SCALE_POWER[code] * e, out=result)


def _run_checked(A: np.ndarray, B: np.ndarray, output_size: int, code: Any, run):
    """run(A, B) with the cheaper of the two finiteness checks (see module docstring), on
    rescaled rows when the magnitudes need it."""
    if output_size >= A.size + B.size:
        magnitude = max(finite_magnitude(A, "XA"), finite_magnitude(B, "XB"))
        rescued = _rescaled(A, B, code, magnitude, run)
        return run(A, B) if rescued is None else rescued
    result = run(A, B)
    # The small side decides underflow: distances can only underflow where its rows are
    # tiny too (a normal-sized row is far from everything but its near-duplicates, whose
    # error is within the norm-relative bound); overflow shows as inf.
    tiny = code in _SCALE_POWER and rescaling_exponent(finite_magnitude(A, "XA"), A.dtype) > 0
    if tiny or not np.isfinite(result).all():
        # Name a NaN/inf culprit; or the distances over- or underflowed: rescale.
        magnitude = max(finite_magnitude(A, "XA"), finite_magnitude(B, "XB"))
        rescued = _rescaled(A, B, code, magnitude, lambda a, b: run(a, b).copy())
        if rescued is not None:
            result[...] = rescued
    return result


def _check_out(
    out: Any, shape: tuple[int, int], dtype: np.dtype, inputs: tuple[np.ndarray, ...]
) -> np.ndarray | None:
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"out must have dtype {dtype}, got {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    if any(np.shares_memory(out, x) for x in inputs):
        raise ValueError("out must not share memory with XA or XB (it would overwrite them)")
    return out


def cdist(
    XA: Any,
    XB: Any,
    metric: str = "sqeuclidean",
    *,
    VI: Any = None,
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Distances between every row of `XA` and every row of `XB`.

    Parameters
    ----------
    XA : array_like, shape (m, d) or (d,)
        First operand. float32 input computes in float32, anything else in float64.
    XB : array_like, shape (n, d) or (d,)
        Second operand, same number of columns.
    metric : {"sqeuclidean", "euclidean", "cosine", "ip", "mahalanobis"}, default="sqeuclidean"
        ``cosine`` is ``1 - a·b / (|a| |b|)`` (1 for a zero vector); ``ip`` is ``1 - a·b``.
    VI : array_like, shape (d, d), optional
        Symmetric positive semi-definite matrix, required for ``"mahalanobis"``.
    out : ndarray, shape (m, n), optional
        Destination; must be C-contiguous with exactly the result's shape and dtype.
    threads : int, optional
        Worker threads; None uses every core this process may run on.

    Returns
    -------
    ndarray, shape (m, n), float32 or float64
        ``out[i, j]`` is the distance between ``XA[i]`` and ``XB[j]``.

    Notes
    -----
    Accuracy: within 1e-5 (float32) / 1e-12 (float64) of a float64 reference, relative to
    ``|a|² + |b|²``, for d up to about 10⁵; the float32 sums are accumulated in float32, so
    the error grows like ``sqrt(d)`` beyond that (measured 8.8e-4 at d = 10⁷): pass float64
    input for longer vectors. Values of any magnitude are scaled by a power of two when
    their squares would under- or overflow, so 1e-30- or 1e19-scale data meets the same bound.

    Raises
    ------
    ValueError
        Unknown metric, mismatched columns, NaN/inf input, bad `VI` or `out`.
    TypeError
        Sparse or non-numeric input.
    MemoryError
        The output cannot be allocated.
    """
    nthreads = resolve_threads(threads)
    user_out = out
    A, B, dtype, code = _prepare_pair(XA, XB, metric, VI)
    shape = (A.shape[0], B.shape[0])
    out = _check_out(out, shape, dtype, (np.asarray(XA), np.asarray(XB)))
    if out is None:
        _check_out_size(*shape, dtype)
    kernel = by_dtype(dtype, _core.cdist_f32, _core.cdist_f64)
    result = _run_checked(
        A, B, shape[0] * shape[1], code, lambda a, b: kernel(a, b, code, nthreads, out)
    )
    if user_out is not None and result is not user_out:
        user_out[...] = result
        return user_out
    return result


def dot(
    XA: Any, XB: Any, *, out: np.ndarray | None = None, threads: int | None = None
) -> np.ndarray:
    """Raw inner products ``XA @ XB.T`` with pysim's kernels.

    Parameters
    ----------
    XA : array_like, shape (m, d) or (d,)
    XB : array_like, shape (n, d) or (d,)
    out : ndarray, shape (m, n), optional
        Destination with exactly the result's shape and dtype, C-contiguous.
    threads : int, optional
        Worker threads; None uses every core this process may run on.

    Returns
    -------
    ndarray, shape (m, n), float32 or float64
    """
    A, B, dtype, _ = _prepare_pair(XA, XB, None, None)
    nthreads = resolve_threads(threads)
    shape = (A.shape[0], B.shape[0])
    out = _check_out(out, shape, dtype, (np.asarray(XA), np.asarray(XB)))
    if out is None:
        _check_out_size(*shape, dtype)
    kernel = by_dtype(dtype, _core.dot_f32, _core.dot_f64)
    return _run_checked(A, B, shape[0] * shape[1], None, lambda a, b: kernel(a, b, nthreads, out))


def paired_distances(
    XA: Any,
    XB: Any,
    metric: str = "sqeuclidean",
    *,
    VI: Any = None,
    threads: int | None = None,
) -> np.ndarray:
    """Distance between row i of `XA` and row i of `XB`, for every i.

    Parameters
    ----------
    XA, XB : array_like, shape (m, d) or (d,)
        Operands of identical shape.
    metric : {"sqeuclidean", "euclidean", "cosine", "ip", "mahalanobis"}, default="sqeuclidean"
    VI : array_like, shape (d, d), optional
        Required for ``"mahalanobis"``.
    threads : int, optional

    Returns
    -------
    ndarray, shape (m,), float32 or float64
    """
    nthreads = resolve_threads(threads)
    A, B, dtype, code = _prepare_pair(XA, XB, metric, VI)
    if A.shape != B.shape:
        raise ValueError(f"XA and XB must have the same shape, got {A.shape} and {B.shape}")
    magnitude = max(finite_magnitude(A, "XA"), finite_magnitude(B, "XB"))
    kernel = by_dtype(dtype, _core.paired_f32, _core.paired_f64)

    def run(a, b):
        return kernel(a, b, code, nthreads)

    rescued = _rescaled(A, B, code, magnitude, run)
    return run(A, B) if rescued is None else rescued


def simd_info() -> dict[str, Any]:
    """Which instruction set pysim's kernels run on.

    Returns
    -------
    dict
        ``isa`` (the active level: "scalar", "avx2", "avx512", "avx512_vnni",
        "avx512_vnni_bf16" or "neon"), ``detected`` (the best level this CPU runs),
        ``compiled`` and ``available`` (lists of levels), ``requested`` (the ``PYSIM_SIMD``
        value or None), ``override`` (why a request was not honoured, or None) and
        ``kernels`` (kernel name -> level; the compressed-vector kernels of quantized
        indexes are listed too, e.g. ``u8_dot_i8``).
    """
    return _core.simd_info()
