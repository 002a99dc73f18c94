"""Information-Theoretic Metric Learning (Davis, Kulis, Jain, Sra & Dhillon, ICML 2007).

ITML finds the metric M closest to a prior M0 in LogDet divergence such that similar pairs
are within distance u and dissimilar pairs beyond l (slack weighted by ``gamma``). The solver
is the paper's (and metric-learn's): cyclic Bregman projections, one constraint at a time,
each a rank-one update ``M += β (M v)(M v)ᵀ``, until the dual variables stop moving.

The projections are inherently sequential, so the per-constraint cost is what matters:
about 4 d² flops, which in Python (metric-learn) is dwarfed by five or six numpy calls and
allocations per step. The sweeps run in C++ (csrc/metric/itml.cpp) in one call without the
GIL. Constraints whose two points coincide (v = 0) carry no information and are dropped up
front (metric-learn divides by zero there).

The bounds u, l default to metric-learn's: the 5th and 95th percentiles of the Euclidean
distances between the constrained points, estimated from at most 100,000 random point pairs
(metric-learn forms all of them, n² memory).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .. import _core
from .._validation import serial_blas
from ._base import components_from_metric, prior_metric
from ._weakly import (
    PREPROCESSOR_CONSTRAINT,
    SUPERVISED_CONSTRAINTS,
    PairsLearnerMixin,
    SupervisedTwinMixin,
    rng_of,
)

_MAX_BOUND_PAIRS = 100_000
#: default_bounds takes the pair distances from the Gram matrix up to this many points (a
#: 2,048 x 2,048 float64 Gram is 32 MB), and in chunks of _BOUND_CHUNK pairs above.
_GRAM_BOUND_POINTS = 2048
_BOUND_CHUNK = 8192


def default_bounds(points: np.ndarray, random_state: Any) -> np.ndarray:
    """5th / 95th percentiles of the Euclidean distance between random pairs of `points`."""
    n = len(points)
    rng = rng_of(random_state)
    if n * (n - 1) // 2 <= _MAX_BOUND_PAIRS:
        i, j = np.triu_indices(n, 1)
    else:
        i = rng.integers(0, n, _MAX_BOUND_PAIRS)
        j = rng.integers(0, n, _MAX_BOUND_PAIRS)
        keep = i != j
        i, j = i[keep], j[keep]
    if n <= _GRAM_BOUND_POINTS:
        # From the Gram matrix: one (n, n) product instead of gathering 100,000 (d,)
        # differences (three ~50 MB temporaries at d = 64, 20-30 ms, most of an ITML fit on
        # a few hundred pairs); |a - b|² = |a|² + |b|² - 2 a.b, clipped at 0 for rounding.
        sq = np.einsum("ij,ij->i", points, points)
        G = points @ points.T
        d2 = sq[i] + sq[j] - 2.0 * G[i, j]
        np.maximum(d2, 0.0, out=d2)
    else:
        d2 = np.empty(len(i))
        for start in range(0, len(i), _BOUND_CHUNK):
            sl = slice(start, start + _BOUND_CHUNK)
            diff = points[i[sl]] - points[j[sl]]
            d2[sl] = np.einsum("ij,ij->i", diff, diff)
    return np.percentile(np.sqrt(d2), (5, 95))


def itml_solve(
    V_pos: np.ndarray,
    V_neg: np.ndarray,
    M0: np.ndarray,
    bounds: np.ndarray,
    gamma: float,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, int, float]:
    """Cyclic Bregman projections of ITML (compiled: ``_core.itml_projections``).

    Parameters
    ----------
    V_pos, V_neg : ndarray (n_pos, d), (n_neg, d)
        Differences ``a - b`` of the similar and dissimilar pairs.
    M0 : ndarray (d, d)
        Prior metric.
    bounds : (u, l)
        Target (squared-distance) bound of similar / dissimilar pairs, as metric-learn.
    gamma : float
        Slack trade-off (inf: hard constraints).

    Returns
    -------
    M : ndarray (d, d), n_iter : int, conv : float (last relative change of the duals)
    """
    V = np.ascontiguousarray(np.concatenate([V_pos, V_neg]), dtype=np.float64)
    sign = np.r_[np.ones(len(V_pos)), -np.ones(len(V_neg))]
    bhat = np.r_[np.full(len(V_pos), float(bounds[0])), np.full(len(V_neg), float(bounds[1]))]
    M, n_iter, conv = _core.itml_projections(
        np.ascontiguousarray(M0, dtype=np.float64),
        V,
        sign,
        bhat,
        -1.0 if np.isinf(gamma) else float(gamma),
        int(max_iter),
        float(tol),
    )
    return (M + M.T) / 2.0, int(n_iter), float(conv)


class _ITMLBase:
    _parameter_constraints: dict[str, list[Any]] = {
        "gamma": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "prior": [StrOptions({"identity", "covariance", "random"}), np.ndarray],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def _learn(self, P: np.ndarray, y: np.ndarray, bounds: Any) -> None:
        with serial_blas():  # small d x d factorisations: OpenBLAS threads only cost here
            self._learn_serial(P, y, bounds)

    def _learn_serial(self, P: np.ndarray, y: np.ndarray, bounds: Any) -> None:
        diff = P[:, 0] - P[:, 1]
        nonzero = np.any(diff != 0, axis=1)
        pos, neg = diff[(y == 1) & nonzero], diff[(y == -1) & nonzero]
        if len(pos) + len(neg) == 0:
            raise ValueError("every pair joins a point to itself: no constraint to learn from")
        points = np.unique(P.reshape(-1, P.shape[2]), axis=0)
        if bounds is None:
            bounds = default_bounds(points, self.random_state)
        else:
            bounds = np.asarray(bounds, dtype=np.float64)
            if bounds.shape != (2,) or not np.isfinite(bounds).all() or bounds.min() <= 0:
                raise ValueError(f"bounds must be two positive numbers (u, l), got {bounds!r}")
        if bounds[0] <= 0:
            bounds = np.array([max(bounds[1] * 1e-3, 1e-12), bounds[1]])
        M0 = prior_metric(self.prior, points, self.random_state)
        M, n_iter, conv = itml_solve(
            pos, neg, M0, bounds, float(self.gamma), int(self.max_iter), float(self.tol)
        )
        if self.verbose:
            print(f"[ITML] {n_iter} iterations, convergence {conv:.3g}", flush=True)
        self.bounds_ = np.asarray(bounds, dtype=np.float64)
        self.n_iter_ = n_iter
        self.components_ = components_from_metric(M)


class ITML(_ITMLBase, PairsLearnerMixin):
    """Information-Theoretic Metric Learning from similar / dissimilar pairs.

    Parameters
    ----------
    gamma : float > 0, default=1.0
        Slack trade-off: larger values enforce the distance bounds more strictly.
    max_iter : int, default=1000
        Maximum passes over the constraints.
    tol : float >= 0, default=1e-3
        Stop when the relative change of the dual variables falls below it.
    prior : {"identity", "covariance", "random"} or ndarray (d, d), default="identity"
        Metric the result is regularised towards (LogDet divergence).
    verbose : bool, default=False
    preprocessor : array_like (n_samples, n_features), callable or None, default=None
        With it, pairs may be given as (n_pairs, 2) row indices.
    random_state : int, RandomState, Generator or None, default=None
        Seeds the bound estimate on large inputs and ``prior="random"``.

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    bounds_ : ndarray (2,)
        The (u, l) distance bounds used.
    threshold_ : float
        Pairs at learned distance ``<= threshold_`` are predicted similar.
    n_iter_ : int
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from pysim.metric_learning import ITML
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 3))
    >>> pairs = np.stack([X[:20], X[20:]], axis=1)
    >>> y = np.where(np.arange(20) % 2 == 0, 1, -1)
    >>> ITML().fit(pairs, y).components_.shape
    (3, 3)
    """

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        gamma: float = 1.0,
        max_iter: int = 1000,
        tol: float = 1e-3,
        prior: Any = "identity",
        verbose: bool = False,
        preprocessor: Any = None,
        random_state: Any = None,
    ):
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.prior = prior
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state

    _parameter_constraints = {**_ITMLBase._parameter_constraints, **PREPROCESSOR_CONSTRAINT}

    def fit(
        self, pairs: Any, y: Any, bounds: Any = None, calibration_params: dict | None = None
    ) -> ITML:
        """Learn the metric from labelled pairs, then calibrate ``threshold_`` on them.

        Parameters
        ----------
        pairs : array_like (n_pairs, 2, n_features), or (n_pairs, 2) indices with a preprocessor
        y : array_like (n_pairs,)
            +1 similar, -1 dissimilar; both needed.
        bounds : (u, l) or None
            Distance bounds; default: 5th / 95th percentile of distances between the points.
        calibration_params : dict or None
            Passed to :meth:`calibrate_threshold`.

        Returns
        -------
        self : ITML
        """
        self._validate_params()
        P, y = self._fit_pairs(pairs, y)
        self._learn(P, y, bounds)
        self.calibrate_threshold(P, y, **(calibration_params or {}))
        return self


class ITML_Supervised(_ITMLBase, SupervisedTwinMixin):
    """ITML on pairs drawn from class labels (similar: same class, dissimilar: different).

    Parameters
    ----------
    gamma, max_iter, tol, prior, verbose, random_state : as :class:`ITML`
        `random_state` also seeds the constraint sampling.
    n_constraints : int or None, default=None
        Similar and dissimilar pairs to draw each; None: ``20 * n_classes**2``.

    Attributes
    ----------
    components_ : ndarray (n_features, n_features)
    bounds_ : ndarray (2,)
    n_iter_ : int
    classes_ : ndarray
    n_features_in_ : int
    """

    _parameter_constraints = {**_ITMLBase._parameter_constraints, **SUPERVISED_CONSTRAINTS}

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        gamma: float = 1.0,
        max_iter: int = 1000,
        tol: float = 1e-3,
        n_constraints: int | None = None,
        prior: Any = "identity",
        verbose: bool = False,
        random_state: Any = None,
    ):
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.n_constraints = n_constraints
        self.prior = prior
        self.verbose = verbose
        self.random_state = random_state

    def fit(self, X: Any, y: Any, bounds: Any = None) -> ITML_Supervised:
        """Draw pairs from the labels and learn the metric.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        y : array_like (n_samples,)
            Class labels; at least 2 classes with 2 samples each.
        bounds : (u, l) or None
            As :meth:`ITML.fit`.

        Returns
        -------
        self : ITML_Supervised
        """
        return self._fit_on_drawn_pairs(X, y, bounds)
