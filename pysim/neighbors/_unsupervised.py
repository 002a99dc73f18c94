"""NearestNeighbors: scikit-learn's unsupervised neighbour search on pysim's indexes.

Everything but the constructor and ``fit`` lives in ``_base`` (shared with the classifier
and regressor); this file only states the parameters, as scikit-learn's estimators do.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import validate_data

from ._base import KNeighborsMixin, NeighborsBase, RadiusNeighborsMixin, check_radius


# numpydoc documents each public estimator in full, so the parameters and attributes it shares with
# the k-NN classifier and regressor are written out here too (duplicates pairs the docstrings).
class NearestNeighbors(KNeighborsMixin, RadiusNeighborsMixin, NeighborsBase):
    """Unsupervised nearest-neighbour search by brute force, a KD-tree or HNSW.

    A drop-in for :class:`sklearn.neighbors.NearestNeighbors` with pysim's SIMD indexes
    underneath, learned metrics (``metric_learner``) in front, and approximate search
    (``algorithm="hnsw"``) when asked for.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours returned by :meth:`kneighbors` when not given there.
    radius : float, default=1.0
        Radius used by :meth:`radius_neighbors` when not given there, in the metric's units.
    metric : {"euclidean", "l2", "sqeuclidean", "cosine", "ip", "mahalanobis"}, default="euclidean"
        Distance between (transformed) rows; ``"l2"`` is ``"euclidean"``, ``"ip"`` is
        ``1 - a·b`` and ``"mahalanobis"`` needs ``metric_params={"VI": VI}``.
    algorithm : {"auto", "brute", "kd_tree", "hnsw"}, default="auto"
        Index used for the search. ``"auto"`` picks an exact one: ``"kd_tree"`` for
        Euclidean-type metrics (euclidean, sqeuclidean, mahalanobis) when the searched space
        has at most 16 dimensions and ``n_neighbors`` is under half the training rows,
        ``"brute"`` otherwise (the measured rule is in ``pysim/neighbors/_base.py``).
        ``"hnsw"`` is approximate and is never chosen automatically. ``"kd_tree"`` accepts
        only the Euclidean-type metrics.
    metric_learner : transformer or None, default=None
        Applied to training rows and queries before the search (for instance
        :class:`pysim.NCA`). An unfitted learner is cloned and fitted on the training data
        (with ``y`` when it needs labels); a fitted one is used as is. Distances are then
        measured in the learned space. Note that :func:`sklearn.base.clone` of this
        estimator clones the learner too, unfitted.
    metric_params : dict or None, default=None
        ``{"VI": VI}``, a symmetric positive semi-definite ``(d, d)`` matrix, for
        ``metric="mahalanobis"`` (``d``: features after ``metric_learner``).
    index_params : dict or None, default=None
        Keyword arguments for the index: ``leaf_size`` for ``"kd_tree"``; ``M``,
        ``ef_construction``, ``seed``, ... and ``ef`` (the search beam width) for
        ``"hnsw"``. With ``"auto"``, parameters of the index not chosen are ignored.
    threads : int or None, default=None
        Threads for building and searching; ``None`` uses every core this process may run
        on (scikit-learn's ``n_jobs`` is not used).

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when ``X`` had string column names.
    n_samples_fit_ : int
        Number of training rows.
    algorithm_ : str
        The algorithm used (``"auto"`` resolved).
    effective_metric_ : str
        The metric used (aliases resolved).
    effective_metric_params_ : dict
        The metric parameters used.
    metric_learner_ : transformer or None
        The fitted learner applied before the search.
    index_ : BruteForceIndex, KDTreeIndex or HNSWIndex
        The index over the (transformed) training rows.

    See Also
    --------
    KNeighborsClassifier, KNeighborsRegressor, pysim.BruteForceIndex, pysim.HNSWIndex

    Examples
    --------
    >>> import numpy as np, pysim
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    >>> nn = pysim.NearestNeighbors(n_neighbors=1).fit(X)
    >>> nn.kneighbors([[0.1, 0.9]])
    (array([[0.14142136]]), array([[1]]))
    >>> nn.kneighbors(return_distance=False).ravel().tolist()  # each row not its own neighbour
    [1, 0, 0]
    """

    _parameter_constraints: dict[str, list[Any]] = {
        **NeighborsBase._parameter_constraints,
        "radius": [Interval(Real, 0, None, closed="left")],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature, so each
    # estimator family spells its own list out (NearestNeighbors: radius, the k-NN
    # classifier and regressor: weights), as scikit-learn's neighbours do; duplicates pairs them.
    def __init__(
        self,
        n_neighbors: int = 5,
        *,
        radius: float = 1.0,
        metric: str = "euclidean",
        algorithm: str = "auto",
        metric_learner: Any = None,
        metric_params: dict | None = None,
        index_params: dict | None = None,
        threads: int | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.metric = metric
        self.algorithm = algorithm
        self.metric_learner = metric_learner
        self.metric_params = metric_params
        self.index_params = index_params
        self.threads = threads

    def fit(self, X: Any, y: Any = None) -> NearestNeighbors:
        """Index the training rows.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training rows. float32 stays float32; other numeric input becomes float64.
        y : array_like of shape (n_samples,), default=None
            Ignored, except to fit an unfitted supervised ``metric_learner``.

        Returns
        -------
        self : NearestNeighbors
            The fitted estimator.
        """
        check_radius(self, self.radius)
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        self._fit_index(X, y)
        return self
