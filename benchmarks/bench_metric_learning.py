"""Metric learning: fit time and 3-NN test accuracy of pysim's learners against the peers.

Contenders: pysim Whitening / NCA / LMNN, scikit-learn's NeighborhoodComponentsAnalysis,
metric-learn's NCA, LMNN, ITML_Supervised and Covariance, and the plain Euclidean baseline;
``test_weak_fit_and_accuracy`` adds pysim's weakly supervised learners (``*_Supervised``:
constraints drawn from the labels), LFDA, Covariance and the triplet / contrastive embeddings,
each beside its metric-learn twin (pysim-itml's twin is metric-learn-itml above). Quick mode
runs that comparison on wine (2 splits); ``--full`` on every dataset and split. A peer that
fails on the installed scikit-learn (metric-learn 0.7's SDML passes a removed ``graphical_lasso``
argument) is reported as skipped with its error.
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
        "pysim-rca": lambda seed: pml().RCA_Supervised(random_state=seed),
        "metric-learn-rca": lambda seed: _metric_learn().RCA_Supervised(random_state=seed),
        "pysim-lfda": lambda seed: pml().LFDA(),
        "metric-learn-lfda": lambda seed: _metric_learn().LFDA(k=7),
        "pysim-covariance": lambda seed: pml().Covariance(shrinkage=0.1),
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
#: The weakly supervised learners side by side with their metric-learn twins (same run).
WEAK_CONTENDERS = [
    "pysim-itml",
    "pysim-sdml",
    "metric-learn-sdml",
    "pysim-mmc",
    "metric-learn-mmc",
    "pysim-lsml",
    "metric-learn-lsml",
    "pysim-scml",
    "metric-learn-scml",
    "pysim-rca",
    "metric-learn-rca",
    "pysim-lfda",
    "metric-learn-lfda",
    "pysim-covariance",
    "pysim-triplet",
    "pysim-contrastive",
]
#: Quick mode keeps the weakly supervised comparison to the two smallest sets (the whole
#: metric part stays within its ~60 s quick budget); --full runs every dataset.

SMALL = ["iris", "wine", "breast-cancer", "digits"]
DATASETS = SMALL + (["mnist-pca50"] if full() else [])
WEAK_DATASETS = DATASETS if full() else ["wine"]
#: Splits of the weakly supervised comparison: 2 in quick mode (its share of the budget).
WEAK_SPLITS = None if full() else 2


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
    slow_peers = ("metric-learn-nca", "metric-learn-lmnn", "metric-learn-itml")
    _fit_and_accuracy(benchmark, contender, dataset, make, slow_peers)


@pytest.mark.parametrize("dataset", WEAK_DATASETS)
@pytest.mark.parametrize("contender", WEAK_CONTENDERS)
def test_weak_fit_and_accuracy(benchmark, contender, dataset):
    """Weakly supervised learners vs their metric-learn twins: fit time, 3-NN accuracy."""
    make = _contenders()[contender]
    if contender.startswith("metric-learn"):
        _metric_learn()
    slow_peers = ("metric-learn-scml", "metric-learn-mmc", "metric-learn-lsml")
    _fit_and_accuracy(benchmark, contender, dataset, make, slow_peers, WEAK_SPLITS)


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
