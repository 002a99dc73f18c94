"""Whitening: the unsupervised Mahalanobis metric given by the inverse covariance.

With the covariance ``C = V diag(w) Vᵀ``, the factor ``L = diag(w^-1/2) Vᵀ`` gives
``Lᵀ L = C⁻¹``: Euclidean distance after ``X @ L.T`` is the classic Mahalanobis distance. Rows
of L are ordered by decreasing variance, so ``n_components < d`` keeps the leading principal
directions, each scaled to unit variance (PCA whitening).

Shrinkage blends C with a multiple of the identity, ``(1 - s) C + s (tr C / d) I``: the
scale-aware form used by Ledoit-Wolf, which keeps the trace and makes a singular covariance
(more features than samples, a constant or duplicated feature) invertible. Without it a
singular covariance is an error that says so, rather than a metric with infinite weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import validate_data

from .._validation import serial_blas
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
        L with ``transform(X) == X @ components_.T`` and ``Lᵀ L`` the inverse of the
        (shrunk) covariance when ``n_components`` is the number of features.
    mean_ : ndarray of shape (n_features,)
        Feature means of the training data (transform does not subtract it: distances
        do not depend on it).
    explained_variance_ : ndarray of shape (n_components,)
        Variance along each kept direction (the eigenvalues of the shrunk covariance).
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
        with serial_blas():  # one (n, d) product and a d x d eigh: BLAS threads only cost here
            X, colsum = _checked_rows(self, X)
            n, d = X.shape
            k = check_n_components(self.n_components, d)
            s = check_float(self.shrinkage, "shrinkage", 0.0, 1.0)
            if colsum is None:
                X = X.astype(np.float64, copy=False)
                colsum = np.ones(n) @ X
            return self._fit_serial(X, colsum / n, n, d, k, s)

    def _fit_serial(
        self, X: np.ndarray, mean: np.ndarray, n: int, d: int, k: int, s: float
    ) -> Whitening:
        self.mean_ = mean
        C = _centered_gram(X, mean) / (n - 1)
        if s > 0:
            C = (1.0 - s) * C + s * (np.trace(C) / d) * np.eye(d)
        w, V = np.linalg.eigh(C)
        w, V = w[::-1], V[:, ::-1]  # decreasing variance
        top = max(float(w[0]), 0.0)
        # Eigenvalues below this are rounding noise of a zero variance.
        floor = d * np.finfo(np.float64).eps * top
        if top <= 0.0 or w[k - 1] <= floor:
            raise ValueError(
                f"the covariance of X is singular (rank < {k}: {n} samples, {d} features, or "
                "constant/collinear features), so it has no inverse; pass shrinkage > 0 "
                "(e.g. Whitening(shrinkage=0.1)) or a smaller n_components"
            )
        w, V = w[:k], V[:, :k]
        L = (V / np.sqrt(w)).T
        idx = np.argmax(np.abs(L), axis=1)
        L *= np.sign(L[np.arange(k), idx])[:, None]  # reproducible signs
        self.components_ = np.ascontiguousarray(L)
        self.explained_variance_ = w.copy()
        return self


def _checked_rows(estimator: Whitening, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``validate_data(estimator, X, ensure_min_samples=2, dtype=[np.float64, np.float32])``,
    and the column sums of X when they came with the check (else None).

    A 2-D float64 numpy array with 2 or more rows is what validate_data would return as it is,
    after one pass over X to check that it is finite; here that pass is the column sums (one
    BLAS product, which fit needs for the mean anyway: a NaN or an infinity in X makes its
    column's sum NaN or infinite). Other input, or sums that are not finite (bad values, or
    an overflow), go through validate_data, so every error and conversion is scikit-learn's.
    """
    if (
        type(X) is np.ndarray
        and X.dtype == np.float64
        and X.ndim == 2
        and X.shape[0] >= 2
        and X.shape[1] >= 1
    ):
        with np.errstate(over="ignore", invalid="ignore"):
            colsum = np.ones(X.shape[0]) @ X
        if np.isfinite(colsum).all():
            # What validate_data(reset=True) records for an array without feature names.
            estimator.n_features_in_ = X.shape[1]
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
            return X, colsum
    return validate_data(estimator, X, ensure_min_samples=2, dtype=[np.float64, np.float32]), None


def _centered_gram(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(X - mean)ᵀ (X - mean)``.

    As ``Xᵀ X - n mean meanᵀ`` (one symmetric product, no centred copy of X: on 5,000 x 50
    the copy cost as much as the product) when no feature's mean exceeds its standard
    deviation, where the subtraction loses at most about one bit more than centring first;
    otherwise (an offset that would cancel digits) X is centred first.
    """
    n = len(X)
    G = X.T @ X
    outer = n * np.outer(mean, mean)
    var = np.diagonal(G) - np.diagonal(outer)  # n x the (biased) variances
    if np.all(np.diagonal(outer) <= var):
        return G - outer
    Xc = X - mean
    return Xc.T @ Xc
