"""Sparse Distance Metric Learning (Qi, Tang, Zha, Chua & Zhang, ICML 2009).

SDML fits a sparse precision matrix: M minimises ``tr(M S) - log det M + λ ||M||_1,off`` with
``S = M0⁻¹ + balance_param · Σ_i y_i v_i v_iᵀ`` (v_i the pair differences, y_i = ±1), which
is the graphical lasso on S. ``S`` is one d x d product (``Vᵀ diag(y) V``), and the graphical
lasso is scikit-learn's, as in metric-learn.

A non positive-definite S (many dissimilar pairs pull it negative; metric-learn then warns and
often fails) is handled by a documented fallback instead of a silent NaN metric: its
eigenvalues are shifted up so the smallest is ``1e-3`` of the largest (``shifted_ = True``),
which keeps S's eigenvectors and ordering. If the graphical lasso still cannot solve it, the
(regularised) inverse of S is used (``glasso_failed_ = True``); non-convergence of the lasso
within its iteration budget is not an error.
"""

from __future__ import annotations

import warnings
from numbers import Real
from typing import Any

import numpy as np
from sklearn.covariance import graphical_lasso
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from .._validation import serial_blas
from ._base import components_from_metric, prior_metric
from ._weakly import (
    PREPROCESSOR_CONSTRAINT,
    SUPERVISED_CONSTRAINTS,
    PairsLearnerMixin,
    SupervisedTwinMixin,
)


class _SDMLBase:
    _parameter_constraints: dict[str, list[Any]] = {
        "balance_param": [Interval(Real, 0, None, closed="left")],
        "sparsity_param": [Interval(Real, 0, None, closed="left")],
        "prior": [StrOptions({"identity", "covariance", "random"}), np.ndarray],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def _learn(self, P: np.ndarray, y: np.ndarray) -> None:
        with serial_blas():  # small d x d factorisations: OpenBLAS threads only cost here
            self._learn_serial(P, y)

    def _learn_serial(self, P: np.ndarray, y: np.ndarray) -> None:
        d = P.shape[2]
        points = np.unique(P.reshape(-1, d), axis=0)
        M0 = prior_metric(self.prior, points, self.random_state)
        diff = P[:, 0] - P[:, 1]
        S = np.linalg.inv(M0) + float(self.balance_param) * ((diff.T * y) @ diff)
        S = (S + S.T) / 2.0
        w, V = np.linalg.eigh(S)
        top = max(abs(float(w.max())), np.finfo(np.float64).tiny)
        self.shifted_ = bool(w.min() < 1e-3 * top)
        if self.shifted_:
            w = w - w.min() + 1e-3 * max(top, float(w.max() - w.min()))
            S = (V * w) @ V.T
        self.glasso_failed_ = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                _, M = graphical_lasso(S, alpha=float(self.sparsity_param), max_iter=100)
            if not np.isfinite(M).all() or np.linalg.eigvalsh(M).min() < 0:
                raise FloatingPointError("graphical lasso returned a non-PSD matrix")
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            self.glasso_failed_ = True
            M = (V / w) @ V.T
        if self.verbose:
            print(f"[SDML] shifted={self.shifted_} glasso_failed={self.glasso_failed_}")
        self.components_ = components_from_metric(M)


class SDML(_SDMLBase, PairsLearnerMixin):
    """Sparse Distance Metric Learning from similar / dissimilar pairs (graphical lasso).

    Parameters
    ----------
    balance_param : float >= 0, default=0.5
        Weight of the pair term against the prior.
    sparsity_param : float >= 0, default=0.01
        L1 penalty on the off-diagonal of M (graphical lasso ``alpha``).
    prior : {"identity", "covariance", "random"} or ndarray (d, d), default="identity"
    verbose : bool, default=False
    preprocessor : array_like, callable or None, default=None
    random_state : int, RandomState, Generator or None, default=None

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    threshold_ : float
    shifted_ : bool
        Whether the graphical-lasso input had to be shifted to be positive definite.
    glasso_failed_ : bool
        Whether the graphical lasso failed and the inverse was used instead.
    n_features_in_ : int
    """

    _parameter_constraints = {**_SDMLBase._parameter_constraints, **PREPROCESSOR_CONSTRAINT}

    def __init__(
        self,
        balance_param: float = 0.5,
        sparsity_param: float = 0.01,
        prior: Any = "identity",
        verbose: bool = False,
        preprocessor: Any = None,
        random_state: Any = None,
    ):
        self.balance_param = balance_param
        self.sparsity_param = sparsity_param
        self.prior = prior
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state

    def fit(self, pairs: Any, y: Any, calibration_params: dict | None = None) -> SDML:
        """Learn the metric from labelled pairs, then calibrate ``threshold_`` on them.

        Parameters
        ----------
        pairs : array_like (n_pairs, 2, n_features), or (n_pairs, 2) indices with a preprocessor
        y : array_like (n_pairs,), +1 / -1
        calibration_params : dict or None
            Passed to :meth:`calibrate_threshold`.

        Returns
        -------
        self : SDML
        """
        self._validate_params()
        P, y = self._fit_pairs(pairs, y)
        self._learn(P, y)
        self.calibrate_threshold(P, y, **(calibration_params or {}))
        return self


class SDML_Supervised(_SDMLBase, SupervisedTwinMixin):
    """SDML on pairs drawn from class labels.

    Parameters
    ----------
    balance_param, sparsity_param, prior, verbose, random_state : as :class:`SDML`
    n_constraints : int or None, default=None
        Similar and dissimilar pairs to draw each; None: ``20 * n_classes**2``.

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    shifted_, glasso_failed_ : bool
    classes_ : ndarray
    n_features_in_ : int
    """

    _parameter_constraints = {**_SDMLBase._parameter_constraints, **SUPERVISED_CONSTRAINTS}

    def __init__(
        self,
        balance_param: float = 0.5,
        sparsity_param: float = 0.01,
        prior: Any = "identity",
        n_constraints: int | None = None,
        verbose: bool = False,
        random_state: Any = None,
    ):
        self.balance_param = balance_param
        self.sparsity_param = sparsity_param
        self.prior = prior
        self.n_constraints = n_constraints
        self.verbose = verbose
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> SDML_Supervised:
        """Draw pairs from the labels and learn the metric.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        y : array_like (n_samples,)

        Returns
        -------
        self : SDML_Supervised
        """
        return self._fit_on_drawn_pairs(X, y)
