"""k-NN classification end to end: pysim.KNeighborsClassifier against scikit-learn's.

Workload (k = 5, float32, Euclidean): fit on the first 9,000 images of the MNIST test split,
predict the last 1,000 (``--full`` / ``PYSIM_BENCH_FULL=1``). The default run uses
scikit-learn's digits instead (first 1,497 to fit, last 300 to predict) so it stays quick.

Contenders, each timed as ``fit`` + ``predict`` on a fresh estimator (the timing the issue's
targets are about), with fit and predict also timed separately:
  pysim   brute    exact; must predict what the exact float64 reference predicts
  pysim   hnsw     approximate: M=16, ef_construction=128, search ef=24, the smallest ef
                   whose accuracy stayed within 0.3 points of exact over four graph seeds
                   (parallel builds) on MNIST; accuracy reported next to the exact one
  sklearn brute    KNeighborsClassifier(algorithm="brute")
  sklearn kd_tree  KNeighborsClassifier(algorithm="kd_tree") (one round on MNIST: ~15 s each)

Threads: pysim ``threads=t``; scikit-learn ``n_jobs=t`` with BLAS/OpenMP capped at t
(threadpoolctl), so every contender uses the same cores. extra_info: contender, algorithm,
case, threads, fit_s, predict_s (medians over rounds), accuracy, agreement (share of
predictions equal to the exact reference's).
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
from _common import full, limit_threads, load_mnist, peer, record, rounds

K = 5
THREADS = [1, 2]
CONTENDERS = [("pysim", "brute"), ("pysim", "hnsw"), ("sklearn", "brute"), ("sklearn", "kd_tree")]
HNSW_PARAMS = {"M": 16, "ef_construction": 128, "ef": 24}


@functools.cache
def dataset():
    """(case, X_fit, y_fit, X_query, y_query, exact reference predictions)."""
    if full():
        d = load_mnist()
        case, Xf, yf, Xq, yq = "mnist", d["base"], d["y_base"], d["queries"], d["y_queries"]
    else:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X.astype(np.float32)
        case, Xf, yf, Xq, yq = "digits", X[:-300], y[:-300], X[-300:], y[-300:]
    return case, Xf, yf, Xq, yq, exact_predictions(Xf, yf, Xq)


def exact_predictions(Xf: np.ndarray, yf: np.ndarray, Xq: np.ndarray) -> np.ndarray:
    """Majority vote of the exact float64 k nearest (ties by the smaller row, then class)."""
    A, B = Xf.astype(np.float64), Xq.astype(np.float64)
    an = (A**2).sum(1)
    pred = np.empty(len(B), yf.dtype)
    classes = np.unique(yf)
    codes = np.searchsorted(classes, yf)
    for s in range(0, len(B), 250):
        D = an[None, :] - 2 * B[s : s + 250] @ A.T  # + |b|^2: same order per row
        order = np.lexsort((np.broadcast_to(np.arange(len(A)), D.shape), D), axis=1)[:, :K]
        votes = np.apply_along_axis(np.bincount, 1, codes[order], minlength=len(classes))
        pred[s : s + 250] = classes[votes.argmax(1)]
    return pred


def make(contender: str, algorithm: str, threads: int):
    if contender == "pysim":
        import pysim

        params = HNSW_PARAMS if algorithm == "hnsw" else None
        return pysim.KNeighborsClassifier(
            K, algorithm=algorithm, index_params=params, threads=threads
        )
    neighbors = peer("sklearn.neighbors")
    return neighbors.KNeighborsClassifier(K, algorithm=algorithm, n_jobs=threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("contender,algorithm", CONTENDERS)
def test_classifier(benchmark, contender, algorithm, threads):
    case, Xf, yf, Xq, yq, reference = dataset()
    fit_s, predict_s, preds = [], [], []

    def fit_predict():
        est = make(contender, algorithm, threads)
        t0 = time.perf_counter()
        est.fit(Xf, yf)
        t1 = time.perf_counter()
        pred = est.predict(Xq)
        t2 = time.perf_counter()
        fit_s.append(t1 - t0)
        predict_s.append(t2 - t1)
        preds.append(pred)

    slow = contender == "sklearn" and algorithm == "kd_tree" and case == "mnist"
    n_rounds = 1 if slow else rounds()
    with limit_threads(threads):
        fit_predict()  # checked before any timing counts (and a warm-up)
        agreement = float(np.mean(preds[0] == reference))
        if (contender, algorithm) == ("pysim", "brute"):
            # Exact with the reference's tie rules (smaller row, then first class).
            np.testing.assert_array_equal(preds[0], reference)
        elif contender == "sklearn":
            # Exact, but with its own order among tied distances.
            assert agreement >= 0.995, f"{contender} {algorithm} agrees on {agreement:.4f} only"
        fit_s.clear(), predict_s.clear()
        benchmark.pedantic(fit_predict, rounds=n_rounds, iterations=1, warmup_rounds=0)
    record(
        benchmark,
        contender=contender,
        algorithm=algorithm,
        case=case,
        threads=threads,
        k=K,
        n_fit=len(Xf),
        n_queries=len(Xq),
        dim=Xf.shape[1],
        fit_s=float(np.median(fit_s)),
        predict_s=float(np.median(predict_s)),
        accuracy=float(np.mean(preds[-1] == yq)),
        agreement=agreement,
        exact_accuracy=float(np.mean(reference == yq)),
        index_params=str(HNSW_PARAMS) if algorithm == "hnsw" else "",
    )
