"""KNeighborsClassifier: k-NN voting on pysim's indexes, scikit-learn's semantics.

Votes are counted with one ``np.bincount`` over (query, class) cells rather than a loop over
neighbours or classes: the search dominates and the vote stays a few vectorised passes.
The rules follow scikit-learn exactly so results agree with it: ``predict`` is the class with
the largest (weighted) vote, ties going to the class that sorts first; ``predict_proba``
normalises the votes; ``weights="distance"`` gives a query at distance 0 from some
neighbours only those neighbours' votes; multi-output ``y`` gets one vote per output.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from ._base import WeightedKNeighborsBase


def _weighted_mode(votes: np.ndarray) -> np.ndarray:
    """Winning class per row as scikit-learn's ``weighted_mode`` decides: the largest total,
    ties to the first class, and the first class when no total is positive."""
    best = np.argmax(votes, axis=1)
    best[votes[np.arange(len(votes)), best] <= 0] = 0
    return best


def class_votes(labels: np.ndarray, weights: np.ndarray | None, n_classes: int) -> np.ndarray:
    """Summed (weighted) votes per query and class.

    Parameters
    ----------
    labels : ndarray of shape (n_queries, k), intp
        Class index of each neighbour.
    weights : ndarray of shape (n_queries, k) or None
        Weight of each neighbour; None counts each vote as 1.
    n_classes : int
        Number of classes.

    Returns
    -------
    ndarray of shape (n_queries, n_classes), float64
    """
    m = labels.shape[0]
    cells = (np.arange(m, dtype=np.intp)[:, None] * n_classes + labels).ravel()
    w = None if weights is None else weights.ravel()
    return (
        np.bincount(cells, weights=w, minlength=m * n_classes)
        .reshape(m, n_classes)
        .astype(np.float64, copy=False)
    )


# numpydoc documents each public estimator in full, so the parameters and attributes it shares with
# KNeighborsRegressor and NearestNeighbors are written out here too (duplicates pairs the
# docstrings).
class KNeighborsClassifier(ClassifierMixin, WeightedKNeighborsBase):
    """Classifier voting among the k nearest training rows.

    A drop-in for :class:`sklearn.neighbors.KNeighborsClassifier` on pysim's indexes, with
    learned metrics in front (``metric_learner``) and approximate search on request
    (``algorithm="hnsw"``).

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours that vote.
    weights : {"uniform", "distance"}, callable or None, default="uniform"
        ``"uniform"``: every neighbour counts 1. ``"distance"``: 1 / distance (a query at
        distance 0 from some neighbours takes only their votes). A callable gets the
        ``(n_queries, n_neighbors)`` distance array and returns weights of that shape.
    metric : {"euclidean", "l2", "sqeuclidean", "cosine", "ip", "mahalanobis"}, default="euclidean"
        Distance between (transformed) rows; ``"mahalanobis"`` needs
        ``metric_params={"VI": VI}``.
    algorithm : {"auto", "brute", "kd_tree", "hnsw"}, default="auto"
        Index used; ``"auto"`` picks an exact one (see :class:`NearestNeighbors`).
    metric_learner : transformer or None, default=None
        Applied before the search; an unfitted one is cloned and fitted on ``(X, y)``, a
        fitted one is used as is.
    metric_params : dict or None, default=None
        ``{"VI": VI}`` for ``metric="mahalanobis"``.
    index_params : dict or None, default=None
        Keyword arguments for the index (``leaf_size``; ``M``, ``ef_construction``, ``ef``...).
    threads : int or None, default=None
        Threads for building and searching; ``None`` uses every core available.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or list of such arrays
        Class labels (one array per output for multi-output ``y``).
    outputs_2d_ : bool
        Whether ``y`` was 2-D (multi-output) in ``fit``.
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
    >>> X = [[0.0], [1.0], [2.0], [3.0]]
    >>> clf = pysim.KNeighborsClassifier(n_neighbors=3).fit(X, [0, 0, 1, 1])
    >>> clf.predict([[1.1]]).tolist()
    [0]
    >>> clf.predict_proba([[0.9]]).round(3).tolist()
    [[0.667, 0.333]]
    """

    def fit(self, X: Any, y: Any) -> KNeighborsClassifier:
        """Index the training rows and remember their labels.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training rows. float32 stays float32; other numeric input becomes float64.
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (any type numpy can sort).

        Returns
        -------
        self : KNeighborsClassifier
            The fitted classifier.
        """
        X, y = validate_data(
            self, X, y, dtype=[np.float64, np.float32], order="C", multi_output=True
        )
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            if y.ndim != 1:
                warnings.warn(
                    "A column-vector y was passed when a 1d array was expected. Please change "
                    "the shape of y to (n_samples,), for example using ravel().",
                    DataConversionWarning,
                    stacklevel=2,
                )
            outputs_2d = False
            y = y.reshape((-1, 1))
        else:
            outputs_2d = True
        check_classification_targets(y)
        classes, codes = [], np.empty(y.shape, dtype=np.intp)
        for j in range(y.shape[1]):
            cls, codes[:, j] = np.unique(y[:, j], return_inverse=True)
            classes.append(cls)
        self._fit_index(X, y if outputs_2d else y[:, 0])
        self.outputs_2d_ = outputs_2d
        self.classes_ = classes if outputs_2d else classes[0]
        self._y = codes if outputs_2d else codes[:, 0]
        return self

    def _votes(self, X: Any, *, among_neighbours: bool = False) -> list[np.ndarray]:
        """Summed votes per query and class, one (n_queries, n_classes) array per output.

        With `among_neighbours`, classes that no neighbour holds get -inf: scikit-learn's
        weighted mode picks among the neighbours' classes only (and the first class when
        none of them has a positive total), which differs from a plain argmax when a callable
        gives negative weights.
        """
        ind, weights = self._weighted_neighbours(X)
        codes = self._y.reshape(len(self._y), -1)
        classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        votes = [class_votes(codes[:, j][ind], weights, len(c)) for j, c in enumerate(classes)]
        if among_neighbours and weights is not None:
            for j, (v, c) in enumerate(zip(votes, classes, strict=True)):
                held = class_votes(codes[:, j][ind], None, len(c)) > 0
                v[~held] = -np.inf
        return votes

    def predict(self, X: Any) -> np.ndarray:
        """Most voted class of each query.

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features) or None
            Queries. ``None`` predicts every training row from its neighbours other than
            itself (leave-one-out).

        Returns
        -------
        y : ndarray of shape (n_queries,) or (n_queries, n_outputs)
            Predicted labels (dtype of ``classes_``); vote ties go to the first class in
            ``classes_`` order.
        """
        votes = self._votes(X, among_neighbours=True)
        classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        pred = [c[_weighted_mode(v)] for c, v in zip(classes, votes, strict=True)]
        return np.stack(pred, axis=1) if self.outputs_2d_ else pred[0]

    def predict_proba(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Share of the (weighted) vote of each class.

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features) or None
            Queries; ``None`` means the training rows, leave-one-out.

        Returns
        -------
        p : ndarray of shape (n_queries, n_classes), float64, or a list of such arrays
            (one per output) for multi-output ``y``. Columns follow ``classes_``.
        """
        probas = []
        for v in self._votes(X):
            v /= v.sum(axis=1, keepdims=True)
            probas.append(v)
        return probas if self.outputs_2d_ else probas[0]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of :meth:`predict` on ``(X, y)``.

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features) or None
            Test rows. ``None`` scores the training rows leave-one-out, so
            ``clf.fit(X, y).score(None, y)`` is leave-one-out cross-validation.
        y : array_like of shape (n_queries,) or (n_queries, n_outputs)
            True labels (subset accuracy for multi-output).
        sample_weight : array_like of shape (n_queries,), default=None
            Sample weights.

        Returns
        -------
        float
            Accuracy in [0, 1].
        """
        return super().score(X, y, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = self._learner_takes_multi_output()
        return tags
