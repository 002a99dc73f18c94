"""Local Fisher Discriminant Analysis (Sugiyama, JMLR 2007).

LFDA is Fisher's discriminant with pairwise weights that keep only *local* structure: the
affinity of two points of one class is ``A_ij = exp(-||x_i - x_j||² / (σ_i σ_j))`` with
σ_i the distance from x_i to its k-th nearest same-class neighbour (local scaling), and

    S_w = ½ Σ_ij W^w_ij (x_i - x_j)(x_i - x_j)ᵀ,   W^w_ij = A_ij / n_c           (same class)
    S_b = ½ Σ_ij W^b_ij (x_i - x_j)(x_i - x_j)ᵀ,   W^b_ij = A_ij (1/n - 1/n_c)   (same class)
                                                            1/n                  (otherwise).

The "otherwise" part of S_b over all n² pairs is the total scatter minus its same-class part,
so every sum runs over same-class pairs only, and those one row block of a class at a time
(``Σ_ij W_ij (x_i - x_j)(x_i - x_j)ᵀ = 2 Xᵀ (diag(W 1) - W) X`` for a symmetric W): memory is
O(block x class size) (a class of up to 1,024 rows is one block), never n² (metric-learn
builds the n x n affinity). The projection solves ``S_b v = λ S_w v`` (scipy's generalised
eigh); S_w gets a ridge of 1e-10 of its trace so duplicated or constant features do not make
it singular.
"""

from __future__ import annotations

import threading
from numbers import Integral
from typing import Any

import numpy as np
import scipy.linalg
import scipy.linalg.blas
from sklearn.utils._param_validation import Interval, StrOptions

from .._distances import cdist
from .._validation import resolve_threads, serial_blas
from ._base import (
    SupervisedMahalanobisMixin,
    block_rows,
    check_labelled,
    check_n_components,
    run_tasks,
    shifted_exp_rows,
)

#: A class up to this size is one row block (its distance matrix at most 8 MiB), so its distances
#: are computed once; a class in several blocks computes them twice (once for the local scales,
#: which need whole rows, once for the affinities, which need every scale).
_WHOLE_CLASS_ROWS = 1024


def _block(nc: int) -> int:
    """Rows per block of a class of nc rows."""
    return nc if nc <= _WHOLE_CLASS_ROWS else min(nc, block_rows(nc))


# Walks the classes and their row blocks as _base.same_class_neighbors does (duplicates pairs the
# loops), but needs every in-class distance for the affinities, not only the neighbours' ids, so it
# keeps its own loop.
def _class_scatters(
    Xc: np.ndarray, n: int, k: int, scratch: _Scratch
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One class's share of LFDA's scatters: (its S_w part, its S_b same-class part, its
    scatter n_c S_c). A class that fits one row block computes its distances once (the
    local scales and the affinities read the same matrix).

    Everything runs on the class centred, Z = Xc - mean: distances do not depend on the
    origin, nor does ``Zᵀ (diag(W1) - W) Z`` (the rows of diag(W1) - W sum to 0), and the
    kernel's distances ``|a|² + |b|² - 2 a·b`` then round relative to the class's spread
    instead of its offset from the origin.
    """
    nc, d = Xc.shape
    kk = min(k, nc - 1)
    rows = _block(nc)
    Z = Xc - Xc.mean(axis=0)
    ZtZ = Z.T @ Z
    sigma = np.empty(nc)
    D = None
    for b in range(0, nc, rows):
        D, P = scratch.matrices(min(rows, nc - b), nc)
        _sq_distances(Z, b, D)
        np.copyto(P, D)
        P.partition(kk, axis=1)
        sigma[b : b + rows] = np.sqrt(P[:, kk])
    sigma = np.maximum(sigma, 1e-12 * max(1.0, float(sigma.max(initial=0.0))))
    inv = 1.0 / sigma
    zero_shift = np.zeros(nc)
    Sw = np.zeros((d, d))
    Sb_same = np.zeros((d, d))
    for b in range(0, nc, rows):
        if rows < nc or D is None:
            D = _sq_distances(Z, b, scratch.matrices(min(rows, nc - b), nc)[0])
        # A = exp(-D / (σ_i σ_j)), in place (the distances are not needed again); every row
        # holds A_ii = 1, so the exponentials below -708 that come out as 0 change no sum.
        D *= -inv[b : b + rows, None]
        D *= inv
        A = shifted_exp_rows(D, zero_shift[: len(D)])
        # ½ Σ_ij W_ij Δ Δᵀ over this block's rows i (W symmetric): Zᵢᵀ(rowsum Zᵢ - W Z),
        # summed over blocks gives Zᵀ(diag(W1) - W)Z.
        ZB = Z[b : b + rows]
        deg = A.sum(axis=1)
        if len(ZB) == nc:
            part = (ZB.T * deg) @ ZB - _sandwich(A, Z, ZtZ)
        else:
            part = ZB.T @ (deg[:, None] * ZB - A @ Z)
        Sw += part / nc
        Sb_same += part * (1.0 / n - 1.0 / nc)
        D = None
    return Sw, Sb_same, nc * ZtZ


def _sandwich(A: np.ndarray, Z: np.ndarray, ZtZ: np.ndarray) -> np.ndarray:
    """``Zᵀ A Z`` for a symmetric A with unit diagonal (a whole class's affinities), from A's
    lower triangle: with ``T = (L + I) Z`` (L the strict lower part; one triangular BLAS
    product, half the multiply-adds of ``A @ Z``), ``Zᵀ A Z = Zᵀ T + Tᵀ Z - Zᵀ Z``."""
    # A is C-ordered; its transpose is the Fortran-ordered view BLAS takes without a copy (the
    # same matrix: A is symmetric up to the rounding of its two triangles). scipy's wrapper
    # holds the GIL for the call (~0.4 ms on a 571-row class; the other classes' threads
    # stop at their next Python step meanwhile); numpy matmuls on A's lower blocks release
    # it but do 5/8 of the full product with 4 blocks: 564 against 437 us here.
    T = scipy.linalg.blas.dtrmm(1.0, A.T, np.asfortranarray(Z), lower=1, diag=1)
    ZtT = Z.T @ T
    return ZtT + ZtT.T - ZtZ


def _sq_distances(Z: np.ndarray, b: int, out: np.ndarray) -> np.ndarray:
    """Squared distances of rows b:b+len(out) of Z to every row, into `out` (pysim's kernel,
    serial: the classes run in parallel), with the self-distances exactly 0."""
    m = len(out)
    cdist(Z[b : b + m], Z, "sqeuclidean", threads=1, out=out)
    out[np.arange(m), np.arange(b, b + m)] = 0.0
    return out


class _Scratch(threading.local):
    """Each thread's two work matrices (distances, and their copy that the partition
    reorders) for one local_scatters call: made at its first class, reused for the next.
    A fresh 2-3 MiB array per class page-faults as it is first written, which was about a
    third of a first fit on MNIST-PCA50."""

    def __init__(self, size: int):
        self.size = size
        self.buffers: tuple[np.ndarray, np.ndarray] | None = None

    def matrices(self, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        if self.buffers is None:
            self.buffers = (np.empty(self.size), np.empty(self.size))
        return tuple(buf[: rows * cols].reshape(rows, cols) for buf in self.buffers)


def local_scatters(
    X: np.ndarray, starts: np.ndarray, k: int, threads: int | None = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(S_w, S_b) of LFDA for class-sorted X (class c = rows starts[c]:starts[c+1]).

    The classes are independent: `threads` workers take them from a shared counter
    (``run_tasks``; serial BLAS and kernels inside each), and their parts are summed in
    class order, so the result is the same bits at any thread count.
    """
    n, d = X.shape
    n_classes = len(starts) - 1
    sizes = np.diff(starts)
    scratch = _Scratch(max(_block(int(m)) * int(m) for m in sizes))
    parts = run_tasks(
        lambda c: _class_scatters(X[int(starts[c]) : int(starts[c + 1])], n, k, scratch),
        n_classes,
        resolve_threads(threads),
    )
    Sw = np.zeros((d, d))
    Sb_same = np.zeros((d, d))
    same_total = np.zeros((d, d))
    for w_part, b_part, scatter in parts:
        Sw += w_part
        Sb_same += b_part
        same_total += scatter
    Xm = X - X.mean(axis=0)
    St = Xm.T @ Xm
    # Same-class pairs counted 1/n in St are re-weighted to A(1/n - 1/nc) (Sb_same); remove
    # their 1/n share: ½ Σ_same (1/n) ΔΔᵀ = (1/n) Σ_c n_c S_c, S_c the class scatter.
    Sb = St - same_total / n + Sb_same
    return (Sw + Sw.T) / 2, (Sb + Sb.T) / 2


class LFDA(SupervisedMahalanobisMixin):
    """Local Fisher Discriminant Analysis: a supervised, multi-modal aware projection.

    Parameters
    ----------
    n_components : int or None, default=None
        Output dimension (None: n_features).
    k : int, default=7
        Neighbour used for the local scaling σ_i (the k-th nearest same-class point;
        classes with fewer members use their farthest member).
    embedding_type : {"weighted", "orthonormalized", "plain"}, default="weighted"
        "weighted" scales each direction by sqrt of its eigenvalue (metric-learn's default);
        "orthonormalized" orthonormalises the directions; "plain" keeps the raw eigenvectors.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
    eigenvalues_ : ndarray (n_components,)
    classes_ : ndarray
    n_features_in_ : int
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "k": [Interval(Integral, 1, None, closed="left")],
        "embedding_type": [StrOptions({"weighted", "orthonormalized", "plain"})],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self, n_components: int | None = None, *, k: int = 7, embedding_type: str = "weighted"
    ):
        self.n_components = n_components
        self.k = k
        self.embedding_type = embedding_type

    def fit(self, X: Any, y: Any) -> LFDA:
        """Learn the projection from labelled data.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        y : array_like (n_samples,)
            Class labels; at least 2 classes with 2 samples each.

        Returns
        -------
        self : LFDA
        """
        self._validate_params()
        data = check_labelled(self, X, y)
        d = data.X.shape[1]
        m = check_n_components(self.n_components, d)
        with serial_blas():
            Sw, Sb = local_scatters(data.X, data.starts, int(self.k), threads=None)
            Sw += (1e-10 * max(np.trace(Sw), 1e-300) / d) * np.eye(d)
            vals, vecs = scipy.linalg.eigh(Sb, Sw)
        order = np.argsort(vals)[::-1][:m]
        vals, vecs = vals[order], vecs[:, order]
        if self.embedding_type == "weighted":
            vecs = vecs * np.sqrt(np.clip(vals, 0.0, None))
        elif self.embedding_type == "orthonormalized":
            vecs, _ = np.linalg.qr(vecs)
        L = vecs.T
        idx = np.argmax(np.abs(L), axis=1)
        signs = np.sign(L[np.arange(m), idx])
        signs[signs == 0] = 1
        self.components_ = np.ascontiguousarray(L * signs[:, None])
        self.eigenvalues_ = vals
        self.classes_ = data.classes
        return self
