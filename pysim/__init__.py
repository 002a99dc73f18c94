"""pysim: similarity learning and nearest-neighbour search with SIMD C++ kernels.

The distance functions and indexes are imported eagerly (they need only numpy and the
compiled core); the scikit-learn based estimators and metric learners are imported on first
use, so ``import pysim`` stays light.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from . import _core
from ._distances import cdist, dot, paired_distances, simd_info

# The one definition of the version: pyproject.toml reads it from here (scikit-build-core regex).
__version__ = "0.1.0"

# name -> module that defines it, imported on first access.
_LAZY: dict[str, str] = {
    "BruteForceIndex": "._brute",
    "KDTreeIndex": "._kdtree",
    "HNSWIndex": "._hnsw",
    "Whitening": ".metric_learning",
    "NCA": ".metric_learning",
    "LMNN": ".metric_learning",
    "Covariance": ".metric_learning",
    "LFDA": ".metric_learning",
    "MLKR": ".metric_learning",
    "ITML_Supervised": ".metric_learning",
    "SDML_Supervised": ".metric_learning",
    "MMC_Supervised": ".metric_learning",
    "LSML_Supervised": ".metric_learning",
    "SCML_Supervised": ".metric_learning",
    "RCA_Supervised": ".metric_learning",
    "NearestNeighbors": ".neighbors",
    "KNeighborsClassifier": ".neighbors",
    "KNeighborsRegressor": ".neighbors",
    "PairVerifier": ".neighbors",
}

if TYPE_CHECKING:  # the lazily imported names, as type checkers and IDEs should see them
    from . import metrics as metrics
    from ._brute import BruteForceIndex as BruteForceIndex
    from ._hnsw import HNSWIndex as HNSWIndex
    from ._kdtree import KDTreeIndex as KDTreeIndex
    from .metric_learning import LMNN as LMNN
    from .metric_learning import NCA as NCA
    from .metric_learning import Whitening as Whitening
    from .neighbors import KNeighborsClassifier as KNeighborsClassifier
    from .neighbors import KNeighborsRegressor as KNeighborsRegressor
    from .neighbors import NearestNeighbors as NearestNeighbors
    from .neighbors import PairVerifier as PairVerifier

__all__ = [
    "__version__",
    "cdist",
    "dot",
    "paired_distances",
    "simd_info",
]

if _core.simd_info()["override"]:
    warnings.warn(_core.simd_info()["override"], RuntimeWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    if name in ("metrics", "recommend"):
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pysim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"metrics", "recommend"})
