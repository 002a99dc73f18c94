"""Metric learning: Mahalanobis metrics learned from data, as scikit-learn transformers.

Each learner fits a linear map L (``components_``) so that Euclidean distance after
``transform(X) = X @ L.T`` is the learned distance; the result plugs into every pysim index
and into scikit-learn pipelines.

From class labels (``fit(X, y)``):

- :class:`Whitening` (alias :class:`Covariance`): unsupervised, the (shrunk) inverse covariance.
- :class:`NCA`: neighbourhood components analysis (softmax over neighbours).
- :class:`LMNN`: large margin nearest neighbour (target neighbours and impostors).
- :class:`LFDA`: local Fisher discriminant analysis.
- :class:`MLKR`: metric learning for kernel regression (real-valued y).
- ``ITML_Supervised``, ``SDML_Supervised``, ``MMC_Supervised``, ``LSML_Supervised``,
  ``SCML_Supervised``, ``RCA_Supervised``: the weakly supervised algorithms on constraints
  drawn from the labels.

From weak supervision, with metric-learn's API (``import metric_learn`` can be replaced):

- pairs ``fit(pairs, y)``, y = +1 similar / -1 dissimilar: :class:`ITML`, :class:`SDML`,
  :class:`MMC` (``predict``, ``decision_function``, ``calibrate_threshold``, ``threshold_``);
- triplets ``fit(triplets)``: :class:`SCML`; quadruplets ``fit(quadruplets)``: :class:`LSML`;
- chunklets ``fit(X, chunks)``: :class:`RCA`.

Embeddings trained with mined negatives (labels, or explicit triplets / pairs):
:class:`TripletEmbedding` (triplet margin loss), :class:`ContrastiveEmbedding` (Siamese,
contrastive loss).
"""

from __future__ import annotations

from ._embedding import ContrastiveEmbedding, TripletEmbedding
from ._itml import ITML, ITML_Supervised
from ._lfda import LFDA
from ._lmnn import LMNN
from ._lsml import LSML, LSML_Supervised
from ._mlkr import MLKR
from ._mmc import MMC, MMC_Supervised
from ._nca import NCA
from ._rca import RCA, RCA_Supervised
from ._scml import SCML, SCML_Supervised
from ._sdml import SDML, SDML_Supervised
from ._whitening import Whitening

#: metric-learn's name for the inverse-covariance metric.
Covariance = Whitening

__all__ = [
    "ITML",
    "LFDA",
    "LMNN",
    "LSML",
    "MLKR",
    "MMC",
    "NCA",
    "RCA",
    "SCML",
    "SDML",
    "ContrastiveEmbedding",
    "Covariance",
    "ITML_Supervised",
    "LSML_Supervised",
    "MMC_Supervised",
    "RCA_Supervised",
    "SCML_Supervised",
    "SDML_Supervised",
    "TripletEmbedding",
    "Whitening",
]
