"""Relevant Components Analysis (Bar-Hillel, Hertz, Shental & Weinshall, JMLR 2005).

RCA whitens the within-chunklet covariance: chunklets are small groups of points known to
share a class, ``C = (1/N) Σ_chunklets Σ_i (x_i - m_chunk)(x_i - m_chunk)ᵀ`` and
``L = C^{-1/2}``. With ``n_components < d`` the data is first projected on the directions
that minimise within-chunklet over total variance (Fisher's criterion), as metric-learn does.
All of it is one centring pass and d x d algebra.

Directions in which the chunked points do not vary at all (a constant feature) carry no
distance information and get weight 0 (the metric lives in the range of their covariance;
metric-learn returns NaN there). A C that is rank-deficient inside that range (fewer
chunklet degrees of freedom than varying features, or a direction constant within every
chunklet but not across them) has no inverse square root: that is a ValueError naming the
rank and suggesting ``n_components``, never a metric with infinite weights.

``shrinkage`` (pysim's addition; 0, the default, is metric-learn's estimate) blends C with
``trace(C) / r * I`` inside that range, or with ``"auto"`` by the Ledoit-Wolf intensity of
the within-chunklet residuals. metric-learn's default of 100 chunklets of 2 gives C only 100
degrees of freedom: in 50 dimensions its smallest eigenvalues are far too small, and their
inverse square roots blow noise up (MNIST-PCA50: 3-NN accuracy 91.1 +- 0.6 % over 20 chunk
draws without shrinkage, 94.3 +- 0.3 % with "auto").
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from .._validation import serial_blas, to_array
from ._base import MahalanobisMixin, check_n_components
from ._weakly import (
    PREPROCESSOR_CONSTRAINT,
    SUPERVISED_CONSTRAINTS,
    SupervisedTwinMixin,
    chunks_from_labels,
)


def _inv_sqrt(C: np.ndarray, who: str) -> np.ndarray:
    w, V = np.linalg.eigh((C + C.T) / 2.0)
    floor = C.shape[0] * np.finfo(np.float64).eps * max(float(w.max()), 0.0)
    if w.max() <= 0 or w.min() <= floor:
        rank = int((w > floor).sum())
        raise ValueError(
            f"{who}: the within-chunklet covariance is singular (rank {rank} < {C.shape[0]}): "
            f"use more or larger chunklets, or n_components <= {max(rank, 1)}"
        )
    return (V / np.sqrt(w)) @ V.T


class _RCABase:
    _parameter_constraints: dict[str, list[Any]] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "shrinkage": [Interval(Real, 0, 1, closed="both"), StrOptions({"auto"})],
    }

    def _learn(self, X: np.ndarray, chunks: np.ndarray) -> None:
        with serial_blas():  # small d x d factorisations: OpenBLAS threads only cost here
            self._learn_serial(X, chunks)

    def _learn_serial(self, X: np.ndarray, chunks: np.ndarray) -> None:
        n, d = X.shape
        k = check_n_components(self.n_components, d)
        mask = chunks >= 0
        if not mask.any():
            raise ValueError("chunks assigns no point to a chunklet (every entry is -1)")
        Xc, cc = X[mask], chunks[mask]
        # Chunklet means by one sort and a segmented sum (no ufunc.at scatter).
        order = np.argsort(cc, kind="stable")
        Xc, cc = Xc[order], cc[order]
        heads = np.flatnonzero(np.r_[True, cc[1:] != cc[:-1]])
        sizes = np.diff(np.r_[heads, len(cc)])
        means = np.add.reduceat(Xc, heads, axis=0) / sizes[:, None]
        centred = Xc - np.repeat(means, sizes, axis=0)
        C = centred.T @ centred / len(Xc)
        who = type(self).__name__
        shrink = self.shrinkage
        if k == d and isinstance(shrink, Real) and shrink == 0:
            L = _whiten_well_conditioned(C, Xc)
            if L is not None:
                self.components_ = L
                return
        # Directions in which the chunked points do not vary at all (constant features) carry
        # no distance information: RCA works in the range R of their total covariance and
        # gives the rest weight 0 (metric-learn returns NaN weights there).
        total = np.atleast_2d(np.cov(Xc, rowvar=False))
        tw, TU = np.linalg.eigh((total + total.T) / 2.0)
        keep = tw > d * np.finfo(np.float64).eps * max(float(tw.max()), 0.0)
        if not keep.any():
            raise ValueError(f"{who}: the chunked points are all identical")
        R = TU[:, keep]
        r = R.shape[1]
        C_R = R.T @ C @ R
        if shrink == "auto" or shrink > 0:
            if shrink == "auto":
                from sklearn.covariance import ledoit_wolf_shrinkage

                shrink = ledoit_wolf_shrinkage(centred @ R, assume_centered=True)
            C_R = (1.0 - shrink) * C_R + (shrink * np.trace(C_R) / r) * np.eye(r)
            C = R @ C_R @ R.T
        if k < r:
            # Directions of smallest within / total variance ratio (Fisher), within R.
            Ti = 1.0 / np.sqrt(tw[keep])
            _, U = np.linalg.eigh((Ti[:, None] * C_R) * Ti[None, :])
            A = R @ (Ti[:, None] * U[:, :k])
            L = _inv_sqrt(A.T @ C @ A, who) @ A.T
        else:
            L = _inv_sqrt(C_R, who) @ R.T
        if len(L) < k:
            L = np.vstack([L, np.zeros((k - len(L), d))])
        self.components_ = np.ascontiguousarray(L)


def _whiten_well_conditioned(C: np.ndarray, Xc: np.ndarray) -> np.ndarray | None:
    """``L`` with ``Lᵀ L = C⁻¹`` from a Cholesky factor (``C = G Gᵀ``, ``L = G⁻¹``), or None
    when C is not safely far from singular (the eigendecomposition path then decides).

    The usual case in one potrf and one trtri instead of two eigendecompositions: the total
    scatter of the chunked points is the within-chunklet scatter plus the between-chunklet
    one, so the total covariance's eigenvalues are at least C's; ``1 / ||G⁻¹||_F²`` is a lower
    bound on C's smallest eigenvalue and ``trace(total)`` an upper bound on the total's
    largest. When the bound clears the eigen path's rank floor (``d * eps * max``) every
    direction is kept and C is invertible there, so the eigen path would return a metric
    equal to this ``Lᵀ L`` (its L differs by a rotation, which no distance sees).
    """
    from scipy.linalg import lapack

    d = C.shape[0]
    G, info = lapack.dpotrf(C, lower=1, clean=1)
    if info != 0:
        return None
    L, info = lapack.dtrtri(G, lower=1)
    if info != 0 or not np.isfinite(L).all():
        return None
    scale = float(np.var(Xc, axis=0, ddof=1).sum()) if len(Xc) > 1 else 0.0
    lower_bound = 1.0 / max(float(np.einsum("ij,ij->", L, L)), np.finfo(np.float64).tiny)
    # A safety factor of 4 over the eigen path's floor: near the floor, let eigh decide.
    if not scale > 0.0 or lower_bound <= 4.0 * d * np.finfo(np.float64).eps * scale:
        return None
    return np.ascontiguousarray(np.tril(L))


class RCA(_RCABase, MahalanobisMixin):
    """Relevant Components Analysis from chunklets: ``fit(X, chunks)``.

    Parameters
    ----------
    n_components : int or None, default=None
        Output dimension; below the number of features, a Fisher projection comes first.
    preprocessor : ignored, default=None
        Accepted for metric-learn compatibility.
    shrinkage : float in [0, 1] or "auto", default=0.0
        Whiten ``(1 - shrinkage) * C + shrinkage * trace(C) / r * I`` instead of the
        within-chunklet covariance C (r: the directions in which the chunked points vary);
        "auto" takes the Ledoit-Wolf intensity. 0 is metric-learn's RCA. Few chunklets
        (metric-learn's default of 100 pairs) give a C too noisy to invert well in more than
        a few dimensions: there "auto" is usually much better.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
    n_features_in_ : int
    """

    _parameter_constraints = {**_RCABase._parameter_constraints, **PREPROCESSOR_CONSTRAINT}

    def __init__(
        self,
        n_components: int | None = None,
        preprocessor: Any = None,
        *,
        shrinkage: float | str = 0.0,
    ):
        self.n_components = n_components
        self.preprocessor = preprocessor
        self.shrinkage = shrinkage

    def fit(self, X: Any, chunks: Any) -> RCA:
        """Learn the metric from chunklets.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        chunks : array_like of int (n_samples,)
            Chunklet id of each sample; -1 for samples in no chunklet.

        Returns
        -------
        self : RCA
        """
        self._validate_params()
        X = validate_data(self, X, ensure_min_samples=2, dtype=np.float64)
        c = to_array(chunks, "chunks")
        if c.shape != (len(X),) or c.dtype.kind not in "iu":
            raise ValueError(
                f"chunks must be an integer array of shape ({len(X)},) (chunklet id per sample, "
                f"-1 for none), got {c.dtype} of shape {c.shape}"
            )
        self._learn(X, c.astype(np.int64))
        return self


class RCA_Supervised(_RCABase, SupervisedTwinMixin):
    """RCA on chunklets drawn from class labels.

    Parameters
    ----------
    n_components : int or None, default=None
    n_chunks : int, default=100
        Chunklets to form (fewer when the classes are too small).
    chunk_size : int, default=2
        Points per chunklet.
    random_state : int, RandomState, Generator or None, default=None
    shrinkage : float in [0, 1] or "auto", default=0.0
        As in `RCA`: 0 is metric-learn's estimate; "auto" (Ledoit-Wolf) is usually much
        better with the default 100 chunklets of 2 in more than a few dimensions.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
    classes_ : ndarray
    n_features_in_ : int
    """

    _parameter_constraints = {
        **_RCABase._parameter_constraints,
        "n_chunks": [Interval(Integral, 1, None, closed="left")],
        "chunk_size": [Interval(Integral, 2, None, closed="left")],
        "random_state": SUPERVISED_CONSTRAINTS["random_state"],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        n_components: int | None = None,
        n_chunks: int = 100,
        chunk_size: int = 2,
        random_state: Any = None,
        *,
        shrinkage: float | str = 0.0,
    ):
        self.n_components = n_components
        self.n_chunks = n_chunks
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.shrinkage = shrinkage

    def fit(self, X: Any, y: Any) -> RCA_Supervised:
        """Draw chunklets from the labels and learn the metric.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        y : array_like (n_samples,)

        Returns
        -------
        self : RCA_Supervised
        """
        data = self._labelled(X, y)
        chunks = chunks_from_labels(
            data, int(self.n_chunks), int(self.chunk_size), self.random_state
        )
        if (chunks < 0).all():
            raise ValueError(
                f"no class has {self.chunk_size} samples to form a chunklet of chunk_size="
                f"{self.chunk_size}"
            )
        # Only the chunked rows enter RCA (200 of MNIST's 5,000 by default): gather those.
        chosen = np.flatnonzero(chunks >= 0)
        self._learn(data.rows(chosen), chunks[chosen])
        self.classes_ = data.classes
        return self
