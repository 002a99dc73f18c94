"""Recommendation on MovieLens-small: pysim.recommend against `implicit` and popularity.

Workload (issue 15): the MovieLens "latest-small" ratings embedded in the repository
(data/movielens-small/), every rating an interaction of weight 1, users and movies mapped to
0-based rows and columns, and per user the latest 20% of the interactions (by timestamp, at
least one) held out by ``pysim.recommend.temporal_split``. Every contender fits on the
training matrix and recommends N = 10 unseen items to every user (610), scored against the
held-out items with ``pysim.metrics.ranking_scores`` (precision, recall, NDCG, MAP, hit rate
at 10): the same split and the same metric code for everyone.

Contenders:
  baseline  popularity       the most-interacted-with unseen items
  implicit  cosine/bm25/tfidf K=100   CosineRecommender, BM25Recommender (its defaults
                                      K1=1.2, B=0.75, as pysim's), TFIDFRecommender
  implicit  als-64           AlternatingLeastSquares(factors=64), iterations 15, seed 0
  pysim     cosine/bm25/tfidf K=100   ItemKNN with the same similarity and K
  pysim     asymmetric, jaccard K=100 ItemKNN's other similarities
  pysim     ease-500         EASE(l2=500)

A second evaluation, not used for tuning anything (EASE's l2 = 500 and every other setting
are the ones chosen on the temporal split): a random per-user 80/20 holdout with a fixed seed
(``SEED``; the same hold-out counts as the temporal split, the interactions held out drawn at
random instead of the latest). Every contender runs on it once, at the smallest thread count
(EASE at the largest, as on the temporal split; quality does not depend on threads); the
report puts both NDCG@10 side by side.

Timed: fit and recommend-all-users, at 1 and 2 threads (pysim ``threads=t``; implicit
``num_threads=t``; BLAS capped at t with threadpoolctl), the benchmark time being fit +
recommend-all. Beside the wall time, each phase's process CPU time (``time.process_time``,
every thread of the process) is recorded: on a shared machine it is the steadier measure, and
at one thread it is the cost of the work itself; the report gives both ratios. Quality does
not depend on the thread count. EASE's fit is a dense 9,724^2
Cholesky inverse (LAPACK, BLAS threads): the quick run times it once, at the largest thread
count only (``--full``: every thread count, several rounds).
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import adaptive_rounds, full, limit_threads, peer, record, threads

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "movielens-small" / "ratings.csv.gz"
N = 10
K = 100
SEED = 0  # the random holdout's seed (fixed before any run; never varied)
SPLITS = ("temporal", "random")

#: (contender, case) -> what it is; cases name the similarity and K
CONTENDERS = [
    ("baseline", "popularity"),
    ("implicit", "cosine K=100"),
    ("implicit", "bm25 K=100"),
    ("implicit", "tfidf K=100"),
    ("implicit", "als-64"),
    ("pysim", "cosine K=100"),
    ("pysim", "bm25 K=100"),
    ("pysim", "tfidf K=100"),
    ("pysim", "asymmetric K=100"),
    ("pysim", "jaccard K=100"),
    ("pysim", "ease-500"),
]


@functools.cache
def split(name: str = "temporal"):
    """(train csr float32, test csr): the temporal 80/20 split, or the random holdout.

    The random holdout is ``temporal_split`` on a random permutation in place of the
    timestamps: per user the same number of interactions held out, chosen at random.
    """
    from pysim.recommend import temporal_split

    r = np.loadtxt(DATA, delimiter=",", skiprows=1)
    users = np.unique(r[:, 0], return_inverse=True)[1]
    items = np.unique(r[:, 1], return_inverse=True)[1]
    if name == "temporal":
        when = r[:, 3]
    elif name == "random":
        when = np.random.default_rng(SEED).permutation(len(r))
    else:
        raise ValueError(f"unknown split {name!r}")
    train, test = temporal_split(users, items, when, test_fraction=0.2)
    return train.astype(np.float32).tocsr(), test


class Popularity:
    """Most popular unseen items (numpy)."""

    def fit(self, X):
        self.counts = np.asarray(X.sum(axis=0)).ravel()
        return self

    def recommend(self, X):
        scores = np.broadcast_to(self.counts, X.shape).copy()
        scores[X.nonzero()] = -np.inf
        top = np.argpartition(-scores, N, axis=1)[:, :N]
        order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
        return np.take_along_axis(top, order, 1)


def make(contender: str, case: str, nthreads: int) -> Any:
    if contender == "baseline":
        return Popularity()
    if contender == "pysim":
        from pysim.recommend import EASE, ItemKNN

        if case == "ease-500":
            return EASE(l2=500.0)
        return ItemKNN(K, similarity=case.split()[0], threads=nthreads)
    implicit = peer("implicit")
    nn = peer("implicit.nearest_neighbours")
    if case == "als-64":
        return implicit.cpu.als.AlternatingLeastSquares(
            factors=64, iterations=15, random_state=0, num_threads=nthreads
        )
    cls = {
        "cosine": nn.CosineRecommender,
        "bm25": nn.BM25Recommender,
        "tfidf": nn.TFIDFRecommender,
    }[case.split()[0]]
    return cls(K=K, num_threads=nthreads)


def fit_recommend(
    contender: str, model: Any, train
) -> tuple[float, float, float, float, np.ndarray]:
    """(fit s, recommend-all s, fit CPU s, recommend-all CPU s, (n_users, N) item ids)."""
    users = np.arange(train.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # implicit's BLAS-threads advice, tqdm
        c0, t0 = time.process_time(), time.perf_counter()
        if contender == "implicit":
            model.fit(train, show_progress=False)
        else:
            model.fit(train)
        c1, t1 = time.process_time(), time.perf_counter()
        if contender == "pysim":
            ids = model.recommend(users, N=N)[1]
        elif contender == "implicit":
            ids = model.recommend(users, train, N=N, filter_already_liked_items=True)[0]
        else:
            ids = model.recommend(train)
        c2, t2 = time.process_time(), time.perf_counter()
    return t1 - t0, t2 - t1, c1 - c0, c2 - c1, np.asarray(ids)


@pytest.mark.parametrize("split_name", SPLITS)
@pytest.mark.parametrize("nthreads", threads((1, 2)))
@pytest.mark.parametrize("contender,case", CONTENDERS)
def test_recommend(benchmark, contender, case, nthreads, split_name):
    from pysim.metrics import ranking_scores

    counts = threads((1, 2))
    if contender == "baseline" and nthreads != counts[0]:
        pytest.skip("popularity is single-threaded numpy")
    slow = case == "ease-500"  # a dense 9,724^2 Cholesky inverse: seconds, not milliseconds
    if split_name != "temporal" and nthreads != (max(counts) if slow else counts[0]):
        pytest.skip("held-out evaluation: quality only, once (EASE at the largest count)")
    if slow and not full() and nthreads != max(counts):
        pytest.skip("quick run: EASE at the largest thread count only (--full: every count)")
    once = (slow and not full()) or split_name != "temporal"
    train, test = split(split_name)
    benchmark.group = f"recommend {split_name} threads={nthreads}"
    fits, recs, fit_cpu, rec_cpu, ids = [], [], [], [], []

    def run():
        f, r, fc, rc, found = fit_recommend(contender, make(contender, case, nthreads), train)
        fits.append(f)
        recs.append(r)
        fit_cpu.append(fc)
        rec_cpu.append(rc)
        ids.append(found)

    with limit_threads(nthreads):
        if once:
            benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
        else:
            run()  # warm-up (the recommendations are the same every round)
            n_rounds = adaptive_rounds(fits[0] + recs[0], budget=2.0)
            fits.clear(), recs.clear(), fit_cpu.clear(), rec_cpu.clear()
            benchmark.pedantic(run, rounds=n_rounds, iterations=1, warmup_rounds=0)
    found = ids[-1]
    assert found.shape == (train.shape[0], N)
    if contender == "pysim":  # never a seen item
        seen = train[np.arange(train.shape[0])[:, None], np.maximum(found, 0)].toarray()
        assert not seen[found >= 0].any()
    scores = ranking_scores(found, test, k=N)
    record(
        benchmark,
        contender=contender,
        case=case,
        split=split_name,
        threads=nthreads,
        fit_s=float(np.median(fits)),
        recommend_s=float(np.median(recs)),
        fit_cpu_s=float(np.median(fit_cpu)),
        recommend_cpu_s=float(np.median(rec_cpu)),
        # the median over rounds of fit + recommend-all CPU time (the ratio's basis)
        total_cpu_s=float(np.median(np.add(fit_cpu, rec_cpu))),
        # "_at_10" names: the generic report treats a plain "recall" as ANN recall.
        ndcg_at_10=scores["ndcg"],
        precision_at_10=scores["precision"],
        recall_at_10=scores["recall"],
        map_at_10=scores["map"],
        hit_rate_at_10=scores["hit_rate"],
        n_users=int(train.shape[0]),
        n_items=int(train.shape[1]),
    )


def _best_ratio(by: dict, split_name: str) -> str:
    """'best pysim NDCG@10 / best implicit NDCG@10' on one split, with the two model names."""
    best: dict[str, tuple[float, str]] = {}
    for (contender, case, _t, sp_name), r in by.items():
        if sp_name == split_name and contender in ("pysim", "implicit"):
            if r["ndcg_at_10"] > best.get(contender, (-1.0, ""))[0]:
                best[contender] = (r["ndcg_at_10"], case)
    if len(best) < 2:
        return ""
    (mine, my_case), (theirs, their_case) = best["pysim"], best["implicit"]
    return (
        f"{split_name}: best pysim ({my_case}) NDCG@10 {mine:.4f} / best implicit "
        f"({their_case}) {theirs:.4f} = {mine / theirs:.2f}x"
    )


def report_section(records: list[dict[str, Any]], out: Path) -> tuple[str, list[Path]]:
    """The issue's table: quality@10 and fit + recommend-all time per model and thread count,
    with the held-out random split's NDCG@10 / HR@10 beside the temporal split's."""
    recs = [r for r in records if r.get("case")]
    if not recs:
        return "", []
    for r in recs:
        r.setdefault("split", "temporal")
    tcounts = sorted({int(r["threads"]) for r in recs if r["split"] == "temporal"})
    by_all = {(r["contender"], r["case"], int(r["threads"]), r["split"]): r for r in recs}
    by = {k[:3]: r for k, r in by_all.items() if k[3] == "temporal"}
    held = {k[:2]: r for k, r in by_all.items() if k[3] == "random"}
    header = ["model", "NDCG@10", "P@10", "R@10", "HR@10"]
    for t in tcounts:
        header += [
            f"fit s ({t}t)",
            f"rec-all s ({t}t)",
            f"vs implicit ({t}t)",
            f"vs implicit CPU ({t}t)",
        ]
    header += ["NDCG@10 random", "HR@10 random"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    models = []
    for r in recs:
        key = (r["contender"], r["case"])
        if key not in models:
            models.append(key)
    for contender, case in models:
        mine_t = [by[(contender, case, t)] for t in tcounts if (contender, case, t) in by]
        any_r = mine_t[0] if mine_t else None
        if any_r is None:
            row = [f"{contender} {case}", "", "", "", ""]
        else:
            row = [
                f"{contender} {case}",
                f"{any_r['ndcg_at_10']:.4f}",
                f"{any_r['precision_at_10']:.4f}",
                f"{any_r['recall_at_10']:.4f}",
                f"{any_r['hit_rate_at_10']:.3f}",
            ]
        for t in tcounts:
            r = by.get((contender, case, t))
            if r is None:
                row += ["", "", "", ""]
                continue
            row += [f"{r['fit_s']:.3f}", f"{r['recommend_s']:.3f}"]
            p = by.get(("implicit", case, t))
            if contender == "pysim" and p is not None:
                mine = r["fit_s"] + r["recommend_s"]
                theirs = p["fit_s"] + p["recommend_s"]
                row.append(f"{theirs / mine:.1f}x")
                if "total_cpu_s" in r and "total_cpu_s" in p:
                    row.append(f"{p['total_cpu_s'] / r['total_cpu_s']:.2f}x")
                else:
                    row.append("")
            else:
                row += ["", ""]
        h = held.get((contender, case))
        row += [f"{h['ndcg_at_10']:.4f}", f"{h['hit_rate_at_10']:.3f}"] if h else ["", ""]
        lines.append("| " + " | ".join(row) + " |")
    ratios = [x for x in (_best_ratio(by_all, name) for name in SPLITS) if x]
    md = (
        "MovieLens-small, temporal 80/20 split, N = 10 (fit + recommend-all-users medians; "
        "'vs implicit' = implicit's (fit + recommend) time / pysim's, same similarity and K, "
        "same run; 'CPU': the same ratio of process CPU time, medians of fit + recommend-all "
        "per round). 'random': the held-out evaluation (random per-user 80/20 holdout, seed "
        f"{SEED}), never used for tuning:\n\n" + "\n".join(lines)
    )
    if ratios:
        md += "\n\n" + "\n".join(f"- {x}" for x in ratios)
    return md, []
