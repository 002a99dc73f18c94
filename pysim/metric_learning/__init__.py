"""Metric learning: Mahalanobis metrics learned from data, as scikit-learn transformers.

Each learner fits a linear map L (``components_``) so that Euclidean distance after
``transform(X) = X @ L.T`` is the learned distance; the result plugs into every pysim index
and into scikit-learn pipelines.

- :class:`Whitening`: unsupervised, the (shrunk) inverse covariance.
- :class:`NCA`: neighbourhood components analysis (softmax over neighbours).
- :class:`LMNN`: large margin nearest neighbour (target neighbours and impostors).
"""

from __future__ import annotations

from ._lmnn import LMNN
from ._nca import NCA
from ._whitening import Whitening

__all__ = ["LMNN", "NCA", "Whitening"]
