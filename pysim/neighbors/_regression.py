"""KNeighborsRegressor: the (weighted) mean target of the k nearest training rows.

scikit-learn's semantics (so results agree with it): 1-D ``y`` gives 1-D predictions, 2-D
``y`` (even with one column) gives 2-D ones; ``weights="distance"`` lets a query at distance
0 from some neighbours take only their targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import validate_data

from ._base import WeightedKNeighborsBase


# numpydoc documents each public estimator in full, so the parameters and attributes it shares with
# KNeighborsClassifier and NearestNeighbors are written out here too (duplicates pairs the
# docstrings).
class KNeighborsRegressor(RegressorMixin, WeightedKNeighborsBase):
    """Regression by the (weighted) mean target of the k nearest training rows.

    A drop-in for :class:`sklearn.neighbors.KNeighborsRegressor` on pysim's indexes.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours averaged.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        ``"uniform"``: plain mean. ``"distance"``: weights 1 / distance (a query at distance 0
        from some neighbours takes only their targets). A callable gets the
        ``(n_queries, n_neighbors)`` distance array and returns weights of that shape.
    metric : {"euclidean", "l2", "sqeuclidean", "cosine", "ip", "mahalanobis"}, default="euclidean"
        Distance between (transformed) rows; ``"mahalanobis"`` needs
        ``metric_params={"VI": VI}``.
    algorithm : {"auto", "brute", "kd_tree", "hnsw"}, default="auto"
        Index used; ``"auto"`` picks an exact one (see :class:`NearestNeighbors`).
    metric_learner : transformer or None, default=None
        Applied before the search; an unfitted one is cloned and fitted on ``(X, y)`` (it
        must accept continuous targets, or be unsupervised), a fitted one is used as is.
    metric_params : dict or None, default=None
        ``{"VI": VI}`` for ``metric="mahalanobis"``.
    index_params : dict or None, default=None
        Keyword arguments for the index (``leaf_size``; ``M``, ``ef_construction``, ``ef``...).
    threads : int or None, default=None
        Threads for building and searching; ``None`` uses every core available.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in ``fit``.
    n_samples_fit_ : int
        Number of training rows.
    algorithm_ : str
        The algorithm used (``"auto"`` resolved).
    effective_metric_ : str
        The metric used (aliases resolved).
    metric_learner_ : transformer or None
        The fitted learner applied before the search.
    index_ : BruteForceIndex, KDTreeIndex or HNSWIndex
        The index over the (transformed) training rows.

    Examples
    --------
    >>> import pysim
    >>> reg = pysim.KNeighborsRegressor(n_neighbors=2).fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 4.0])
    >>> reg.predict([[1.6]]).tolist()
    [2.5]
    """

    def fit(self, X: Any, y: Any) -> KNeighborsRegressor:
        """Index the training rows and remember their targets.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training rows. float32 stays float32; other numeric input becomes float64.
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
            Numeric targets.

        Returns
        -------
        self : KNeighborsRegressor
            The fitted regressor.
        """
        X, y = validate_data(
            self, X, y, dtype=[np.float64, np.float32], order="C", multi_output=True, y_numeric=True
        )
        self._fit_index(X, y)
        self._y = y
        return self

    def predict(self, X: Any) -> np.ndarray:
        """(Weighted) mean target of each query's neighbours.

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features) or None
            Queries. ``None`` predicts every training row from its neighbours other than
            itself (leave-one-out).

        Returns
        -------
        y : ndarray of shape (n_queries,) or (n_queries, n_outputs), float64
            Predictions; 1-D exactly when ``y`` was 1-D in ``fit``.
        """
        ind, weights = self._weighted_neighbours(X)
        y = self._y.reshape(len(self._y), -1).astype(np.float64, copy=False)
        neigh = y[ind]  # (n_queries, k, n_outputs)
        if weights is None:
            pred = neigh.mean(axis=1)
        else:
            pred = np.einsum("qk,qko->qo", weights, neigh) / weights.sum(axis=1)[:, None]
        return pred.ravel() if self._y.ndim == 1 else pred
