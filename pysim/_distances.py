"""Batched distances: cdist, dot, paired_distances and simd_info.

Thin wrappers: validate and convert (``_validation``), then call the dtype-specific kernel of
the compiled core, which releases the GIL and runs on the pool of ``threads`` threads.

Finiteness of the operands is checked where it is cheapest: when the output is smaller than
the inputs (one query against many rows), the kernels' own pass is the check (a NaN or inf in
any row makes its distance non-finite), and only then are the inputs scanned to name the
culprit; otherwise the small inputs are scanned first.
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
    check_finite_array,
    check_metric,
    dtype_suffix,
    mahalanobis_factor,
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
    limit = min(int(np.iinfo(np.intp).max), _physical_memory())
    if nbytes > limit:
        raise MemoryError(
            f"a ({m}, {n}) {dtype} output needs {nbytes / 2**30:.1f} GiB, more than this "
            f"machine's {limit / 2**30:.1f} GiB of memory"
        )


def _prepare_pair(XA: Any, XB: Any, metric: str | None, VI: Any, threads: int = 1):
    A, B = to_array(XA, "XA"), to_array(XB, "XB")
    dtype = result_dtype(A, B)
    A = as_matrix(A, "XA", dtype, check_finite=False)
    B = as_matrix(B, "XB", dtype, check_finite=False)
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"XA and XB must have the same number of columns, got {A.shape[1]} and {B.shape[1]}"
        )
    code = None
    if metric is not None:
        check_metric(metric)
        code = METRICS[metric]
        if metric == "mahalanobis":
            check_finite_array(A, "XA")
            check_finite_array(B, "XB")
            L = mahalanobis_factor(VI, A.shape[1], dtype)
            # Rows mapped through L with pysim's own kernels (A @ L.T == dot(A, L)); no BLAS.
            kernel = getattr(_core, "dot_" + dtype_suffix(dtype))
            A = kernel(A, L, threads)
            B = kernel(B, L, threads)
            code = METRICS["euclidean"]
        elif VI is not None:
            raise ValueError(f"VI is only used with metric='mahalanobis', not {metric!r}")
    return A, B, dtype, code


def _run_checked(A: np.ndarray, B: np.ndarray, output_size: int, run):
    """Run `run()` with the cheaper of the two finiteness checks (see module docstring)."""
    input_size = A.size + B.size
    if output_size >= input_size:
        check_finite_array(A, "XA")
        check_finite_array(B, "XB")
        return run()
    result = run()
    if not np.isfinite(result).all():
        check_finite_array(A, "XA")
        check_finite_array(B, "XB")
    return result


def _check_out(out: Any, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray | None:
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
    A, B, dtype, code = _prepare_pair(XA, XB, metric, VI, nthreads)
    shape = (A.shape[0], B.shape[0])
    out = _check_out(out, shape, dtype)
    if out is None:
        _check_out_size(*shape, dtype)
    kernel = getattr(_core, "cdist_" + dtype_suffix(dtype))
    return _run_checked(A, B, shape[0] * shape[1], lambda: kernel(A, B, code, nthreads, out))


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
    out = _check_out(out, shape, dtype)
    if out is None:
        _check_out_size(*shape, dtype)
    kernel = getattr(_core, "dot_" + dtype_suffix(dtype))
    return _run_checked(A, B, shape[0] * shape[1], lambda: kernel(A, B, nthreads, out))


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
    A, B, dtype, code = _prepare_pair(XA, XB, metric, VI, nthreads)
    if A.shape != B.shape:
        raise ValueError(f"XA and XB must have the same shape, got {A.shape} and {B.shape}")
    check_finite_array(A, "XA")
    check_finite_array(B, "XB")
    kernel = getattr(_core, "paired_" + dtype_suffix(dtype))
    return kernel(A, B, code, resolve_threads(threads))


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
