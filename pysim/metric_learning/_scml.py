"""Sparse Compositional Metric Learning (Shi, Bellet & Sha, AAAI 2014) from triplets.

SCML composes the metric from a fixed dictionary of rank-one bases,
``M = Σ_k w_k b_k b_kᵀ`` with ``w >= 0``, and fits the weights on triplets (a, b, c), "a
nearer b than c":

    min_w  (1/T) Σ_t ℓ(1 + d_M(a, b)² - d_M(a, c)²)  +  β ||w||_1,   w >= 0.

Since ``d_M(a, b)² = Σ_k w_k (b_k·(a - b))²``, each triplet is a fixed feature vector
``φ_t = (B(a-b))² - (B(a-c))²`` and the margin is linear in w: the problem is convex in w
and, once Φ (T x K) is built, every loss/gradient evaluation is one pass over Φ (compiled:
margins and gradient row by row; Φ stored in float32, arithmetic in float64).
metric-learn runs 10,000 AdaGrad steps of batch 10 in Python; here scipy's L-BFGS-B (bounds
w >= 0, where the L1 term is linear) solves the whole problem. ℓ is the hinge smoothed over a
width of 0.05 (quadratic near the kink) so the quasi-Newton steps are well defined; Φ is
capped at 2**22 entries (triplets are subsampled beyond, seeded, before their points are
gathered). Φ's construction, the loss's fixed slices of Φ and the local LDA bases' eigenproblems
run on pysim's helper threads (``run_tasks``); results do not depend on the thread count.

Bases: "triplet_diffs" (the triplet learner's default) takes, from seeded draws of d
triplets, the directions where dissimilar differences outweigh similar ones; "lda" (the
supervised twin's default, as metric-learn) takes discriminant directions of local
neighbourhoods around k-means centres, computed with pysim's exact distances. An (K, d)
array is used as given.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.utils._param_validation import Interval, StrOptions

from .. import _core
from .._distances import cdist
from .._validation import resolve_threads, serial_blas
from ._base import LabelledData, _lda_components, components_from_metric, run_tasks
from ._weakly import (
    PREPROCESSOR_CONSTRAINT,
    SupervisedTwinMixin,
    TripletsLearnerMixin,
    knn_triplets,
    rng_of,
)

_SMOOTH = 0.05
_MAX_PHI = 1 << 22


def _normalise(B: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(B, axis=1)
    B = B[norms > 1e-12] / norms[norms > 1e-12, None]
    return np.ascontiguousarray(B)


def triplet_diff_basis(T: np.ndarray, n_basis: int, rng: np.random.Generator) -> np.ndarray:
    """Directions where dissimilar differences outweigh similar ones, from random triplets.

    Each draw takes d random triplets and the eigenvectors of positive eigenvalue of
    ``Σ (a-c)(a-c)ᵀ - Σ (a-b)(a-b)ᵀ``; draws are batched into one stacked ``eigh``.
    """
    n, _, d = T.shape
    size = min(d, n)
    out: list[np.ndarray] = []
    total = 0
    while total < n_basis:
        draws = max(1, int(np.ceil(2 * (n_basis - total) / max(1, d))))
        pick = np.stack([rng.choice(n, size, replace=False) for _ in range(draws)])
        Dp = T[pick, 0] - T[pick, 1]  # (draws, size, d)
        Dn = T[pick, 0] - T[pick, 2]
        S = np.einsum("kij,kil->kjl", Dn, Dn) - np.einsum("kij,kil->kjl", Dp, Dp)
        w, V = np.linalg.eigh(S)
        for k in range(draws):
            keep = V[k][:, w[k] > 1e-12 * max(1.0, abs(w[k]).max())].T
            out.append(keep)
            total += len(keep)
        if total == 0:
            break
    if not out or total == 0:
        return np.empty((0, d))
    return _normalise(np.concatenate(out)[:n_basis])


def _kmeans(X: np.ndarray, k: int, rng: np.random.Generator, iters: int = 10) -> np.ndarray:
    """k-means centres: seeded random rows, then Lloyd steps on pysim's distances.

    The centres only place local neighbourhoods, so a few Lloyd steps from a random start do
    (scikit-learn's KMeans with k-means++ seeding costs far more than the rest of the fit).
    """
    C = X[np.sort(rng.choice(len(X), k, replace=False))].copy()
    for _ in range(iters):
        assign = np.argmin(cdist(X, C, "sqeuclidean"), axis=1)
        counts = np.bincount(assign, minlength=k)
        sums = np.zeros_like(C)
        np.add.at(sums, assign, X)
        moved = counts > 0
        C[moved] = sums[moved] / counts[moved, None]
    return C


def lda_basis(
    data: LabelledData, n_basis: int, rng: np.random.Generator, threads: int | None = 1
) -> np.ndarray:
    """Local discriminant directions around k-means centres (metric-learn's "lda" bases).

    Around each centre, every class contributes its nearest members at two scales (10 and
    20, or 20 and 50 above 50 features); the Fisher directions of each neighbourhood are bases.
    """
    X = data.X
    n, d = X.shape
    n_eig = max(1, min(len(data.classes) - 1, d))
    n_clusters = max(1, min(n, int(np.ceil(n_basis / (2 * n_eig)))))
    centres = _kmeans(X, n_clusters, rng)
    scales = (20, 50) if d > 50 else (10, 20)
    near = []  # per class: (n_clusters, k) nearest rows of that class to each centre
    for c in range(len(data.classes)):
        s, e = int(data.starts[c]), int(data.starts[c + 1])
        k = min(e - s, scales[1])
        D = cdist(centres, X[s:e], "sqeuclidean")
        near.append(s + np.argsort(D, axis=1, kind="stable")[:, :k])
    jobs = [(scale, j) for scale in scales for j in range(n_clusters)]

    def local_basis(t: int) -> np.ndarray | None:
        scale, j = jobs[t]
        idx = np.concatenate([nc[j, : min(scale, nc.shape[1])] for nc in near])
        local = LabelledData(X[idx], data.codes[idx])
        if len(local.classes) < 2:
            return None
        return _lda_components(local, min(n_eig, len(local.classes) - 1))

    # Hundreds of independent small eigenproblems (LAPACK releases the GIL): on `threads`
    # workers, kept in job order.
    found = run_tasks(local_basis, len(jobs), resolve_threads(threads))
    bases = [b for b in found if b is not None]
    B = _normalise(np.concatenate(bases)) if bases else np.empty((0, d))
    return B[:n_basis]


def scml_loss_grad(
    w: np.ndarray, Phi: np.ndarray, beta: float, threads: int | None = 1
) -> tuple[float, np.ndarray]:
    """Smoothed-hinge SCML objective in the basis weights, and its gradient.

    One compiled pass over Φ (``_core.scml_hinge_loss_grad``, csrc/metric/scml.hpp): each
    row's margin ``1 + Φ_t w`` and, while the row is in cache, its gradient term ``ℓ' Φ_t``
    (none for satisfied triplets). Φ is stored in float32 (a float64 Φ is rounded to it), the
    arithmetic is float64. The rows form _GROUPS fixed slices on `threads` workers (None: every
    core), summed in order, so the result is the same bits at any thread count.
    """
    Phi = np.ascontiguousarray(Phi, dtype=np.float32)
    w = np.ascontiguousarray(w, dtype=np.float64)
    loss, grad = _core.scml_hinge_loss_grad(Phi, w, _SMOOTH, _GROUPS, resolve_threads(threads))
    T = len(Phi)
    grad /= T
    grad += beta
    return float(loss / T + beta * w.sum()), grad


#: Fixed slices of Φ per evaluation (the data decides them, not the thread count).
_GROUPS = 8
#: Triplets per task when building Φ.
_PHI_ROWS = 512


class _SCMLBase:
    _parameter_constraints: dict[str, list[Any]] = {
        "beta": [Interval(Real, 0, None, closed="left")],
        "n_basis": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def _default_n_basis(self, d: int, n: int, n_eig: int | None = None) -> int:
        """metric-learn's defaults: 80 d (triplet differences), min(20 d, 2 n n_eig - 1) (LDA)."""
        if self.n_basis is not None:
            return int(self.n_basis)
        if n_eig is None:
            return 80 * d
        return max(1, min(20 * d, 2 * n * n_eig - 1))

    def _learn(
        self, T: np.ndarray, B: np.ndarray, rng: np.random.Generator, X: np.ndarray | None = None
    ) -> None:
        """Fit the weights on triplets `T`: points (n, 3, d), or with `X` rows of X (n, 3)."""
        d = T.shape[2] if X is None else X.shape[1]
        if B.shape[1] != d:
            raise ValueError(f"basis must have {d} columns, got {B.shape}")
        if len(T) * len(B) > _MAX_PHI:
            T = T[np.sort(rng.choice(len(T), _MAX_PHI // len(B), replace=False))]
        if X is not None:  # gather only the kept triplets' points
            T = X[T]
        Phi = np.empty((len(T), len(B)), dtype=np.float32)
        bounds = list(range(0, len(T), _PHI_ROWS))

        def fill(i: int) -> None:
            t = T[bounds[i] : bounds[i] + _PHI_ROWS]
            Pab = (t[:, 0] - t[:, 1]) @ B.T
            Pac = (t[:, 0] - t[:, 2]) @ B.T
            np.subtract(Pab * Pab, Pac * Pac, out=Phi[bounds[i] : bounds[i] + _PHI_ROWS])

        with serial_blas():
            run_tasks(fill, len(bounds), resolve_threads(None))  # row chunks, any order
            res = minimize(
                scml_loss_grad,
                np.zeros(len(B)),
                args=(Phi, float(self.beta), None),
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, None)] * len(B),
                options={"maxiter": int(self.max_iter), "ftol": 1e-6},
            )
            w = np.clip(res.x, 0.0, None)
            # A d x d eigh: on threaded BLAS it cost ~80 ms on a busy 2-core machine, ~1 ms here.
            self.components_ = components_from_metric((B.T * w) @ B)
        if self.verbose:
            print(f"[SCML] {res.nit} iterations, loss {res.fun:.6g}, {int((w > 0).sum())} bases")
        self.bases_ = B
        self.weights_ = w
        self.n_iter_ = max(1, int(res.nit))


class SCML(_SCMLBase, TripletsLearnerMixin):
    """Sparse Compositional Metric Learning from triplets (a nearer b than c).

    Parameters
    ----------
    beta : float >= 0, default=1e-5
        L1 penalty on the basis weights (sparsity).
    basis : "triplet_diffs" or ndarray (n_basis, n_features), default="triplet_diffs"
        The rank-one dictionary.
    n_basis : int or None, default=None
        Size of the dictionary (None: metric-learn's default, ``80 * n_features`` for
        "triplet_diffs", ``min(20 * n_features, 2 * n_samples * n_eig - 1)`` for "lda").
    max_iter : int, default=10000
        Maximum L-BFGS-B iterations.
    verbose : bool, default=False
    preprocessor : array_like, callable or None, default=None
    random_state : int, RandomState, Generator or None, default=None

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    bases_ : ndarray (n_basis, n_features)
    weights_ : ndarray (n_basis,)
    n_features_in_ : int
    """

    _parameter_constraints = {
        **_SCMLBase._parameter_constraints,
        **PREPROCESSOR_CONSTRAINT,
        "basis": [StrOptions({"triplet_diffs"}), np.ndarray],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        beta: float = 1e-5,
        basis: Any = "triplet_diffs",
        n_basis: int | None = None,
        max_iter: int = 10000,
        verbose: bool = False,
        preprocessor: Any = None,
        random_state: Any = None,
    ):
        self.beta = beta
        self.basis = basis
        self.n_basis = n_basis
        self.max_iter = max_iter
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state

    def fit(self, triplets: Any) -> SCML:
        """Learn the metric from triplets.

        Parameters
        ----------
        triplets : array_like (n, 3, n_features), or (n, 3) indices with a preprocessor

        Returns
        -------
        self : SCML
        """
        self._validate_params()
        T = self._prepare(triplets, reset=True)
        rng = rng_of(self.random_state)
        if isinstance(self.basis, np.ndarray):
            B = _normalise(np.asarray(self.basis, dtype=np.float64))
        else:
            B = triplet_diff_basis(T, self._default_n_basis(T.shape[2], len(T)), rng)
        if len(B) == 0:
            raise ValueError("no usable basis: every triplet difference is zero")
        self._learn(T, B, rng)
        return self


class SCML_Supervised(_SCMLBase, SupervisedTwinMixin):
    """SCML on k-NN triplets drawn from labels (genuine: same-class, impostor: other class).

    Parameters
    ----------
    k_genuine : int, default=3
        Same-class neighbours per point.
    k_impostor : int, default=10
        Other-class neighbours per point.
    beta, n_basis, max_iter, verbose, random_state : as :class:`SCML`
    basis : "lda", "triplet_diffs" or ndarray, default="lda"

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    bases_, weights_ : ndarray
    classes_ : ndarray
    n_features_in_ : int
    """

    _parameter_constraints = {
        **_SCMLBase._parameter_constraints,
        "k_genuine": [Interval(Integral, 1, None, closed="left")],
        "k_impostor": [Interval(Integral, 1, None, closed="left")],
        "basis": [StrOptions({"lda", "triplet_diffs"}), np.ndarray],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        k_genuine: int = 3,
        k_impostor: int = 10,
        beta: float = 1e-5,
        basis: Any = "lda",
        n_basis: int | None = None,
        max_iter: int = 10000,
        verbose: bool = False,
        random_state: Any = None,
    ):
        self.k_genuine = k_genuine
        self.k_impostor = k_impostor
        self.beta = beta
        self.basis = basis
        self.n_basis = n_basis
        self.max_iter = max_iter
        self.verbose = verbose
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> SCML_Supervised:
        """Form k-NN triplets from the labels and learn the metric.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        y : array_like (n_samples,)

        Returns
        -------
        self : SCML_Supervised
        """
        data = self._labelled(X, y)
        rng = rng_of(self.random_state)
        idx = knn_triplets(data, int(self.k_genuine), int(self.k_impostor), threads=None)
        n, d = data.X.shape
        if isinstance(self.basis, np.ndarray):
            B = _normalise(np.asarray(self.basis, dtype=np.float64))
        elif self.basis == "lda":
            n_eig = max(1, min(len(data.classes) - 1, d))
            with serial_blas():  # hundreds of small d x d eigenproblems
                B = lda_basis(data, self._default_n_basis(d, n, n_eig), rng, threads=None)
        else:
            B = triplet_diff_basis(data.X[idx], self._default_n_basis(d, n), rng)
        if len(B) == 0:
            raise ValueError("no usable basis could be formed from the data")
        self._learn(idx, B, rng, X=data.X)
        self.classes_ = data.classes
        return self
