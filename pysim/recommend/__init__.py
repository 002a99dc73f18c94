"""Recommendation: item-based (ItemKNN) and learned (EASE) item-item models, and
content-based recommendation over item embeddings (EmbeddingRecommender).

``user_items`` is the one place pysim takes sparse input: a scipy.sparse matrix (any format)
or a dense array (n_users, n_items) of interaction weights; item ids are column numbers.
"""

from __future__ import annotations

from ._ease import EASE
from ._embedding import EmbeddingRecommender
from ._knn import ItemKNN
from ._split import temporal_split

__all__ = ["EASE", "EmbeddingRecommender", "ItemKNN", "temporal_split"]
