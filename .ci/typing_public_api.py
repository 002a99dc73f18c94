"""A typed user of pysim's public API, checked with `mypy --strict` by .ci/typing.sh.

It is never run; mypy reads it. Every annotation below is what the public API promises
(the numpydoc docstrings and api.md), so a signature or return type that drifts in the Python
layer, or a name that stops being importable from its public module, fails the typing stage.
pysim's internals are not held to --strict here (mypy follows imports silently); the compiled
module is checked against its stub by stubtest in the same stage.
"""

from __future__ import annotations

import numpy as np

import pysim
from pysim import metrics
from pysim.metric_learning import ITML, LMNN, MLKR, NCA, Whitening
from pysim.neighbors import (
    KNeighborsClassifier,
    KNeighborsRegressor,
    NearestNeighbors,
    PairVerifier,
)

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit("read by mypy only")


def distances(X: np.ndarray, Q: np.ndarray) -> None:
    d: np.ndarray = pysim.cdist(Q, X, "cosine", threads=1)
    g: np.ndarray = pysim.dot(Q, X)
    p: np.ndarray = pysim.paired_distances(Q, X[: len(Q)], "euclidean")
    info: dict[str, object] = pysim.simd_info()
    version: str = pysim.__version__
    del d, g, p, info, version


def indexes(X: np.ndarray, Q: np.ndarray, path: str) -> None:
    exact = pysim.BruteForceIndex(X, "sqeuclidean")
    exact.add(X[:10])
    d, i = exact.query(Q, k=10, threads=1)
    tree = pysim.KDTreeIndex(X[:, :3], leaf_size=32)
    within = tree.query_radius(Q[:, :3], 0.5, sort_results=True)
    ann = pysim.HNSWIndex(X.shape[1], "cosine", M=16, quantization="sq8")
    ann.add(X, ids=np.arange(len(X)), threads=1)
    hd, hi = ann.query(Q, k=10, ef=64, filter=np.arange(0, len(X), 2))
    ann.remove([0, 2])
    live: np.ndarray = ann.ids
    r: float = ann.recall(Q, k=10)
    ef: int = ann.tune_ef(Q, k=10, target_recall=0.9)
    nbytes: int = ann.memory_bytes()
    ann.save(path)
    n: int = len(ann)
    del d, i, within, hd, hi, live, r, ef, nbytes, n


def estimators(X: np.ndarray, y: np.ndarray) -> None:
    nca: NCA = NCA(n_components=2, max_iter=10, random_state=0).fit(X, y)
    lmnn: LMNN = LMNN(n_neighbors=3, max_iter=5).fit(X, y)
    white: Whitening = Whitening(shrinkage=0.1).fit(X)
    Z: np.ndarray = nca.transform(X)
    M: np.ndarray = lmnn.get_mahalanobis_matrix()
    pd: np.ndarray = white.pair_distance(X[:5], X[5:10])

    clf: KNeighborsClassifier = KNeighborsClassifier(3, metric_learner=NCA()).fit(X, y)
    labels: np.ndarray = clf.predict(X)
    accuracy: float = clf.score(X, y)
    reg: KNeighborsRegressor = KNeighborsRegressor(5).fit(X, y.astype(float))
    values: np.ndarray = reg.predict(X)
    nn: NearestNeighbors = NearestNeighbors(n_neighbors=4).fit(X)
    found = nn.kneighbors(X[:3])

    verifier: PairVerifier = PairVerifier("cosine", target_far=0.01).fit(
        X[:50], X[50:100], y[:50] == y[50:100]
    )
    scores: np.ndarray = verifier.decision_function(X[:5], X[5:10])
    same: np.ndarray = verifier.predict(X[:5], X[5:10])
    threshold: float = verifier.threshold_
    del Z, M, pd, labels, accuracy, values, found, scores, same, threshold


def recommendation(user_items: np.ndarray) -> None:
    from pysim.recommend import ItemKNN

    model: ItemKNN = ItemKNN(10, similarity="tfidf").fit(user_items)
    scores, items = model.recommend(np.arange(3), N=5)
    ranked: dict[str, float] = metrics.ranking_scores(items, [np.array([1, 2])] * 3, k=5)
    del scores, ranked


def weak_learners(X: np.ndarray, y: np.ndarray, pairs: np.ndarray, same: np.ndarray) -> None:
    mlkr: MLKR = MLKR(n_components=2).fit(X, y)
    itml: ITML = ITML().fit(pairs, same)
    Z: np.ndarray = mlkr.transform(X)
    del itml, Z


def verification_metrics(scores: np.ndarray, same: np.ndarray) -> None:
    e: float = metrics.eer(scores, same)
    t: float = metrics.tar_at_far(scores, same, 0.01)
    c: float = metrics.min_dcf(scores, same, p_target=0.01)
    points: tuple[np.ndarray, np.ndarray, np.ndarray] = metrics.operating_points(scores, same)
    del e, t, c, points
