"""
Quantised HNSW: memory against recall
=====================================

``HNSWIndex(quantization=...)`` walks the graph over compressed vectors and re-ranks the best
candidates exactly. Each variant is built here on the same clustered 64-dimensional vectors
and measured on the same queries: the bytes the index holds per vector
(:meth:`pysim.HNSWIndex.memory_bytes`, graph included) against recall@10, and recall@10 as
``ef`` grows.

- ``"f16"`` / ``"bf16"``: 16-bit floats, half the vector memory, rank like float32;
- ``"sq8"`` / ``"sq4"``: 8- / 4-bit codes on per-dimension ranges learned from the first batch,
  re-ranked against a float32 copy (``refine=0`` drops the copy: the smallest index);
- ``"rabitq"``: 1-bit codes of every neighbour stored next to each vertex - faster walks,
  more memory, exact returned distances.

On data like this the 8-bit codes lose little; on other data they can lose more (the user
guide's table shows 6.6 recall points for ``sq8, refine=0`` on a clustered set): measure on
your own data before dropping the float32 copy.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs

import pysim

X, _ = make_blobs(n_samples=8_500, n_features=64, centers=40, cluster_std=10.0, random_state=0)
X = X.astype(np.float32)
data, queries = X[:8_000], X[8_000:]

EF = 48  # the beam at which the variants are compared
EFS = [16, 24, 32, 48, 64, 96, 128]
variants = {
    "float32": {},
    "f16": {"quantization": "f16"},
    "bf16": {"quantization": "bf16"},
    "sq8": {"quantization": "sq8"},
    "sq8, refine=0": {"quantization": "sq8", "refine": 0},
    "sq4": {"quantization": "sq4"},
    "rabitq": {"quantization": "rabitq"},
}
results = {}
for name, params in variants.items():
    index = pysim.HNSWIndex(64, "sqeuclidean", M=16, ef_construction=100, seed=0, **params)
    index.add(data)
    curve = [index.recall(queries, k=10, ef=ef) for ef in EFS]
    results[name] = (index.memory_bytes() / len(index), curve)
    print(
        f"{name:14s} {results[name][0]:6.0f} bytes/vector  recall@10 at ef={EF}: "
        f"{curve[EFS.index(EF)]:.4f}"
    )

# %%
# Left: what each variant costs in memory and gives in recall at one ``ef``. Right: recall as
# the beam grows - the 8- and 16-bit variants follow float32, ``sq4`` trails it a little, and
# ``rabitq``'s 1-bit estimates (around one global centre) are too coarse for these tightly
# clustered vectors: it needs a much wider beam for the same recall.
fig, (mem, curves) = plt.subplots(1, 2, figsize=(11, 4.5))
names = list(results)
for name, (nbytes, curve) in results.items():
    (line,) = curves.plot(EFS, curve, "o-", markersize=4, label=name)
    mem.barh(name, nbytes, color=line.get_color())
    mem.text(nbytes + 10, name, f"recall {curve[EFS.index(EF)]:.3f}", va="center", fontsize=8)
mem.axvline(64 * 4, color="grey", linestyle=":", label="one float32 vector (256 B)")
mem.invert_yaxis()
mem.set_xlim(0, 1.3 * max(nbytes for nbytes, _ in results.values()))
mem.set_xlabel("index bytes per vector (graph, codes, float32 copy)")
mem.set_title(f"Memory, and recall@10 at ef={EF} ({len(data):,} x 64)")
mem.legend(loc="lower right", fontsize=8)
curves.set_xscale("log", base=2)
curves.set_xticks(EFS, [str(e) for e in EFS])
curves.set_xlabel("ef")
curves.set_ylabel("recall@10")
curves.set_title("Recall against the beam width")
curves.legend(fontsize=8)
fig.tight_layout()
plt.show()
