"""Nearest-neighbour estimators with scikit-learn's API on pysim's indexes.

- :class:`NearestNeighbors`: unsupervised k-NN and radius search.
- :class:`KNeighborsClassifier`, :class:`KNeighborsRegressor`: k-NN prediction.
- :class:`PairVerifier`: same-identity decisions on pairs with a learned threshold.

Each accepts ``algorithm="auto"|"brute"|"kd_tree"|"hnsw"`` (``"auto"`` picks an exact index)
and an optional ``metric_learner`` applied before the search.
"""

from __future__ import annotations

from ._classification import KNeighborsClassifier
from ._regression import KNeighborsRegressor
from ._unsupervised import NearestNeighbors
from ._verification import PairVerifier

__all__ = ["KNeighborsClassifier", "KNeighborsRegressor", "NearestNeighbors", "PairVerifier"]
