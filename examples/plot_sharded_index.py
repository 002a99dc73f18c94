"""
A sharded index on a Dask LocalCluster
======================================

:class:`pysim.distributed.ShardedIndex` splits one index into shards, one per Dask worker, each
an :class:`pysim.HNSWIndex` (or an exact brute-force shard) living in that worker's memory. A
query goes to every shard and the per-shard top-k lists are merged on the workers, so the
answer is that of one index over the union: distances ascending, ties to the smaller id.

Here a :class:`distributed.LocalCluster` with two in-process workers stands in for a real
cluster (``Client("scheduler:8786")`` works the same). The exact shards (``kind="brute"``) give
exactly :class:`pysim.BruteForceIndex`'s answer over all rows; the HNSW shards are compared
with one HNSW index over the same rows, at several ``ef``.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster
from sklearn.datasets import make_blobs

import pysim
from pysim.distributed import ShardedIndex

X, _ = make_blobs(n_samples=6_300, n_features=32, centers=30, cluster_std=5.0, random_state=0)
X = X.astype(np.float32)
data, queries = X[:6_000], X[6_000:]

cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
client = Client(cluster)

# %%
# Exact shards: the same answer as one exact index.
exact = ShardedIndex(32, "sqeuclidean", kind="brute", client=client)
exact.add(data)
d_sharded, i_sharded = exact.query(queries, k=10)
d_single, i_single = pysim.BruteForceIndex(data, "sqeuclidean").query(queries, k=10)
print("shard sizes:", exact.shard_sizes)
print("exact shards == one BruteForceIndex:", np.array_equal(i_sharded, i_single))

# %%
# HNSW shards: recall@10 against the exact answer, next to one HNSWIndex over all rows.
sharded = ShardedIndex(32, "sqeuclidean", kind="hnsw", client=client, M=16, ef_construction=100)
sharded.add(data)
single = pysim.HNSWIndex(32, "sqeuclidean", M=16, ef_construction=100)
single.add(data)


def recall(ids):
    return np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(ids, i_single, strict=True)])


efs = [10, 16, 24, 32, 64]
rec_sharded = [recall(sharded.query(queries, k=10, ef=ef)[1]) for ef in efs]
rec_single = [recall(single.query(queries, k=10, ef=ef)[1]) for ef in efs]
for ef, a, b in zip(efs, rec_sharded, rec_single, strict=True):
    print(f"ef={ef:3d}  ShardedIndex (2 shards) {a:.4f}   one HNSWIndex {b:.4f}")

fig, ax = plt.subplots(figsize=(6.5, 4.2))
ax.plot(efs, rec_single, "o-", label="one HNSWIndex")
ax.plot(efs, rec_sharded, "s-", label=f"ShardedIndex, {sharded.n_shards} shards")
ax.set_xlabel("ef (per shard)")
ax.set_ylabel("recall@10")
ax.set_title(f"{len(data):,} x 32 vectors on a 2-worker LocalCluster")
ax.legend()
plt.show()

sharded.close()
exact.close()
client.close()
cluster.close()
