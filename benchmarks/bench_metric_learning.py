"""Metric learning: fit time and 3-NN test accuracy of pysim's learners against the peers.

Contenders: pysim Whitening / NCA / LMNN, scikit-learn's NeighborhoodComponentsAnalysis,
metric-learn's NCA, LMNN, ITML_Supervised and Covariance, and the plain Euclidean baseline.
Every contender sees the same splits and the same standardised features; accuracy is the
3-NN test accuracy (scikit-learn's KNeighborsClassifier on the transformed data), averaged
over 5 seeded stratified 70/30 splits; ``fit_s`` is the median fit time over those splits.

Datasets: scikit-learn's iris, wine, breast cancer and digits (standardised on the training
part) by default; with ``run.py --full`` (PYSIM_BENCH_FULL=1) also MNIST's test split
(pixels / 255) reduced by PCA to 50 dimensions, the PCA fitted on the first 5,000 images,
which are the training set; the last 5,000 are the test set (one split).

Most of a default run's time goes to metric-learn: its LMNN and ITML take minutes per split
on digits (its NCA takes far longer, so it runs on digits and MNIST only with ``--full``).

``test_nca_same_iterations`` times pysim's NCA and scikit-learn's at the same number of
L-BFGS iterations (tol=0, max_iter fixed), which is the fair speed comparison.

metric-learn 0.7.0 passes scikit-learn's ``force_all_finite`` argument, removed in 1.8; a
shim below renames it to ``ensure_all_finite`` for the benchmark only (pysim never depends
on metric-learn).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _common import full, limit_threads, peer, read_idx, record, require_data

THREADS = 2
N_SPLITS = 5


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
    }


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
    from sklearn import datasets
    from sklearn.model_selection import StratifiedShuffleSplit
    from sklearn.preprocessing import StandardScaler

    loader = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast-cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
    }[name]
    X, y = loader(return_X_y=True)
    out = []
    sss = StratifiedShuffleSplit(n_splits=N_SPLITS, test_size=0.3, random_state=0)
    for tr, te in sss.split(X, y):
        scaler = StandardScaler().fit(X[tr])
        out.append((scaler.transform(X[tr]), y[tr], scaler.transform(X[te]), y[te]))
    return out


def knn3_accuracy(Xtr, ytr, Xte, yte) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    return float(KNeighborsClassifier(3).fit(Xtr, ytr).score(Xte, yte))


def evaluate(name: str, make: Callable[[int], Any] | None):
    """Fit on every split; return (median fit seconds, mean accuracy, iterations)."""
    times, accs, iters = [], [], []
    for seed, (Xtr, ytr, Xte, yte) in enumerate(splits(name)):
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
    slow_peers = ("metric-learn-nca", "metric-learn-lmnn", "metric-learn-itml")
    if contender in slow_peers and dataset in ("digits", "mnist-pca50") and not full():
        # Minutes per split for these pure-Python peers: the default run keeps to its
        # 10-minute budget; --full times them.
        pytest.skip(f"{contender} takes many minutes on {dataset}; run with --full")
    result: dict[str, Any] = {}

    def run():
        with limit_threads(THREADS):
            result["fit_s"], result["accuracy"], result["n_iter"] = evaluate(dataset, make)

    benchmark.pedantic(run, rounds=1, iterations=1)
    split = f"{N_SPLITS}x stratified 70/30"
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


SPEED_SETS = ["digits"] + (["mnist-pca50"] if full() else [])


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
