"""Metric learning: fit time and 3-NN test accuracy of pysim's learners against the peers.

``test_target_table`` is issue 16's table: every pysim learner (ITML, SDML, LSML, MMC, RCA,
SCML, LFDA, MLKR, Covariance, NCA, LMNN, TripletEmbedding, ContrastiveEmbedding) beside its
metric-learn twin (and scikit-learn's NCA), on the same splits in the same run, on split seeds
(``TABLE_SEED``) no default was tuned on. The twins run in a worker subprocess that is stopped
when a fit passes 120 s, so the table can say "twin > 120 s, pysim finishes"; a twin that
raises is recorded with its error. MLKR, a regression metric, is scored by 3-NN regression
RMSE. Quick mode: wine and diabetes, 2 splits, twins capped at 10 s; ``--full``: wine (5
splits), digits (3),
MNIST-PCA50 (first 5,000 fit / last 5,000 test), diabetes (5), Friedman #1 (2,000 / 2,000).
The markdown table is printed at the end and written to ``results/metric.md`` by run.py.

``test_fit_and_accuracy`` is the older comparison of Whitening / NCA / LMNN with scikit-learn's
NCA and metric-learn's NCA, LMNN, ITML and Covariance on iris, wine, breast cancer and digits
(5 seeded stratified 70/30 splits, seed 0), and MNIST-PCA50 with ``--full``; quick mode: 2
splits, no metric-learn peers (they are in the table), no scikit-learn NCA on digits.
Every contender sees the same splits and the same standardised features; accuracy is the
3-NN test accuracy (scikit-learn's KNeighborsClassifier on the transformed data), averaged
over the splits; ``fit_s`` is the median fit time.

``test_nca_same_iterations`` times pysim's NCA and scikit-learn's at the same number of
L-BFGS iterations (tol=0, max_iter fixed), which is the fair speed comparison.

metric-learn 0.7.0 passes scikit-learn's ``force_all_finite`` argument, removed in 1.8; a
shim below renames it to ``ensure_all_finite`` for the benchmark only (pysim never depends
on metric-learn).
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import full, limit_threads, peer, read_idx, record, require_data, settle_threads

THREADS = 2
N_SPLITS = 5


# The same scikit-learn >= 1.8 shim as tests/test_metric_learning_weak.py's: the benchmarks and the
# tests are separate trees and neither imports the other (duplicates pairs them).
def _metric_learn():
    ml = peer("metric_learn")
    util = ml._util
    if not getattr(util, "_pysim_shim", False):

        def renamed(fn):
            @functools.wraps(fn)
            def call(*args, **kwargs):
                if "force_all_finite" in kwargs:
                    kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
                return fn(*args, **kwargs)

            return call

        util.check_array = renamed(util.check_array)
        util.check_X_y = renamed(util.check_X_y)
        util._pysim_shim = True
    return ml


# contender -> factory(random_state) of an object with fit(X, y) and transform(X);
# None is the Euclidean baseline.
def _contenders() -> dict[str, Callable[[int], Any] | None]:
    import pysim

    def sk_nca(seed):
        from sklearn.neighbors import NeighborhoodComponentsAnalysis

        return NeighborhoodComponentsAnalysis(random_state=seed)

    return {
        "euclidean": None,
        "pysim-whitening": lambda seed: pysim.Whitening(shrinkage=0.1),
        "pysim-nca": lambda seed: pysim.NCA(random_state=seed),
        "pysim-lmnn": lambda seed: pysim.LMNN(n_neighbors=3, random_state=seed),
        "sklearn-nca": sk_nca,
        "metric-learn-nca": lambda seed: _metric_learn().NCA(random_state=seed),
        "metric-learn-lmnn": lambda seed: _metric_learn().LMNN(n_neighbors=3, random_state=seed),
        "metric-learn-itml": lambda seed: _metric_learn().ITML_Supervised(random_state=seed),
        "metric-learn-covariance": lambda seed: _metric_learn().Covariance(),
        # Weakly supervised learners (constraints drawn from the labels) and their twins.
        "pysim-itml": lambda seed: pml().ITML_Supervised(random_state=seed),
        "pysim-sdml": lambda seed: pml().SDML_Supervised(balance_param=1e-3, random_state=seed),
        "metric-learn-sdml": lambda seed: _metric_learn().SDML_Supervised(
            balance_param=1e-3, prior="identity", random_state=seed
        ),
        "pysim-mmc": lambda seed: pml().MMC_Supervised(random_state=seed),
        "metric-learn-mmc": lambda seed: _metric_learn().MMC_Supervised(random_state=seed),
        "pysim-lsml": lambda seed: pml().LSML_Supervised(random_state=seed),
        "metric-learn-lsml": lambda seed: _metric_learn().LSML_Supervised(random_state=seed),
        "pysim-scml": lambda seed: pml().SCML_Supervised(random_state=seed),
        "metric-learn-scml": lambda seed: _metric_learn().SCML_Supervised(random_state=seed),
        # Ledoit-Wolf shrinkage (no tuned constant), as pysim-covariance's shrinkage: the 100
        # chunklets of 2 of metric-learn's default leave the plain estimate so noisy that one
        # chunk draw's 3-NN accuracy on MNIST-PCA50 spreads +- 0.6 points (both libraries).
        "pysim-rca": lambda seed: pml().RCA_Supervised(shrinkage="auto", random_state=seed),
        "metric-learn-rca": lambda seed: _metric_learn().RCA_Supervised(random_state=seed),
        "pysim-lfda": lambda seed: pml().LFDA(),
        "metric-learn-lfda": lambda seed: _metric_learn().LFDA(k=7),
        "pysim-covariance": lambda seed: pml().Covariance(shrinkage=0.1),
        "pysim-mlkr": lambda seed: pml().MLKR(random_state=seed),
        "metric-learn-mlkr": lambda seed: _metric_learn().MLKR(random_state=seed),
        "pysim-triplet": lambda seed: pml().TripletEmbedding(random_state=seed),
        "pysim-contrastive": lambda seed: pml().ContrastiveEmbedding(random_state=seed),
    }


def pml():
    import pysim.metric_learning

    return pysim.metric_learning


CONTENDERS = [
    "euclidean",
    "pysim-whitening",
    "pysim-nca",
    "pysim-lmnn",
    "sklearn-nca",
    "metric-learn-nca",
    "metric-learn-lmnn",
    "metric-learn-itml",
    "metric-learn-covariance",
]
SMALL = ["iris", "wine", "breast-cancer", "digits"]
DATASETS = SMALL + (["mnist-pca50"] if full() else [])


def load_small(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of one of scikit-learn's bundled classification sets (SMALL)."""
    from sklearn import datasets

    loader = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast-cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
    }[name]
    return loader(return_X_y=True)


@functools.cache
def splits(name: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """[(X_train, y_train, X_test, y_test)], standardised (small sets) or PCA-50 (MNIST)."""
    if name == "mnist-pca50":
        from sklearn.decomposition import PCA

        root = require_data("mnist")
        X = read_idx(root / "t10k-images-idx3-ubyte.gz").reshape(10000, 784) / 255.0
        y = read_idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
        pca = PCA(50, random_state=0).fit(X[:5000])
        return [(pca.transform(X[:5000]), y[:5000], pca.transform(X[5000:]), y[5000:])]
    from sklearn.model_selection import StratifiedShuffleSplit
    from sklearn.preprocessing import StandardScaler

    X, y = load_small(name)
    out = []
    sss = StratifiedShuffleSplit(n_splits=N_SPLITS, test_size=0.3, random_state=0)
    for tr, te in sss.split(X, y):
        scaler = StandardScaler().fit(X[tr])
        out.append((scaler.transform(X[tr]), y[tr], scaler.transform(X[te]), y[te]))
    return out


def knn3_accuracy(Xtr, ytr, Xte, yte) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    return float(KNeighborsClassifier(3).fit(Xtr, ytr).score(Xte, yte))


def evaluate(name: str, make: Callable[[int], Any] | None, n_splits: int | None = None):
    """Fit on every split (or the first `n_splits`); return (median fit s, mean acc, iters)."""
    times, accs, iters = [], [], []
    for seed, (Xtr, ytr, Xte, yte) in enumerate(splits(name)[:n_splits]):
        if make is None:
            times.append(0.0)
            accs.append(knn3_accuracy(Xtr, ytr, Xte, yte))
            continue
        model = make(seed)
        t0 = time.perf_counter()
        model.fit(Xtr, ytr)
        times.append(time.perf_counter() - t0)
        iters.append(int(getattr(model, "n_iter_", 0) or 0))
        Ztr, Zte = model.transform(Xtr), model.transform(Xte)
        assert np.isfinite(Ztr).all() and np.isfinite(Zte).all()
        accs.append(knn3_accuracy(Ztr, ytr, Zte, yte))
    return statistics.median(times), float(np.mean(accs)), iters


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("contender", CONTENDERS)
def test_fit_and_accuracy(benchmark, contender, dataset):
    make = _contenders()[contender]
    if contender.startswith("metric-learn"):
        _metric_learn()  # skip with a reason if missing
    if contender.startswith("metric-learn") and not full():
        # The quick run meets metric-learn in test_target_table (wine, capped); its LMNN and
        # ITML take many seconds per split even on iris here.
        pytest.skip(f"{contender} on {dataset}: run with --full (quick run: test_target_table)")
    slow_peers = ("metric-learn-nca", "metric-learn-lmnn", "metric-learn-itml", "sklearn-nca")
    _fit_and_accuracy(benchmark, contender, dataset, make, slow_peers, None if full() else 2)


def _fit_and_accuracy(benchmark, contender, dataset, make, slow_peers, n_splits=None):
    if contender in slow_peers and dataset in ("digits", "mnist-pca50") and not full():
        # Minutes per split for these pure-Python peers: the default run keeps to its
        # 10-minute budget; --full times them.
        pytest.skip(f"{contender} takes many minutes on {dataset}; run with --full")
    result: dict[str, Any] = {}

    def run():
        with limit_threads(THREADS):
            try:
                result["fit_s"], result["accuracy"], result["n_iter"] = evaluate(
                    dataset, make, n_splits
                )
            except Exception as exc:  # a peer broken on this scikit-learn: recorded, not fatal
                if contender.startswith("pysim"):
                    raise
                result["error"] = f"{type(exc).__name__}: {str(exc)[:120]}"

    benchmark.pedantic(run, rounds=1, iterations=1)
    if "error" in result:
        pytest.skip(f"{contender} failed on {dataset}: {result['error']}")
    split = f"{n_splits or N_SPLITS}x stratified 70/30"
    if dataset == "mnist-pca50":
        split = "first 5000 / last 5000"
    print(
        f"\n{dataset:14s} {contender:24s} acc {result['accuracy']:.4f}  "
        f"fit {result['fit_s']:.3f} s  iters {result['n_iter']}"
    )
    record(
        benchmark,
        contender=contender,
        dataset=dataset,
        case=dataset,
        fit_s=result["fit_s"],
        accuracy=result["accuracy"],
        n_iter=",".join(map(str, result["n_iter"])),
        split=split,
        threads=THREADS,
    )


SPEED_SETS = ["wine"] + (["digits", "mnist-pca50"] if full() else [])


@pytest.mark.parametrize("dataset", SPEED_SETS)
@pytest.mark.parametrize("contender", ["pysim-nca", "sklearn-nca"])
def test_nca_same_iterations(benchmark, contender, dataset):
    """NCA fit time at exactly `max_iter` L-BFGS iterations (tol=0), first split."""
    from sklearn.neighbors import NeighborhoodComponentsAnalysis

    import pysim

    max_iter = 30
    Xtr, ytr, Xte, yte = splits(dataset)[0]
    cls = pysim.NCA if contender == "pysim-nca" else NeighborhoodComponentsAnalysis
    models = []

    def fit():
        with limit_threads(THREADS):
            models.append(cls(max_iter=max_iter, tol=0.0, random_state=0).fit(Xtr, ytr))

    benchmark.pedantic(fit, rounds=1 if dataset == "mnist-pca50" else 3, iterations=1)
    model = models[-1]
    acc = knn3_accuracy(model.transform(Xtr), ytr, model.transform(Xte), yte)
    record(
        benchmark,
        contender=contender,
        dataset=dataset,
        case=f"{dataset} NCA {max_iter} iterations",
        fit_s=benchmark.stats.stats.median,
        accuracy=acc,
        n_iter=int(model.n_iter_),
        split="first split",
        threads=THREADS,
    )


# ------------------------------------------------------------------ issue 16's target table
#
# One row per learner and dataset: pysim's learner and its metric-learn twin (and
# scikit-learn's NCA) fitted on the same splits in the same run. The twins run in a worker
# subprocess so a twin slower than TWIN_CAP_S can be stopped and recorded as "> 120 s"
# (a pure-numpy loop cannot be interrupted in-process); the worker is started once and
# reused, so its imports are paid once. The splits use TABLE_SEED, which no learner's
# defaults were tuned on (development used the seed-0 splits above).

#: A twin's fit is stopped past this (quick mode: 10 s, so the default run stays short).
TWIN_CAP_S = 120.0 if full() else 5.0
TABLE_SEED = 2026
#: learner -> (pysim contender, twins); the embeddings' yardstick is LMNN (issue 16).
TABLE: dict[str, tuple[str, list[str]]] = {
    "ITML": ("pysim-itml", ["metric-learn-itml"]),
    "SDML": ("pysim-sdml", ["metric-learn-sdml"]),
    "LSML": ("pysim-lsml", ["metric-learn-lsml"]),
    "MMC": ("pysim-mmc", ["metric-learn-mmc"]),
    "RCA": ("pysim-rca", ["metric-learn-rca"]),
    "SCML": ("pysim-scml", ["metric-learn-scml"]),
    "LFDA": ("pysim-lfda", ["metric-learn-lfda"]),
    "MLKR": ("pysim-mlkr", ["metric-learn-mlkr"]),
    "Covariance": ("pysim-covariance", ["metric-learn-covariance"]),
    "NCA": ("pysim-nca", ["metric-learn-nca", "sklearn-nca"]),
    "LMNN": ("pysim-lmnn", ["metric-learn-lmnn"]),
    "TripletEmbedding": ("pysim-triplet", ["metric-learn-lmnn", "pysim-lmnn"]),
    "ContrastiveEmbedding": ("pysim-contrastive", ["metric-learn-lmnn", "pysim-lmnn"]),
}
CLASSIFY_SETS = ["wine"] + (["iris", "breast-cancer", "digits", "mnist-pca50"] if full() else [])
REGRESS_SETS = ["diabetes"] + (["friedman1"] if full() else [])
#: Splits per dataset: quick mode 2 on wine; --full 5 (iris, wine, breast cancer, diabetes),
#: 3 (digits), 1 (MNIST).
TABLE_SPLITS = {
    "iris": 5,
    "wine": 5,
    "breast-cancer": 5,
    "digits": 3,
    "mnist-pca50": 1,
    "diabetes": 5,
    "friedman1": 1,
}


def _table_cases() -> list[tuple[str, str, str]]:
    """(learner, dataset, contender) rows of the table, each contender once per dataset."""
    cases, seen = [], set()
    for learner, (mine, twins) in TABLE.items():
        sets = REGRESS_SETS if learner == "MLKR" else CLASSIFY_SETS
        for ds in sets:
            for c in [mine, *twins]:
                if (ds, c) not in seen:
                    seen.add((ds, c))
                    cases.append((learner, ds, c))
    return cases


@functools.cache
def table_splits(name: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The table's splits: seeded 70/30 (stratified for classes), MNIST first / last 5,000."""
    if name == "mnist-pca50":
        return splits(name)
    from sklearn import datasets
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
    from sklearn.preprocessing import StandardScaler

    n_splits = TABLE_SPLITS[name] if full() else 2
    if name == "friedman1":  # 5 informative + 5 noise features: MLKR should drop the noise
        X, y = datasets.make_friedman1(4000, n_features=10, noise=0.5, random_state=TABLE_SEED)
        cut = 2000
        scaler = StandardScaler().fit(X[:cut])
        return [(scaler.transform(X[:cut]), y[:cut], scaler.transform(X[cut:]), y[cut:])]
    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
        sss = ShuffleSplit(n_splits=n_splits, test_size=0.3, random_state=TABLE_SEED)
        parts = sss.split(X)
    else:
        X, y = load_small(name)
        sss = StratifiedShuffleSplit(n_splits=n_splits, test_size=0.3, random_state=TABLE_SEED)
        parts = sss.split(X, y)
    out = []
    for tr, te in parts:
        scaler = StandardScaler().fit(X[tr])
        out.append((scaler.transform(X[tr]), y[tr], scaler.transform(X[te]), y[te]))
    return out


#: A fit shorter than SHORT_FIT_S is timed SHORT_FIT_REPEATS times (fresh estimators, both
#: sides alike) and its median reported: one cold millisecond fit is mostly the process
#: waking up (OpenBLAS threads, first-touch pages), and a twin's single Covariance fit took
#: 3.4, 145 and 3.9 ms in three runs. The first fit's time is kept as ``first_fit_s``.
SHORT_FIT_S = 0.1
SHORT_FIT_REPEATS = 5


def fit_score(contender: str, dataset: str, split: int, on_start=None) -> dict[str, Any]:
    """Fit one contender on one table split: fit seconds and 3-NN test accuracy (regression
    sets: 3-NN regression RMSE)."""
    Xtr, ytr, Xte, yte = table_splits(dataset)[split]
    model = _contenders()[contender](TABLE_SEED + split)
    settle_threads()
    if on_start is not None:
        on_start()
    with limit_threads(THREADS):
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(Xtr, ytr)
        fit_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        times = {"first_fit_s": fit_s}
        if fit_s < SHORT_FIT_S:  # a millisecond fit: the median of SHORT_FIT_REPEATS fits
            fits, cpus = [fit_s], [cpu_s]
            for _ in range(SHORT_FIT_REPEATS - 1):
                again = _contenders()[contender](TABLE_SEED + split)
                t0, c0 = time.perf_counter(), time.process_time()
                again.fit(Xtr, ytr)
                fits.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            fit_s, cpu_s = statistics.median(fits), statistics.median(cpus)
        Ztr, Zte = model.transform(Xtr), model.transform(Xte)
    times.update(fit_s=fit_s, cpu_s=cpu_s)
    if not (np.isfinite(Ztr).all() and np.isfinite(Zte).all()):
        return {"error": "non-finite transform"}
    if dataset in REGRESS_SETS or dataset in ("diabetes", "friedman1"):
        from sklearn.neighbors import KNeighborsRegressor

        pred = KNeighborsRegressor(3).fit(Ztr, ytr).predict(Zte)
        return {**times, "rmse": float(np.sqrt(np.mean((pred - yte) ** 2)))}
    return {**times, "accuracy": knn3_accuracy(Ztr, ytr, Zte, yte)}


class TwinWorker:
    """A subprocess that fits peers on request (one JSON line in, JSON lines out).

    It answers ``{"status": "fitting"}`` once the data is ready and the fit starts, then the
    result; the parent kills it (by its own pid) when the result takes longer than the cap.
    """

    def __init__(self):
        self.proc: Any = None
        self.buffer = b""

    def _start(self) -> None:
        import subprocess
        import sys

        self.buffer = b""
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--twin-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=str(Path(__file__).parent),
        )

    def _read(self, timeout: float) -> dict[str, Any] | None:
        import json
        import os
        import select

        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                if line.startswith(b"@@"):
                    return json.loads(line[2:])
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return {"error": "the worker process died"}
            self.buffer += chunk

    def run(
        self, contender: str, dataset: str, split: int, cap: float, kind: str = "table"
    ) -> dict[str, Any]:
        import json

        if self.proc is None or self.proc.poll() is not None:
            self._start()
        job = {"contender": contender, "dataset": dataset, "split": split, "kind": kind}
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        msg = self._read(900.0)  # imports and data loading (MNIST PCA) come first
        if msg is not None and msg.get("status") == "fitting":
            msg = self._read(cap + 10.0)  # + the transform and the 3-NN scoring
        if msg is None:
            self.stop()
            return {"timeout": True}
        if msg.get("fit_s", 0.0) > cap:
            return {"timeout": True}
        return msg

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _twin_worker_main() -> None:
    """The worker's loop (``python bench_metric_learning.py --twin-worker``)."""
    import json
    import sys

    for line in sys.stdin:
        job = json.loads(line)

        def started():
            print("@@" + json.dumps({"status": "fitting"}), flush=True)

        try:
            if job.get("kind") == "pairs":
                out = fit_eer(job["contender"], job["split"], started)
            else:
                out = fit_score(job["contender"], job["dataset"], job["split"], started)
        except BaseException as exc:  # noqa: BLE001 - a peer broken on this scikit-learn
            out = {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}
        print("@@" + json.dumps(out), flush=True)


_worker = TwinWorker()
_table_rows: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def twin_worker():
    yield _worker
    _worker.stop()
    if _table_rows and not os.environ.get("PYSIM_BENCH_PROGRESS"):
        print("\n" + table_markdown(_table_rows))
        print("\n" + verification_markdown(_table_rows))


@pytest.mark.parametrize(("learner", "dataset", "contender"), _table_cases())
def test_target_table(benchmark, twin_worker, learner, dataset, contender):
    """Issue 16's table: each learner beside its twin on the same (unseen-seed) splits."""
    in_process = contender.startswith("pysim") or contender == "sklearn-nca"
    n = len(table_splits(dataset))
    result: dict[str, Any] = {}

    def run():
        fits, cpus, scores, firsts = [], [], [], []
        for split in range(n):
            if in_process:
                out = fit_score(contender, dataset, split)
            else:
                out = twin_worker.run(contender, dataset, split, TWIN_CAP_S)
            if "timeout" in out or "error" in out:
                result.update(out)
                return  # a twin past the cap (or broken) is not retried on the other splits
            fits.append(out["fit_s"])
            cpus.append(out["cpu_s"])
            firsts.append(out.get("first_fit_s", out["fit_s"]))
            scores.append(out.get("accuracy", out.get("rmse")))
        result["fit_s"] = statistics.median(fits)
        result["cpu_s"] = statistics.median(cpus)
        result["first_fit_s"] = statistics.median(firsts)
        result["score"] = float(np.mean(scores))

    benchmark.pedantic(run, rounds=1, iterations=1)
    status = _status(result, contender, dataset)
    kind = "rmse" if dataset in ("diabetes", "friedman1") else "accuracy"
    row = {
        "contender": contender,
        "learner": learner,
        "dataset": dataset,
        "case": f"table {dataset}",
        "status": status,
        "fit_s": result.get("fit_s"),
        "cpu_s": result.get("cpu_s"),
        "first_fit_s": result.get("first_fit_s"),
        kind: result.get("score"),
        "split": f"{n} split(s), seed {TABLE_SEED}",
        "cap_s": TWIN_CAP_S,
        "threads": THREADS,
    }
    _table_rows.append(row)
    record(benchmark, **{k: v for k, v in row.items() if v is not None})
    print(
        f"\n{dataset:12s} {contender:24s} {status:10s} {result.get('score')} {result.get('fit_s')}"
        f" cpu {result.get('cpu_s')}"
    )


def _status(result: dict[str, Any], contender: str, where: str) -> str:
    """A row's status: "ok", "> cap s" or "error: ..."; a pysim contender may not fail."""
    if "error" in result and contender.startswith("pysim"):
        raise AssertionError(f"{contender} failed on {where}: {result['error']}")
    if result.get("timeout"):
        return f"> {TWIN_CAP_S:.0f} s"
    if "error" in result:
        return "error: " + result["error"]
    return "ok"


def _fmt_fit(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    if r.get("status", "ok") != "ok":
        return "fails" if str(r["status"]).startswith("error") else str(r["status"])
    cpu = f" ({r['cpu_s']:.3g})" if r.get("cpu_s") is not None else ""
    return f"{r['fit_s']:.3g} s{cpu}"


def _fmt_score(r: dict[str, Any] | None, kind: str) -> str:
    if r is None or r.get(kind) is None:
        return "-"
    return f"{r[kind]:.2f}" if kind == "rmse" else f"{100 * r[kind]:.1f}"


def table_markdown(records: list[dict[str, Any]]) -> str:
    """Learner x dataset: pysim's and the twin's score and fit time, the speed-up."""
    rows = [r for r in records if str(r.get("case", "")).startswith("table ")]
    by = {(r["dataset"], r["contender"]): r for r in rows}
    lines = [
        "| learner | dataset | pysim score | twin | twin score | Δ points | pysim fit (CPU) | "
        "twin fit (CPU) | speed-up wall / CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for learner, (mine, twins) in TABLE.items():
        for ds in sorted({r["dataset"] for r in rows if r.get("learner") == learner}):
            kind = "rmse" if ds in ("diabetes", "friedman1") else "accuracy"
            p = by.get((ds, mine))
            for twin in twins:
                t = by.get((ds, twin))
                delta = speed = "-"
                if p and t and p.get(kind) is not None and t.get(kind) is not None:
                    sign = -1.0 if kind == "rmse" else 100.0
                    delta = f"{sign * (p[kind] - t[kind]):+.2f}"
                if p and t and p.get("fit_s") and t.get("status") == "ok" and t.get("fit_s"):
                    speed = f"{t['fit_s'] / p['fit_s']:.1f}×"
                    if p.get("cpu_s") and t.get("cpu_s"):
                        speed += f" / {t['cpu_s'] / p['cpu_s']:.1f}×"
                elif p and t and str(t.get("status", "")).startswith(">"):
                    cap = float(t.get("cap_s", TWIN_CAP_S))
                    speed = f"> {cap / p['fit_s']:.0f}×" if p.get("fit_s") else "-"
                lines.append(
                    f"| {learner} | {ds} | {_fmt_score(p, kind)} | {twin} | "
                    f"{_fmt_score(t, kind)} | {delta} | {_fmt_fit(p)} | {_fmt_fit(t)} | {speed} |"
                )
    # The cap the rows were measured with (report.py builds this table in another process,
    # whose quick-mode constants need not be the run's).
    cap = max((float(r.get("cap_s", TWIN_CAP_S)) for r in rows), default=TWIN_CAP_S)
    return (
        "3-NN test accuracy in % (regression sets: 3-NN regression RMSE, Δ = twin − pysim, "
        "so positive = pysim better), median fit time (wall, and CPU seconds of the fitting "
        "process in brackets: on a loaded machine the CPU ratio is the steadier one; a fit "
        f"under {SHORT_FIT_S:g} s is the median of {SHORT_FIT_REPEATS} fits), same run, 2 "
        f"threads; a twin past {cap:.0f} s (wall) is stopped.\n\n" + "\n".join(lines)
    )


# ------------------------------------------------------------------ verification from pairs
#
# The pair learners fitted on labelled pairs (fit(pairs, y), y in {+1, -1}), as verification
# data arrives, and scored by the equal error rate of their pair scores on pairs of held-out
# points: digits' first table split (standardised), N_PAIRS same-class and N_PAIRS
# different-class training pairs drawn from the training rows, 2,000 of each from the test
# rows, all seeded with TABLE_SEED. The twins run in the capped worker, as in the table.

N_PAIRS = 1000 if full() else 150
N_TEST_PAIRS = 2000


def _pair_contenders() -> dict[str, Callable[[int], Any] | None]:
    return {
        "euclidean": None,
        "pysim-itml": lambda seed: pml().ITML(random_state=seed),
        "metric-learn-itml": lambda seed: _metric_learn().ITML(random_state=seed),
        "pysim-sdml": lambda seed: pml().SDML(balance_param=1e-3, random_state=seed),
        "metric-learn-sdml": lambda seed: _metric_learn().SDML(
            balance_param=1e-3, prior="identity", random_state=seed
        ),
        "pysim-mmc": lambda seed: pml().MMC(random_state=seed),
        "metric-learn-mmc": lambda seed: _metric_learn().MMC(random_state=seed),
    }


PAIR_CONTENDERS = list(_pair_contenders())


def draw_pairs(y: np.ndarray, n_each: int, rng: np.random.Generator) -> np.ndarray:
    """(2 n_each, 2) row indices: n_each same-class pairs, then n_each different-class ones."""
    members = {c: np.flatnonzero(y == c) for c in np.unique(y)}
    classes = [c for c, m in members.items() if len(m) >= 2]
    weights = np.array([len(members[c]) for c in classes], float)
    same = []
    for c in rng.choice(len(classes), size=n_each, p=weights / weights.sum()):
        same.append(rng.choice(members[classes[c]], size=2, replace=False))
    diff = np.empty((0, 2), np.int64)
    while len(diff) < n_each:
        cand = rng.integers(0, len(y), size=(2 * n_each, 2))
        diff = np.vstack([diff, cand[y[cand[:, 0]] != y[cand[:, 1]]]])
    return np.vstack([np.array(same, np.int64), diff[:n_each]])


@functools.cache
def verification_pairs(split: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train pairs (n, 2, d), train labels +-1, test pairs, test same-flags) on digits."""
    Xtr, ytr, Xte, yte = table_splits("digits")[split]
    rng = np.random.default_rng(TABLE_SEED + split)
    tr, te = draw_pairs(ytr, N_PAIRS, rng), draw_pairs(yte, N_TEST_PAIRS, rng)
    labels = np.r_[np.ones(N_PAIRS), -np.ones(N_PAIRS)].astype(np.int64)
    same = np.r_[np.ones(N_TEST_PAIRS, bool), np.zeros(N_TEST_PAIRS, bool)]
    return Xtr[tr], labels, Xte[te], same


def fit_eer(contender: str, split: int, on_start=None) -> dict[str, Any]:
    """Fit one pair learner on the training pairs: fit seconds and the test pairs' EER."""
    from pysim.metrics import eer

    pairs, labels, test, same = verification_pairs(split)
    make = _pair_contenders()[contender]
    if make is None:
        scores = -np.linalg.norm(test[:, 0] - test[:, 1], axis=1)
        return {"fit_s": 0.0, "cpu_s": 0.0, "eer": eer(scores, same)}
    settle_threads()
    if on_start is not None:
        on_start()
    model = make(TABLE_SEED + split)
    with limit_threads(THREADS):
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(pairs, labels)
        fit_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        scores = np.asarray(model.pair_score(test), float)
    if not np.isfinite(scores).all():
        return {"error": "non-finite pair scores"}
    return {"fit_s": fit_s, "cpu_s": cpu_s, "eer": eer(scores, same)}


@pytest.mark.parametrize("contender", PAIR_CONTENDERS)
def test_pair_verification(benchmark, twin_worker, contender):
    """Pair learners fitted on digits verification pairs, scored by EER on held-out pairs."""
    in_process = contender.startswith("pysim") or contender == "euclidean"
    result: dict[str, Any] = {}

    def run():
        if in_process:
            result.update(fit_eer(contender, 0))
        else:
            result.update(twin_worker.run(contender, "digits", 0, TWIN_CAP_S, kind="pairs"))

    benchmark.pedantic(run, rounds=1, iterations=1)
    status = _status(result, contender, "the digits pairs")
    row = {
        "contender": contender,
        "dataset": "digits",
        "case": "verification digits",
        "status": status,
        "fit_s": result.get("fit_s"),
        "cpu_s": result.get("cpu_s"),
        "eer": result.get("eer"),
        "pairs": f"{2 * N_PAIRS} train / {2 * N_TEST_PAIRS} test, seed {TABLE_SEED}",
        "cap_s": TWIN_CAP_S,
        "threads": THREADS,
    }
    _table_rows.append(row)
    record(benchmark, **{k: v for k, v in row.items() if v is not None})
    print(f"\nverification {contender:20s} {status:10s} eer {result.get('eer')}")


def verification_markdown(records: list[dict[str, Any]]) -> str:
    """Pair learner beside its twin: test-pair EER and fit time on the digits pairs."""
    by = {r["contender"]: r for r in records if r.get("case") == "verification digits"}
    if not by:
        return ""
    base = by.get("euclidean", {}).get("eer")
    sizes = next(iter(by.values())).get("pairs", "")  # as measured (see table_markdown)
    lines = [
        f"Verification on digits pairs ({sizes}; half of each same-class; EER on the pairs of "
        "held-out digits; Euclidean EER "
        + (f"{100 * base:.2f} %" if base is not None else "-")
        + "):",
        "",
        "| learner | pysim EER % | pysim fit (CPU) | twin EER % | twin fit (CPU) | speed-up wall |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("itml", "sdml", "mmc"):
        p, t = by.get(f"pysim-{name}"), by.get(f"metric-learn-{name}")

        def pct(r):
            return "-" if r is None or r.get("eer") is None else f"{100 * r['eer']:.2f}"

        speed = "-"
        if p and t and p.get("fit_s") and t.get("status") == "ok" and t.get("fit_s"):
            speed = f"{t['fit_s'] / p['fit_s']:.1f}×"
        lines.append(
            f"| {name.upper()} | {pct(p)} | {_fmt_fit(p)} | {pct(t)} | {_fmt_fit(t)} | {speed} |"
        )
    return "\n".join(lines)


def report_section(records: list[dict[str, Any]], out: Path) -> tuple[str, list[Path]]:
    """The target table and the verification table for ``results/metric.md`` (called by
    ``report.write_part``)."""
    parts = []
    if any(str(r.get("case", "")).startswith("table ") for r in records):
        parts.append(table_markdown(records))
    if any(r.get("case") == "verification digits" for r in records):
        parts.append(verification_markdown(records))
    return "\n\n".join(parts), []


if __name__ == "__main__":
    import sys

    if "--twin-worker" in sys.argv:
        _twin_worker_main()
