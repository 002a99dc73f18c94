"""Input validation and conversion shared by every public function and index.

Everything a user can get wrong is checked here, once, with a message that names the argument
and says what was expected; the compiled core only re-checks shapes defensively. Conversions
follow the contract: float32 stays float32, float64 stays float64, anything else numeric
computes in float64; C-contiguous input of the right dtype is used without a copy.

This module imports numpy and the compiled core only (never scikit-learn), so that
``import pysim`` stays light.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass
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
    if type(x) is np.ndarray:  # the common case: no sparse check, no conversion
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        return x
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
    flags = x.flags
    if not (x.dtype == dtype and flags.c_contiguous and flags.aligned):
        x = np.require(x, dtype, ["C", "A"])  # (np.require alone costs ~10 us even as a no-op)
    if check_finite:
        check_finite_array(x, name)
    return x


def check_finite_array(x: np.ndarray, name: str) -> None:
    """Raise ValueError if `x` holds NaN or infinity."""
    finite_magnitude(x, name)


def finite_magnitude(x: np.ndarray, name: str) -> float:
    """``max |x|`` (0.0 when empty); ValueError naming `name` if `x` holds NaN or infinity.

    Two reductions (min and max; NaN propagates through both) instead of ``isfinite(x).all()``:
    no temporary the size of `x`, and the magnitude comes for free.
    """
    if x.size == 0:
        return 0.0
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinity")
    return max(-lo, hi)


#: Largest |binary exponent| of values whose squares and sums of squares (up to 2**24 terms)
#: stay normal numbers in the dtype: float32 squares range over 2**-126 .. 2**128.
_SAFE_EXPONENT = {np.dtype(np.float32): 30, np.dtype(np.float64): 250}


def rescaling_exponent(max_abs: float, dtype: np.dtype | type) -> int:
    """Power of two ``e`` that brings values of magnitude `max_abs` to about 1 when their
    squared distances would under- or overflow `dtype` (float32 data at 1e-30 or 1e19);
    0 when they are safe as they are.

    Scaling by ``2**e`` is exact, so distances computed on scaled rows and scaled back with
    ``np.ldexp`` are the unscaled ones, correctly rounded.
    """
    if max_abs == 0.0:
        return 0
    exponent = math.frexp(max_abs)[1]
    limit = _SAFE_EXPONENT[np.dtype(dtype)]
    return 0 if -limit <= exponent <= limit else -exponent


def check_safe_magnitude(x: np.ndarray, name: str, dtype: np.dtype | type) -> float:
    """``max |x|`` of finite values whose squared distances neither over- nor underflow
    `dtype` (:func:`rescaling_exponent` 0); ValueError naming `name` otherwise.

    For arrays an index stores after its own rescaling (a loaded file's points): a value
    outside that range was never written by pysim and would make distances inf or 0.
    """
    magnitude = finite_magnitude(x, name)
    if rescaling_exponent(magnitude, dtype):
        raise ValueError(
            f"{name} has values of magnitude {magnitude:.3g}, outside what {np.dtype(dtype)} "
            "distances hold without rescaling"
        )
    return magnitude


def check_row_norms(rows: np.ndarray, name: str, lo: float, hi: float) -> None:
    """Every row's Euclidean norm is 0 or in [lo, hi]; ValueError naming `name` otherwise.

    For stored vectors that must be unit length up to their encoding's error (cosine).
    Norms are computed in float64, a block of rows at a time (no (n, d) float64 copy).
    """
    for start in range(0, len(rows), 1 << 14):
        block = np.asarray(rows[start : start + (1 << 14)], dtype=np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        bad = (norms != 0) & ~((norms >= lo) & (norms <= hi))
        if bad.any():
            row = start + int(np.argmax(bad))
            raise ValueError(
                f"{name} row {row} has norm {norms[row - start]:.6g}; stored vectors of this "
                f"metric have norm 0 or within [{lo:.6g}, {hi:.6g}]"
            )


def check_factor(L: np.ndarray, VI: np.ndarray, name: str = "L") -> None:
    """``L.T @ L`` reproduces `VI` (both float64 (d, d), finite) up to the rounding of the
    factorisation that produced L; ValueError naming `name` otherwise.

    The tolerance covers :func:`mahalanobis_factor`'s Cholesky and clipped eigendecomposition
    paths and the symmetrisation of a nearly symmetric VI (relative 1e-7), scaled by
    ``max |VI|``: a factor that was changed, or VI that was, is off by far more.
    """
    if L.shape != VI.shape or L.ndim != 2 or L.shape[0] != L.shape[1]:
        raise ValueError(f"{name} has shape {L.shape}, VI {VI.shape}: not a factor of VI")
    if not (np.isfinite(L).all() and np.isfinite(VI).all()):
        raise ValueError(f"{name} or VI contains NaN or infinity")
    dim = L.shape[0]
    scale = max(float(np.abs(VI).max()) if VI.size else 0.0, np.finfo(np.float64).tiny)
    with serial_blas():
        err = float(np.abs(L.T @ L - VI).max()) if VI.size else 0.0
    if not err <= scale * max(1e-6, 1e-10 * dim * dim):
        raise ValueError(
            f"{name} is not a factor of VI (max |{name}.T @ {name} - VI| = {err:.3g}, "
            f"max |VI| = {scale:.3g})"
        )


def check_int(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    """An integer (not a bool) in [lo, hi]; TypeError or ValueError naming `name` otherwise.

    The one integer validator: every count, size, seed and bound a user passes goes through
    it, so a value beyond what the core's C types hold is refused here with its name instead
    of surfacing as pybind's "incompatible function arguments".
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise TypeError(f"{name} must be an integer {bound}, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_flag(value: Any, name: str) -> bool:
    """True or False (numpy bools included); TypeError naming `name` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


#: Largest k (and ef) a search accepts: the core counts them in 32-bit integers.
MAX_K = 2**31 - 1
#: Most threads one call starts (the pool keeps them): far above any core count, far below
#: the thousands of OS threads a typo like threads=10**6 would otherwise leave behind.
MAX_THREADS = 256


def check_k(k: Any, name: str = "k") -> int:
    """k must be an integer in [1, MAX_K]."""
    return check_int(k, name, 1, MAX_K)


def resolve_threads(threads: Any) -> int:
    """None -> every core this process may run on; otherwise an integer in [1, MAX_THREADS].

    Values above MAX_THREADS are refused (not clipped): asking for more threads than any
    machine has cores is a mistake worth saying.
    """
    if threads is None:
        try:
            return min(MAX_THREADS, max(1, len(os.sched_getaffinity(0))))
        except AttributeError:  # macOS, Windows
            return min(MAX_THREADS, os.cpu_count() or 1)
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise ValueError(f"threads must be None or a positive integer, got {threads!r}")
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be None or an integer in [1, {MAX_THREADS}], got {threads}")
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
    with serial_blas():
        return _factor(sym, dim, dtype)


def serial_blas() -> contextlib.AbstractContextManager:
    """One BLAS thread inside the block: for small factorisations and products, OpenBLAS's
    threaded potrf/syevd on a d x d matrix costs ~0.2 s on a busy machine instead of ~1 ms
    (and competes with pysim's own pool)."""
    global _blas_controller, _blas_stamp
    try:
        from threadpoolctl import ThreadpoolController  # installed with scikit-learn
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return contextlib.nullcontext()
    # threadpool_limits() scans the process's loaded libraries on every call (reading
    # /proc/self/maps: ~7-20 ms, more than a whole closed-form fit); the controller is kept
    # and rescanned only when the process may have loaded another BLAS since: when the
    # dynamic loader's count of loaded objects changed (glibc's dlpi_adds, a few µs to
    # read), or, where that count is unavailable, when a module was imported.
    stamp = _loaded_objects_stamp()
    if _blas_controller is None or _blas_stamp != stamp:
        _blas_controller = ThreadpoolController()
        _blas_stamp = stamp
    return _blas_controller.limit(limits=1, user_api="blas")


_blas_controller: Any = None
_blas_stamp: Any = None
_dl_reader: Any = None


def _loaded_objects_stamp() -> tuple[str, int]:
    """A value that changes whenever a shared library may have been loaded or unloaded:
    ("dl", adds + subs) from ``dl_iterate_phdr`` where the C library reports them (glibc,
    musl), else ("modules", len(sys.modules))."""
    global _dl_reader
    if _dl_reader is None:
        _dl_reader = _make_dl_reader() or False
    if _dl_reader:
        count = _dl_reader()
        if count is not None:
            return ("dl", count)
    return ("modules", len(sys.modules))


def _make_dl_reader() -> Any:
    """A callable returning the loader's adds + subs counters, or None if not available."""
    try:
        import ctypes

        class _PhdrInfo(ctypes.Structure):
            _fields_ = [
                ("addr", ctypes.c_void_p),
                ("name", ctypes.c_char_p),
                ("phdr", ctypes.c_void_p),
                ("phnum", ctypes.c_uint16),
                ("adds", ctypes.c_ulonglong),
                ("subs", ctypes.c_ulonglong),
            ]

        libc = ctypes.CDLL(None)
        iterate = libc.dl_iterate_phdr
    except (ImportError, OSError, AttributeError):  # pragma: no cover - non-ELF platforms
        return None
    callback_t = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(_PhdrInfo), ctypes.c_size_t, ctypes.c_void_p
    )
    iterate.argtypes = [callback_t, ctypes.c_void_p]
    iterate.restype = ctypes.c_int
    seen: list[int | None] = [None]
    # The counters are in the struct only when the loader says it is that large.
    needed = _PhdrInfo.subs.offset + ctypes.sizeof(ctypes.c_ulonglong)

    def first(info, size, _data):
        seen[0] = int(info[0].adds + info[0].subs) if size >= needed else None
        return 1  # every entry carries the same counters: stop at the first

    callback = callback_t(first)

    def read() -> int | None:
        seen[0] = None
        iterate(callback, None)
        return seen[0]

    return read


def _factor(sym: np.ndarray, dim: int, dtype: np.dtype | type) -> np.ndarray:
    try:
        # Positive definite (the usual case): Cholesky VI = C Cᵀ, so L = Cᵀ. Much cheaper than an
        # eigendecomposition, which matters when VI changes often (metric learning).
        C = np.linalg.cholesky(sym)
        if np.isfinite(C).all():
            return np.require(C.T, dtype, ["C", "A"])
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
    return np.require(L, dtype, ["C", "A"])


@dataclass(frozen=True)
class MetricMapping:
    """A metric resolved once for everything that computes it: ``core`` is what the kernels
    compute, and rows reach them through :meth:`map_rows`.

    Mahalanobis with ``VI = Lᵀ L`` is the Euclidean distance between ``L a`` and ``L b``:
    rows are mapped in float64 (pysim's float64 product kernel) and rounded once to the
    storage dtype, identically for ``cdist``, ``paired_distances``, every index and the
    estimators, so they all rank the same mapped rows. Other metrics map rows to themselves.
    """

    name: str
    core: Any
    L: np.ndarray | None = None

    def map_rows(self, X: np.ndarray, dtype: np.dtype | type, name: str) -> np.ndarray:
        """`X` (finite, 2-D) as the kernels see it, C-contiguous in `dtype`."""
        if self.L is None:
            return np.require(X, dtype, ["C", "A"])
        X64 = np.require(X, np.float64, ["C", "A"])
        # L @ X.T, with L (fixed shape) as the left operand: each mapped row then gets the
        # same arithmetic whatever the batch it arrives in (a row added alone maps exactly
        # as it does inside a bigger matrix, which X @ L.T does not guarantee).
        mapped = _core.dot_f64(self.L, X64, resolve_threads(None), None)
        with np.errstate(over="ignore"):  # reported below, naming the argument
            out = np.require(mapped.T, dtype, ["C", "A"])
        if not np.isfinite(out).all():
            raise ValueError(
                f"{name} mapped by the factor of VI has values too large for {np.dtype(dtype)}"
            )
        return out


def resolve_metric(
    metric: Any, VI: Any, dim: int, *, allowed: tuple[str, ...] | None = None
) -> MetricMapping:
    """The one metric resolver: name checked (against `allowed`), `VI` factored for
    "mahalanobis" (and refused for every other metric)."""
    metric = check_metric(metric, allowed)
    if metric == "mahalanobis":
        return MetricMapping(metric, METRICS["euclidean"], mahalanobis_factor(VI, dim, np.float64))
    if VI is not None:
        raise ValueError(f"VI is only used with metric='mahalanobis', not {metric!r}")
    return MetricMapping(metric, METRICS[metric])


def by_dtype(dtype: np.dtype | type, f32: Any, f64: Any) -> Any:
    """The float32 or float64 variant of a compiled function or class."""
    return f32 if np.dtype(dtype) == np.float32 else f64
