"""Input validation and conversion shared by every public function and index.

Everything a user can get wrong is checked here, once, with a message that names the argument
and says what was expected; the compiled core only re-checks shapes defensively. Conversions
follow the contract: float32 stays float32, float64 stays float64, anything else numeric
computes in float64; C-contiguous input of the right dtype is used without a copy.

This module imports numpy and the compiled core only (never scikit-learn), so that
``import pysim`` stays light.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _core

METRICS: dict[str, Any] = {
    "sqeuclidean": _core.Metric.sqeuclidean,
    "euclidean": _core.Metric.euclidean,
    "cosine": _core.Metric.cosine,
    "ip": _core.Metric.ip,
    "mahalanobis": _core.Metric.mahalanobis,
}


def check_metric(metric: Any, allowed: tuple[str, ...] | None = None) -> str:
    """Return the metric name if it is known (and among `allowed`), else raise ValueError."""
    names = tuple(METRICS) if allowed is None else allowed
    if not isinstance(metric, str) or metric not in names:
        raise ValueError(f"metric must be one of {', '.join(map(repr, names))}; got {metric!r}")
    return metric


def to_array(x: Any, name: str) -> np.ndarray:
    """``np.asarray`` that refuses sparse matrices and non-numeric data with a TypeError."""
    if hasattr(x, "tocsr") or type(x).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix; pysim needs dense input (use .toarray())")
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like with numeric values: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def result_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32 only if every input is float32; anything else computes in float64."""
    if arrays and all(a.dtype == np.float32 for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_matrix(
    x: np.ndarray, name: str, dtype: np.dtype | type, *, check_finite: bool = True
) -> np.ndarray:
    """Return `x` as a C-contiguous 2-D array of `dtype`; a 1-D array becomes one row.

    Copies only when the dtype or layout must change.
    """
    if x.ndim == 1:
        x = x.reshape(1, -1)
    elif x.ndim != 2:
        raise ValueError(f"{name} must be a 1-D or 2-D array, got an array of shape {x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=dtype)
    if check_finite:
        check_finite_array(x, name)
    return x


def check_finite_array(x: np.ndarray, name: str) -> None:
    """Raise ValueError if `x` holds NaN or infinity."""
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinity")


def check_k(k: Any, name: str = "k") -> int:
    """k must be an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    return int(k)


def resolve_threads(threads: Any) -> int:
    """None -> every core this process may run on; otherwise a positive integer."""
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # macOS, Windows
            return os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be None or a positive integer, got {threads!r}")
    return int(threads)


def mahalanobis_factor(VI: Any, dim: int, dtype: np.dtype | type) -> np.ndarray:
    """Factor VI = Lᵀ L for a symmetric positive semi-definite VI; return L (dim, dim).

    Mahalanobis distance between a and b is then the Euclidean distance between L a and L b,
    so rows are mapped once (``X @ L.T``) and the Euclidean kernels do the rest.
    """
    if VI is None:
        raise ValueError("VI is required for metric='mahalanobis' (a d x d PSD matrix)")
    vi = to_array(VI, "VI").astype(np.float64, copy=False)
    if vi.ndim != 2 or vi.shape != (dim, dim):
        raise ValueError(f"VI must have shape ({dim}, {dim}), got {vi.shape}")
    if not np.isfinite(vi).all():
        raise ValueError("VI contains NaN or infinity")
    scale = max(float(np.abs(vi).max()), np.finfo(np.float64).tiny)
    if not np.allclose(vi, vi.T, rtol=1e-7, atol=1e-10 * scale):
        raise ValueError("VI must be symmetric")
    sym = (vi + vi.T) / 2
    with _serial_blas():
        return _factor(sym, dim, dtype)


def _serial_blas():
    """One BLAS thread for the small factorisations: OpenBLAS's threaded potrf/syevd on a
    d x d matrix costs ~0.2 s on a busy machine instead of ~1 ms."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _factor(sym: np.ndarray, dim: int, dtype: np.dtype | type) -> np.ndarray:
    try:
        # Positive definite (the usual case): Cholesky VI = C Cᵀ, so L = Cᵀ. Much cheaper than an
        # eigendecomposition, which matters when VI changes often (metric learning).
        C = np.linalg.cholesky(sym)
        if np.isfinite(C).all():
            return np.ascontiguousarray(C.T, dtype=dtype)
    except np.linalg.LinAlgError:
        pass
    # Semi-definite (or not PSD at all): eigendecomposition, clipping round-off negatives.
    w, v = np.linalg.eigh(sym)
    tol = 1e-10 * max(float(np.abs(w).max()), np.finfo(np.float64).tiny) * dim
    if w.min() < -tol:
        raise ValueError(
            f"VI must be positive semi-definite; its smallest eigenvalue is {w.min():.3g}"
        )
    L = np.sqrt(np.clip(w, 0.0, None))[:, None] * v.T
    return np.ascontiguousarray(L, dtype=dtype)


def dtype_suffix(dtype: np.dtype) -> str:
    return "f32" if dtype == np.float32 else "f64"
