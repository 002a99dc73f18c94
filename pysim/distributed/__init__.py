"""Scale-out: a sharded pysim index on Dask (``pip install "pysim[distributed]"``).

``import pysim`` never imports this package (nor dask); ``import pysim.distributed`` does.
One pysim index per shard lives in one Dask worker's memory; see :class:`ShardedIndex`.
"""

from __future__ import annotations

try:
    import distributed as _distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'pysim.distributed needs dask.distributed: pip install "pysim[distributed]"'
    ) from exc

from ._cluster import ShardFailureError
from ._index import ShardedIndex
from ._merge import merge_topk

__all__ = ["ShardFailureError", "ShardedIndex", "merge_topk"]
