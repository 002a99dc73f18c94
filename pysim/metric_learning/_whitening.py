"""Whitening: the unsupervised Mahalanobis metric given by the inverse covariance.

With the covariance ``C = V diag(w) Vᵀ``, the factor ``L = diag(w^-1/2) Vᵀ`` gives
``Lᵀ L = C⁻¹``: Euclidean distance after ``X @ L.T`` is the classic Mahalanobis distance. Rows
of L are ordered by decreasing variance, so ``n_components < d`` keeps the leading principal
directions, each scaled to unit variance (PCA whitening).

Shrinkage blends C with a multiple of the identity, ``(1 - s) C + s (tr C / d) I``: the
scale-aware form used by Ledoit-Wolf, which keeps the trace and makes a singular covariance
(more features than samples, a constant or duplicated feature) invertible. Without it a
singular covariance is an error that says so, rather than a metric with infinite weights.

Cost: the covariance is one pass over X by pysim's Gram kernel (``_core.gram_f64``: the upper
triangle of Xᵀ X and the column sums together, at about twice OpenBLAS's dsyrk on 5,000 x 50).
When every direction is kept, L is the inverse of C's Cholesky factor, ``C = R Rᵀ, L = R⁻¹``
(lower triangular, the same metric: ``Lᵀ L = C⁻¹``): no eigendecomposition, which on a 50 x 50
covariance cost as much as the Gram itself. The spectrum (``explained_variance_``) is then
computed on first access. Below d components L comes from ``eigh``, as PCA whitening.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import lapack
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import _core
from .._validation import resolve_threads, serial_blas
from ._base import MahalanobisMixin, check_float, check_n_components


class Whitening(MahalanobisMixin):
    """Mahalanobis metric from the (optionally shrunk) inverse covariance of the data.

    Parameters
    ----------
    n_components : int or None, default=None
        Dimension of the output space; None keeps every feature. Below the number of features
        the directions of largest variance are kept.
    shrinkage : float in [0, 1], default=0.0
        Weight of the scaled identity blended into the covariance,
        ``(1 - shrinkage) * C + shrinkage * trace(C) / d * I``. Needed when the covariance
        is singular (e.g. fewer samples than features, or a constant feature).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features), float64
        L with ``transform(X) == X @ components_.T``. With every feature kept, the inverse of
        the (shrunk) covariance's lower Cholesky factor (lower triangular, ``Lᵀ L = C⁻¹``);
        with fewer, the leading principal directions scaled to unit variance.
    covariance_ : ndarray of shape (n_features, n_features), float64
        The (shrunk) covariance C, normalised by n - 1.
    mean_ : ndarray of shape (n_features,)
        Feature means of the training data (transform does not subtract it: distances
        do not depend on it).
    explained_variance_ : ndarray of shape (n_components,)
        Variance along each kept direction, decreasing (the largest eigenvalues of C;
        computed on first access when every feature is kept).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when `X` had string feature names.

    Examples
    --------
    >>> import numpy as np, pysim
    >>> X = np.random.default_rng(0).standard_normal((100, 3)) * [1.0, 10.0, 0.1]
    >>> M = pysim.Whitening().fit(X).get_mahalanobis_matrix()
    >>> np.allclose(M, np.linalg.inv(np.cov(X.T)))
    True
    """

    def __init__(self, n_components: int | None = None, *, shrinkage: float = 0.0):
        self.n_components = n_components
        self.shrinkage = shrinkage

    def fit(self, X: Any, y: Any = None) -> Whitening:
        """Estimate the covariance of `X` and its inverse square root.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Training data, at least 2 samples.
        y : ignored

        Returns
        -------
        self : Whitening

        Raises
        ------
        ValueError
            NaN/inf in `X`, fewer than 2 samples, `n_components` out of range, a shrinkage
            outside [0, 1], or a singular covariance with ``shrinkage=0``.
        """
        with serial_blas():  # a d x d factorisation: BLAS threads only cost here
            X, G, colsum = _checked_gram(self, X)
            n, d = X.shape
            k = check_n_components(self.n_components, d)
            s = check_float(self.shrinkage, "shrinkage", 0.0, 1.0)
            mean = colsum / n
            C = _centered_gram(X, G, mean) / (n - 1)
            if s > 0:
                C = (1.0 - s) * C + s * (np.trace(C) / d) * np.eye(d)
            L, w = _whitener(C, k, n)
        self.mean_ = mean
        self.covariance_ = C
        self.components_ = L
        self._explained_variance = w
        return self

    @property
    def explained_variance_(self) -> np.ndarray:
        """ndarray of shape (n_components,): variance along each kept direction, decreasing."""
        w = self.__dict__.get("_explained_variance")
        if w is None:
            check_is_fitted(self, "covariance_")
            w = np.linalg.eigvalsh(self.covariance_)[::-1][: len(self.components_)].copy()
            self._explained_variance = w
        return w


def _singular(n: int, d: int, k: int) -> ValueError:
    return ValueError(
        f"the covariance of X is singular (rank < {k}: {n} samples, {d} features, or "
        "constant/collinear features), so it has no inverse; pass shrinkage > 0 "
        "(e.g. Whitening(shrinkage=0.1)) or a smaller n_components"
    )


def _whitener(C: np.ndarray, k: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """L (k, d) with ``Lᵀ L = C⁻¹`` for k = d, the leading k directions whitened below that;
    and the eigenvalues when they were computed (None otherwise).

    Singular means: Cholesky fails, or LAPACK's estimate of C's reciprocal condition number
    (1-norm) is at most d eps; for k < d, the k-th eigenvalue is at most d eps times the
    largest (rounding noise of a zero variance).
    """
    d = len(C)
    eps = np.finfo(np.float64).eps
    if k == d:
        R, info = lapack.dpotrf(C, lower=1, clean=1)
        if info != 0:
            raise _singular(n, d, k)
        rcond, info = lapack.dpocon(R, float(np.abs(C).sum(axis=0).max()), uplo="L")
        if info != 0 or not rcond > d * eps:
            raise _singular(n, d, k)
        L, info = lapack.dtrtri(R, lower=1)
        if info != 0:  # pragma: no cover - a positive-definite factor is invertible
            raise _singular(n, d, k)
        return np.ascontiguousarray(L), None
    w, V = np.linalg.eigh(C)
    w, V = w[::-1], V[:, ::-1]  # decreasing variance
    top = max(float(w[0]), 0.0)
    if top <= 0.0 or w[k - 1] <= d * eps * top:
        raise _singular(n, d, k)
    w, V = w[:k], V[:, :k]
    L = (V / np.sqrt(w)).T
    idx = np.argmax(np.abs(L), axis=1)
    L *= np.sign(L[np.arange(k), idx])[:, None]  # reproducible signs
    return np.ascontiguousarray(L), w.copy()


def _checked_gram(estimator: Whitening, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``validate_data(estimator, X, ensure_min_samples=2, dtype=[np.float64, np.float32])`` as
    float64 C-contiguous rows, with their Gram matrix Xᵀ X and column sums.

    A 2-D C-contiguous float64 numpy array with 2 or more rows is what validate_data would
    return as it is, after one pass over X to check that it is finite; here that pass is the
    Gram kernel's (a NaN or an infinity in X makes its column's sum, or the diagonal of Xᵀ X,
    NaN or infinite). Other input, or results that are not finite (bad values, or an
    overflow), go through validate_data, so every error and conversion is scikit-learn's.
    """
    threads = resolve_threads(None)
    if (
        type(X) is np.ndarray
        and X.dtype == np.float64
        and X.ndim == 2
        and X.shape[0] >= 2
        and X.shape[1] >= 1
        and X.flags.c_contiguous
    ):
        G, colsum = _core.gram_f64(X, threads)
        if np.isfinite(colsum).all() and np.isfinite(np.diagonal(G)).all():
            # What validate_data(reset=True) records for an array without feature names.
            estimator.n_features_in_ = X.shape[1]
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
            return X, G, colsum
    X = validate_data(estimator, X, ensure_min_samples=2, dtype=[np.float64, np.float32])
    X = np.ascontiguousarray(X, dtype=np.float64)
    G, colsum = _core.gram_f64(X, threads)
    return X, G, colsum


def _centered_gram(X: np.ndarray, G: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(X - mean)ᵀ (X - mean)`` from ``G = Xᵀ X``.

    As ``G - n mean meanᵀ`` (no centred copy of X) when no feature's mean exceeds its standard
    deviation, where the subtraction loses at most about one bit more than centring first;
    otherwise (an offset that would cancel digits) X is centred and its Gram taken again.
    """
    n = len(X)
    outer = n * np.outer(mean, mean)
    var = np.diagonal(G) - np.diagonal(outer)  # n x the (biased) variances
    if np.all(np.diagonal(outer) <= var):
        return G - outer
    Xc = X - mean
    return _core.gram_f64(Xc, resolve_threads(None))[0]
