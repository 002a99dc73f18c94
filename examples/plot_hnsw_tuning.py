"""
HNSW tuning: recall against queries per second
==============================================

:class:`pysim.HNSWIndex` trades recall for speed with one number, ``ef``: the width of the
beam each query keeps while walking the graph. It can be changed per call, so one index can be
measured at several ``ef`` and then set to the smallest one that meets the recall an
application needs - which is what :meth:`pysim.HNSWIndex.tune_ef` does.

The data are clustered 64-dimensional vectors generated here; the queries are held out from
the index. Recall@10 is measured against exact search by :meth:`pysim.HNSWIndex.recall`;
queries/s is one search thread, best of three rounds (a shared machine makes the timings
noisy; the recall does not change).
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs

import pysim

X, _ = make_blobs(n_samples=10_500, n_features=64, centers=40, cluster_std=6.0, random_state=0)
X = X.astype(np.float32)
data, queries = X[:10_000], X[10_000:]

index = pysim.HNSWIndex(dim=64, metric="sqeuclidean", M=16, ef_construction=100, seed=0)
index.add(data)


def queries_per_second(ef):
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        index.query(queries, k=10, ef=ef, threads=1)
        best = min(best, time.perf_counter() - t)
    return len(queries) / best


efs = [10, 16, 24, 32, 48, 64, 96, 128]
recall = [index.recall(queries, k=10, ef=ef) for ef in efs]
qps = [queries_per_second(ef) for ef in efs]
for ef, r, q in zip(efs, recall, qps, strict=True):
    print(f"ef={ef:4d}  recall@10={r:.4f}  {q:10,.0f} queries/s")

# %%
# ``tune_ef`` searches for the smallest ``ef`` whose recall on these queries reaches the
# target, and makes it the index's default. (Tune on queries drawn like the real ones.)
chosen = index.tune_ef(queries, k=10, target_recall=0.95)
chosen_recall = index.recall(queries, k=10)
chosen_qps = queries_per_second(chosen)
print(f"tune_ef(target_recall=0.95) -> ef={chosen}, recall@10={chosen_recall:.4f}")

fig, ax = plt.subplots(figsize=(7, 4.5))
ax.plot(recall, qps, "o-", label="HNSWIndex, one thread")
for ef, r, q in zip(efs, recall, qps, strict=True):
    ax.annotate(f"ef={ef}", (r, q), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.plot([chosen_recall], [chosen_qps], "r*", markersize=16, label=f"tune_ef(0.95) -> ef={chosen}")
ax.axvline(0.95, color="r", linestyle=":", linewidth=1)
ax.set_xlabel("recall@10")
ax.set_ylabel("queries per second")
ax.set_yscale("log")
ax.set_title(f"HNSW on {len(data):,} x 64 clustered vectors, M=16")
ax.legend()
plt.show()
