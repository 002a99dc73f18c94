"""
"More like this" on MovieLens-small
===================================

:class:`pysim.recommend.ItemKNN` learns which films are watched by the same people (a top-K
item-item similarity over the user-item interaction matrix) and recommends, for a user, the
films most similar to the ones they have seen - leaving out every film they have already seen
(``exclude_seen=True``, applied inside the C++ top-N selection, so N results always come back).

The data are MovieLens-small (610 users, 9,724 films, 100,836 ratings; GroupLens' license in
``data/movielens-small/README.txt``), shipped with the repository. Every rating counts as one
interaction; the latest 20% of each user's ratings are held out
(:func:`pysim.recommend.temporal_split`) and used to score the recommendations with
:func:`pysim.metrics.ranking_scores`.
"""

# %%
import csv
import gzip
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pysim.metrics import ranking_scores
from pysim.recommend import ItemKNN, temporal_split

here = Path.cwd()
data = next(
    p / "data" / "movielens-small"
    for p in (here, *here.parents)
    if (p / "data" / "movielens-small").is_dir()
)
ratings = np.loadtxt(data / "ratings.csv.gz", delimiter=",", skiprows=1)
movie_ids, items = np.unique(ratings[:, 1], return_inverse=True)
users = np.unique(ratings[:, 0], return_inverse=True)[1]
train, test = temporal_split(users, items, ratings[:, 3], test_fraction=0.2)
with gzip.open(data / "movies.csv.gz", "rt", encoding="utf-8") as f:
    titles = {int(row[0]): row[1] for row in list(csv.reader(f))[1:]}
title = [titles[int(m)] for m in movie_ids]  # by item column

model = ItemKNN(100, similarity="tfidf").fit(train)

# %%
# Films like one film: the item-item similarities themselves (the film itself excluded).
seeds = [title.index("Toy Story (1995)"), title.index("Matrix, The (1999)")]
sim_scores, similar = model.similar_items(seeds, N=8)

# %%
# A user's recommendations: the films most like the ones they saw, none of which they saw.
user = 0
seen = train[user].indices
scores, recs = model.recommend([user], N=8)  # one user: (1, 8) arrays
assert not np.isin(recs, seen).any()
print(f"user {user} saw {len(seen)} films in training, e.g. {[title[i] for i in seen[:3]]}")
for s, i in zip(scores[0], recs[0], strict=True):
    print(f"  {s:7.3f}  {title[i]}")

all_scores, all_recs = model.recommend(np.arange(train.shape[0]), N=10)
quality = ranking_scores(all_recs, test, k=10)
print({k: round(v, 3) for k, v in quality.items()})

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
panels = [
    (f"like {title[seeds[0]]}", sim_scores[0], similar[0]),
    (f"like {title[seeds[1]]}", sim_scores[1], similar[1]),
    (f"for user {user} (seen excluded)", scores[0], recs[0]),
]
for ax, (name, s, ids) in zip(axes, panels, strict=True):
    ax.barh([title[i][:32] for i in ids], s)
    ax.invert_yaxis()
    ax.set_title(name, fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("score")
fig.suptitle(f"ItemKNN (tf-idf, K=100): NDCG@10 on the held-out ratings {quality['ndcg']:.3f}")
fig.tight_layout()
plt.show()
