"""NearestNeighbors, KNeighborsClassifier and KNeighborsRegressor against scikit-learn.

Exact algorithms must give scikit-learn's answers on the same data: distances within the
dtype's tolerance, indices, labels and probabilities equal wherever the answer is unique.
Digits (integer pixels) and iris (duplicate rows) have many exactly tied distances, so
indices are compared only on queries whose reference distances have no near-tie, and labels
only on queries with no tie at the k-th neighbour (the one place a tie can change the set of
voters). Random float data has no ties and is compared everywhere.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import reference
import scipy.sparse as sp
from sklearn import neighbors as skn
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

import pysim
from pysim.neighbors._base import KD_TREE_MAX_DIM, choose_algorithm

EXACT = ["brute", "kd_tree"]
ALL = ["brute", "kd_tree", "hnsw"]


def _dataset(name: str, dtype=np.float64):
    """(X_fit, y_fit, X_query, y_query) for a named dataset, deterministic split."""
    if name == "iris":
        X, y = load_iris(return_X_y=True)
    elif name == "digits":
        X, y = load_digits(return_X_y=True)
    else:
        rng = np.random.default_rng(7)
        X = rng.standard_normal((400, 6))
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    perm = np.random.default_rng(0).permutation(len(X))
    X, y = X[perm].astype(dtype), y[perm]
    cut = (2 * len(X)) // 3
    return X[:cut], y[:cut], X[cut:], y[cut:]


def _vi(X: np.ndarray) -> np.ndarray:
    """A well-conditioned inverse covariance (digits has constant columns)."""
    cov = np.cov(X.astype(np.float64), rowvar=False)
    return np.linalg.inv(cov + 0.1 * np.eye(X.shape[1]) * np.trace(cov) / X.shape[1])


def _sk_metric(metric: str, X: np.ndarray) -> dict:
    if metric == "mahalanobis":
        return {"metric": "mahalanobis", "metric_params": {"VI": _vi(X)}}
    return {"metric": metric}


def _ours_metric(metric: str, X: np.ndarray) -> dict:
    if metric == "mahalanobis":
        return {"metric": "mahalanobis", "metric_params": {"VI": _vi(X)}}
    return {"metric": metric}


def _tol(dtype, X: np.ndarray, metric: str) -> float:
    """Absolute tolerance on squared-scale distances (squared for euclidean-type metrics)."""
    eps = np.finfo(dtype).eps
    if metric == "cosine":
        return 64 * eps
    scale = float((X.astype(np.float64) ** 2).sum(axis=1).max())
    if metric == "mahalanobis":
        scale *= float(np.linalg.eigvalsh(_vi(X)).max())
    return 64 * eps * scale


def _sq(d: np.ndarray, metric: str) -> np.ndarray:
    d = d.astype(np.float64)
    return d**2 if metric in ("euclidean", "mahalanobis") else d


def assert_neighbors_agree(got, want, metric, tol, *, want_next=None):
    """Distances within tol (on the squared scale); indices equal where no near-ties.

    ``want_next`` is the reference distance of the (k+1)-th neighbour, to detect a tie at
    the boundary of the returned set.
    """
    (gd, gi), (wd, wi) = got, want
    assert gd.shape == wd.shape and gi.shape == wi.shape
    assert gi.dtype == np.int64
    np.testing.assert_allclose(_sq(gd, metric), _sq(wd, metric), rtol=0, atol=tol)
    sq = _sq(wd, metric)
    if want_next is not None:
        sq = np.hstack([sq, _sq(want_next[:, None], metric)])
    unique = (np.diff(sq, axis=1) > 2 * tol).all(axis=1)
    assert unique.mean() > 0.3, "test data has too many ties to be informative"
    np.testing.assert_array_equal(gi[unique], wi[unique])


def _boundary_tie_free(sk_nn, X, k, metric, tol):
    """Rows whose k-th and (k+1)-th reference distances differ by more than the tolerance."""
    d, _ = sk_nn.kneighbors(X, k + 1)
    sq = _sq(d, metric)
    return sq[:, k] - sq[:, k - 1] > 2 * tol


# --------------------------------------------------------------------------------------
# agreement with scikit-learn
# --------------------------------------------------------------------------------------

CASES = [
    ("iris", "euclidean"),
    ("iris", "sqeuclidean"),
    ("iris", "mahalanobis"),
    ("digits", "euclidean"),
    ("digits", "cosine"),
    ("random", "euclidean"),
    ("random", "sqeuclidean"),
    ("random", "cosine"),
    ("random", "mahalanobis"),
]


@pytest.mark.parametrize(
    "dataset,metric,algorithm",
    # kd_tree does not serve cosine (an error, tested below).
    [(d, m, a) for d, m in CASES for a in EXACT if not (a == "kd_tree" and m == "cosine")],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kneighbors_match_sklearn(dataset, metric, algorithm, dtype):
    Xf, _, Xq, _ = _dataset(dataset, dtype)
    k = 5
    ours = pysim.NearestNeighbors(
        n_neighbors=k, algorithm=algorithm, **_ours_metric(metric, Xf)
    ).fit(Xf)
    sk = skn.NearestNeighbors(algorithm="brute", **_sk_metric(metric, Xf)).fit(
        Xf.astype(np.float64)
    )
    tol = _tol(dtype, Xf, metric)
    got = ours.kneighbors(Xq)
    assert got[0].dtype == dtype
    wd, wi = sk.kneighbors(Xq.astype(np.float64), k + 1)
    assert_neighbors_agree(got, (wd[:, :k], wi[:, :k]), metric, tol, want_next=wd[:, k])
    # Leave-one-out on the training rows (X=None).
    got = ours.kneighbors()
    wd, wi = sk.kneighbors(None, k + 1)
    assert_neighbors_agree(got, (wd[:, :k], wi[:, :k]), metric, tol, want_next=wd[:, k])


@pytest.mark.parametrize("algorithm", EXACT)
@pytest.mark.parametrize("dataset", ["iris", "digits", "random"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("k", [1, 5])
def test_classifier_matches_sklearn(dataset, algorithm, weights, k):
    Xf, yf, Xq, yq = _dataset(dataset)
    ours = pysim.KNeighborsClassifier(k, weights=weights, algorithm=algorithm).fit(Xf, yf)
    sk = skn.KNeighborsClassifier(k, weights=weights, algorithm="brute").fit(Xf, yf)
    np.testing.assert_array_equal(ours.classes_, sk.classes_)
    tol = _tol(np.float64, Xf, "euclidean")
    for X in (Xq, None):
        ok = _boundary_tie_free(sk, X, k, "euclidean", tol)
        assert ok.mean() > 0.3
        np.testing.assert_array_equal(ours.predict(X)[ok], sk.predict(X)[ok])
        np.testing.assert_allclose(
            ours.predict_proba(X)[ok], sk.predict_proba(X)[ok], rtol=1e-12, atol=1e-12
        )
    assert ours.score(Xq, yq) == pytest.approx(sk.score(Xq, yq), abs=1 - ok.mean() + 1e-12)


@pytest.mark.parametrize("algorithm", EXACT)
@pytest.mark.parametrize("weights", ["uniform", "distance", lambda d: np.exp(-d)])
@pytest.mark.parametrize("outputs", [None, 1, 3])
def test_regressor_matches_sklearn(algorithm, weights, outputs, rng):
    Xf, _, Xq, _ = _dataset("random")
    n_out = 1 if outputs is None else outputs
    W = rng.standard_normal((Xf.shape[1], n_out))
    yf = np.sin(Xf) @ W
    if outputs is None:
        yf = yf[:, 0]
    ours = pysim.KNeighborsRegressor(4, weights=weights, algorithm=algorithm).fit(Xf, yf)
    sk = skn.KNeighborsRegressor(n_neighbors=4, weights=weights, algorithm="brute").fit(Xf, yf)
    for X in (Xq, None):
        got, want = ours.predict(X), sk.predict(X)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert ours.score(Xq, sk.predict(Xq)) == pytest.approx(1.0)


def test_classifier_multi_output_matches_sklearn():
    Xf, yf, Xq, _ = _dataset("random")
    Y = np.c_[yf, (Xf[:, 3] > 0).astype(int), np.where(Xf[:, 4] > 0, "a", "b")]
    ours = pysim.KNeighborsClassifier(3, weights="distance", algorithm="brute").fit(Xf, Y)
    sk = skn.KNeighborsClassifier(3, weights="distance").fit(Xf, Y)
    assert ours.outputs_2d_ and len(ours.classes_) == 3
    np.testing.assert_array_equal(ours.predict(Xq), sk.predict(Xq))
    for p, q in zip(ours.predict_proba(Xq), sk.predict_proba(Xq), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-12)


def test_column_vector_y_warns_like_sklearn():
    from sklearn.exceptions import DataConversionWarning

    Xf, yf, Xq, _ = _dataset("iris")
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        clf = pysim.KNeighborsClassifier().fit(Xf, yf[:, None])
    assert clf.predict(Xq).shape == (len(Xq),)


@pytest.mark.parametrize("algorithm", EXACT)
@pytest.mark.parametrize("mode", ["connectivity", "distance"])
def test_kneighbors_graph_matches_sklearn(algorithm, mode):
    Xf, _, Xq, _ = _dataset("random")
    ours = pysim.NearestNeighbors(n_neighbors=3, algorithm=algorithm).fit(Xf)
    sk = skn.NearestNeighbors(n_neighbors=3).fit(Xf)
    for X in (Xq, None):
        A, B = ours.kneighbors_graph(X, mode=mode), sk.kneighbors_graph(X, mode=mode)
        assert isinstance(A, sp.csr_matrix) and A.shape == B.shape
        np.testing.assert_allclose(A.toarray(), B.toarray(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "algorithm,metric",
    [
        ("brute", "euclidean"),
        ("brute", "sqeuclidean"),
        ("brute", "cosine"),
        ("kd_tree", "euclidean"),
        ("kd_tree", "sqeuclidean"),
    ],
)
def test_radius_neighbors_match_sklearn(algorithm, metric):
    Xf, _, Xq, _ = _dataset("random")
    radius = {"euclidean": 1.5, "sqeuclidean": 2.25, "cosine": 0.3}[metric]
    ours = pysim.NearestNeighbors(radius=radius, metric=metric, algorithm=algorithm).fit(Xf)
    sk = skn.NearestNeighbors(radius=radius, metric=metric, algorithm="brute").fit(Xf)
    for X in (Xq, None):
        gd, gi = ours.radius_neighbors(X, sort_results=True)
        wd, wi = sk.radius_neighbors(X, sort_results=True)
        assert len(gi) == len(wi) and sum(map(len, gi)) > len(gi)
        for a, b, c, d in zip(gd, gi, wd, wi, strict=True):
            np.testing.assert_array_equal(b, d)
            np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-12)
        unsorted = ours.radius_neighbors(X, return_distance=False)
        for a, b in zip(unsorted, wi, strict=True):
            np.testing.assert_array_equal(np.sort(a), np.sort(b))
        for mode in ("connectivity", "distance"):
            A = ours.radius_neighbors_graph(X, mode=mode)
            B = sk.radius_neighbors_graph(X, mode=mode)
            np.testing.assert_allclose(A.toarray(), B.toarray(), rtol=1e-9, atol=1e-12)


def test_ip_metric_matches_reference(rng):
    X = rng.standard_normal((200, 12))
    Q = rng.standard_normal((30, 12))
    for algorithm in ("brute", "hnsw"):
        d, i = (
            pysim.NearestNeighbors(n_neighbors=4, metric="ip", algorithm=algorithm)
            .fit(X)
            .kneighbors(Q)
        )
        wd, wi = reference.knn(X, Q, 4, "ip")
        np.testing.assert_array_equal(i, wi)
        np.testing.assert_allclose(d, wd, rtol=1e-5 if algorithm == "hnsw" else 1e-12, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mahalanobis_same_on_every_algorithm(rng, dtype):
    X = rng.standard_normal((300, 5)).astype(dtype)
    VI = _vi(X)
    res = {
        a: pysim.NearestNeighbors(
            n_neighbors=4, metric="mahalanobis", metric_params={"VI": VI}, algorithm=a
        )
        .fit(X)
        .kneighbors(X[:50])
        for a in ALL
    }
    wd, wi = reference.knn(X, X[:50], 4, "mahalanobis", VI)
    for a, (d, i) in res.items():
        np.testing.assert_array_equal(i, wi, err_msg=a)
        np.testing.assert_allclose(
            d, wd, rtol=1e-5 if dtype == np.float32 or a == "hnsw" else 1e-10
        )


def test_l2_alias_and_effective_metric():
    Xf, _, Xq, _ = _dataset("random")
    a = pysim.NearestNeighbors(metric="l2").fit(Xf)
    b = pysim.NearestNeighbors(metric="euclidean").fit(Xf)
    assert a.effective_metric_ == "euclidean"
    for x, y in zip(a.kneighbors(Xq), b.kneighbors(Xq), strict=True):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------------------
# hnsw and metric learners
# --------------------------------------------------------------------------------------


def test_hnsw_accuracy_within_half_a_point_of_brute_on_digits():
    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(1).permutation(len(X))
    X, y = X[perm].astype(np.float32), y[perm]
    Xf, yf, Xq, yq = X[:1000], y[:1000], X[1000:], y[1000:]
    acc = {
        a: pysim.KNeighborsClassifier(
            5, algorithm=a, index_params={"ef": 32} if a == "hnsw" else None
        )
        .fit(Xf, yf)
        .score(Xq, yq)
        for a in ("brute", "hnsw")
    }
    assert abs(acc["hnsw"] - acc["brute"]) <= 0.005
    loo = {
        a: pysim.KNeighborsClassifier(5, algorithm=a).fit(X, y).score(None, y)
        for a in ("brute", "hnsw")
    }
    assert abs(loo["hnsw"] - loo["brute"]) <= 0.005


def _noisy_problem(seed=0, n=360, informative=3, noise=12):
    """Classes separated in a few dimensions, drowned by high-variance noise dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = rng.standard_normal((3, informative)) * 2.0
    signal = centres[y] + 0.5 * rng.standard_normal((n, informative))
    X = np.hstack([signal, 4.0 * rng.standard_normal((n, noise))])
    return X[: n // 2], y[: n // 2], X[n // 2 :], y[n // 2 :]


@pytest.mark.parametrize(
    "learner",
    [pysim.NCA(max_iter=50, random_state=0), pysim.LMNN(max_iter=50, random_state=0)],
    ids=["NCA", "LMNN"],
)
def test_metric_learner_raises_accuracy(learner):
    Xf, yf, Xq, yq = _noisy_problem()
    plain = pysim.KNeighborsClassifier(3).fit(Xf, yf).score(Xq, yq)
    learned = pysim.KNeighborsClassifier(3, metric_learner=learner).fit(Xf, yf)
    assert learned.metric_learner_ is not learner  # an unfitted learner is cloned...
    assert not hasattr(learner, "components_")  # ...and the given one stays unfitted
    assert learned.score(Xq, yq) >= plain + 0.10


def test_fitted_metric_learner_used_as_is_and_applied_before_search(rng):
    Xf, yf, Xq, _ = _noisy_problem(seed=1)
    nca = pysim.NCA(max_iter=20, random_state=0).fit(Xf, yf)
    before = nca.components_.copy()
    for algorithm in ALL:
        nn = pysim.NearestNeighbors(n_neighbors=4, metric_learner=nca, algorithm=algorithm).fit(Xf)
        assert nn.metric_learner_ is nca
        np.testing.assert_array_equal(nca.components_, before)
        d, i = nn.kneighbors(Xq)
        wd, wi = reference.knn(nca.transform(Xf), nca.transform(Xq), 4, "euclidean")
        np.testing.assert_array_equal(i, wi)
        np.testing.assert_allclose(d, wd, rtol=1e-5 if algorithm == "hnsw" else 1e-9)


def test_unfitted_supervised_learner_needs_y():
    Xf, yf, _, _ = _noisy_problem()
    with pytest.raises(ValueError, match="needs class labels"):
        pysim.NearestNeighbors(metric_learner=pysim.NCA()).fit(Xf)
    nn = pysim.NearestNeighbors(metric_learner=pysim.NCA(max_iter=5)).fit(Xf, yf)
    assert hasattr(nn.metric_learner_, "components_")
    nn = pysim.NearestNeighbors(metric_learner=pysim.Whitening()).fit(Xf)
    assert nn.metric_learner_.components_.shape == (Xf.shape[1],) * 2


# --------------------------------------------------------------------------------------
# algorithm choice, parameters, threads, persistence
# --------------------------------------------------------------------------------------


def test_auto_rule():
    assert choose_algorithm(10_000, 3, "euclidean", 5) == "kd_tree"
    assert choose_algorithm(10_000, KD_TREE_MAX_DIM, "sqeuclidean", 5) == "kd_tree"
    assert choose_algorithm(10_000, KD_TREE_MAX_DIM + 1, "euclidean", 5) == "brute"
    assert choose_algorithm(10_000, 3, "mahalanobis", 5) == "kd_tree"
    assert choose_algorithm(10_000, 3, "cosine", 5) == "brute"
    assert choose_algorithm(10_000, 3, "ip", 5) == "brute"
    assert choose_algorithm(10, 3, "euclidean", 5) == "brute"  # k >= n / 2
    X = np.random.default_rng(0).standard_normal((500, 40))
    assert pysim.NearestNeighbors().fit(X).algorithm_ == "brute"
    assert pysim.NearestNeighbors().fit(X[:, :4]).algorithm_ == "kd_tree"
    nca = pysim.NCA(n_components=2, max_iter=5).fit(X, (X[:, 0] > 0).astype(int))
    assert (
        pysim.NearestNeighbors(metric_learner=nca).fit(X).algorithm_ == "kd_tree"
    )  # searched d = 2


def test_index_params_reach_the_index():
    Xf, _, _, _ = _dataset("random")
    assert (
        pysim.NearestNeighbors(algorithm="kd_tree", index_params={"leaf_size": 5})
        .fit(Xf)
        .index_.leaf_size
        == 5
    )
    nn = pysim.NearestNeighbors(
        algorithm="hnsw", index_params={"M": 8, "ef_construction": 40, "ef": 17}
    ).fit(Xf)
    assert (nn.index_.M, nn.index_.ef_construction, nn.index_.ef) == (8, 40, 17)
    # With "auto", parameters of the index not chosen are ignored; unknown ones are errors.
    assert (
        pysim.NearestNeighbors(index_params={"leaf_size": 5, "M": 8}).fit(Xf).algorithm_
        == "kd_tree"
    )
    with pytest.raises(ValueError, match="index_params"):
        pysim.NearestNeighbors(index_params={"bogus": 1}).fit(Xf)
    with pytest.raises(ValueError, match="index_params"):
        pysim.NearestNeighbors(algorithm="brute", index_params={"leaf_size": 5}).fit(Xf)


@pytest.mark.parametrize("algorithm", ALL)
def test_threads_do_not_change_results(algorithm):
    Xf, yf, Xq, _ = _dataset("digits")
    one = pysim.KNeighborsClassifier(7, algorithm=algorithm, threads=1).fit(Xf, yf)
    want = one.kneighbors(Xq)
    # Searching with 2 threads: same answers for every algorithm (the search is per query).
    one.set_params(threads=2)
    for a, b in zip(one.kneighbors(Xq), want, strict=True):
        np.testing.assert_array_equal(a, b)
    if algorithm != "hnsw":  # a concurrent HNSW build may link the graph differently
        two = clone(one).fit(Xf, yf)
        for a, b in zip(two.kneighbors(Xq), want, strict=True):
            np.testing.assert_array_equal(a, b)
    # threads=1 makes the whole fit reproducible, HNSW included.
    again = clone(one).set_params(threads=1).fit(Xf, yf)
    for a, b in zip(again.kneighbors(Xq), want, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm", ALL)
@pytest.mark.parametrize(
    "Est", [pysim.NearestNeighbors, pysim.KNeighborsClassifier, pysim.KNeighborsRegressor]
)
def test_pickle_and_clone(Est, algorithm):
    Xf, yf, Xq, _ = _dataset("iris", np.float32)
    est = Est(n_neighbors=3, algorithm=algorithm, metric_learner=pysim.Whitening())
    est.fit(Xf, yf)
    blob = pickle.dumps(est)
    back = pickle.loads(blob)
    assert type(back.index_) is type(est.index_)
    for a, b in zip(est.kneighbors(Xq), back.kneighbors(Xq), strict=True):
        np.testing.assert_array_equal(a, b)
    if hasattr(est, "predict"):
        np.testing.assert_array_equal(est.predict(Xq), back.predict(Xq))
    if algorithm == "brute":  # the brute-force rows are stored once (index rebuilt on load)
        assert "index_" not in est.__getstate__()
    c = clone(est)
    assert c.get_params()["algorithm"] == algorithm and not hasattr(c, "index_")
    assert not hasattr(c.metric_learner, "components_")


def test_distance_weights_with_exact_match_like_sklearn():
    Xf = np.array([[0.0], [1.0], [2.0], [2.0]])
    yf = np.array([0, 1, 1, 0])
    ours = pysim.KNeighborsClassifier(3, weights="distance", algorithm="brute").fit(Xf, yf)
    sk = skn.KNeighborsClassifier(3, weights="distance").fit(Xf, yf)
    Xq = np.array([[0.0], [2.0], [0.9]])
    np.testing.assert_allclose(ours.predict_proba(Xq), sk.predict_proba(Xq), rtol=1e-12)
    with pytest.raises(ValueError, match="zero weights"):
        pysim.KNeighborsClassifier(2, weights=lambda d: 0 * d).fit(Xf, yf).predict(Xq)


def test_float32_stays_float32():
    Xf, yf, Xq, _ = _dataset("digits", np.float32)
    for algorithm in ALL:
        d, i = pysim.NearestNeighbors(algorithm=algorithm).fit(Xf).kneighbors(Xq.astype(np.float64))
        assert d.dtype == np.float32 and i.dtype == np.int64


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------


def test_bad_input_errors():
    Xf, yf, Xq, _ = _dataset("random")
    nn = pysim.NearestNeighbors(n_neighbors=3).fit(Xf)
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        nn.kneighbors(Xq, n_neighbors=len(Xf) + 1)
    with pytest.raises(ValueError, match="n_neighbors < n_samples_fit"):
        nn.kneighbors(None, n_neighbors=len(Xf))
    with pytest.raises(ValueError, match="Expected n_neighbors > 0"):
        nn.kneighbors(Xq, n_neighbors=0)
    with pytest.raises(TypeError, match="n_neighbors does not take"):
        nn.kneighbors(Xq, n_neighbors=2.5)
    with pytest.raises(ValueError, match="features"):
        nn.kneighbors(Xq[:, :-1])
    with pytest.raises(ValueError, match="Reshape your data"):
        nn.kneighbors(Xq[0])
    with pytest.raises(ValueError, match="NaN"):
        nn.kneighbors(np.full_like(Xq, np.nan))
    with pytest.raises(TypeError, match="[Ss]parse"):
        pysim.NearestNeighbors().fit(sp.csr_matrix(Xf))
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        pysim.KNeighborsClassifier(n_neighbors=10).fit(Xf[:5], yf[:5]).predict(Xq)
    with pytest.raises(ValueError, match="radius_neighbors needs an exact index"):
        pysim.NearestNeighbors(algorithm="hnsw").fit(Xf).radius_neighbors(Xq)
    with pytest.raises(ValueError, match="return_distance must be True"):
        nn.radius_neighbors(Xq, return_distance=False, sort_results=True)
    with pytest.raises(ValueError, match="Unsupported mode"):
        nn.kneighbors_graph(Xq, mode="weird")


@pytest.mark.parametrize(
    "params,match",
    [
        ({"algorithm": "ball_tree"}, "'algorithm' parameter"),
        ({"metric": "manhattan"}, "'metric' parameter"),
        ({"n_neighbors": 0}, "'n_neighbors' parameter"),
        ({"n_neighbors": 2.0}, "'n_neighbors' parameter"),
        ({"threads": 0}, "'threads' parameter"),
        ({"metric": "cosine", "algorithm": "kd_tree"}, "not valid for algorithm 'kd_tree'"),
        ({"metric": "mahalanobis"}, "needs metric_params"),
        ({"metric_params": {"VI": np.eye(6)}}, "only used with metric='mahalanobis'"),
        ({"metric_params": {"p": 3}}, "accepts only 'VI'"),
        ({"metric": "mahalanobis", "metric_params": {"VI": -np.eye(6)}}, "positive semi-definite"),
        ({"index_params": [("M", 8)]}, "'index_params' parameter"),
        ({"metric_learner": "NCA"}, "'metric_learner' parameter"),
        ({"radius": -1.0}, "'radius' parameter"),
    ],
)
def test_bad_parameters(params, match):
    Xf, _, _, _ = _dataset("random")
    with pytest.raises(ValueError, match=match):
        pysim.NearestNeighbors(**params).fit(Xf)


@pytest.mark.parametrize(
    "Est", [pysim.NearestNeighbors, pysim.KNeighborsClassifier, pysim.KNeighborsRegressor]
)
def test_unfitted_use_raises_not_fitted(Est):
    Xf = np.zeros((3, 2))
    with pytest.raises(NotFittedError):
        Est().kneighbors(Xf)
    if hasattr(Est, "predict"):
        with pytest.raises(NotFittedError):
            Est().predict(Xf)
    with pytest.raises(
        ValueError,
        match="'weights' parameter" if Est is not pysim.NearestNeighbors else "'algorithm'",
    ):
        if Est is pysim.NearestNeighbors:
            Est(algorithm="x").fit(Xf)
        else:
            Est(weights="x").fit(Xf, [0, 1, 1])


def test_failed_refit_keeps_the_fitted_state():
    Xf, yf, Xq, _ = _dataset("random")
    clf = pysim.KNeighborsClassifier(3, algorithm="kd_tree").fit(Xf, yf)
    want = clf.kneighbors(Xq)
    clf.set_params(index_params={"leaf_size": 0})
    with pytest.raises(ValueError, match="leaf_size"):
        clf.fit(Xf[:50], yf[:50])
    assert clf.n_samples_fit_ == len(Xf)
    for a, b in zip(clf.kneighbors(Xq), want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_classifier_refuses_continuous_targets():
    Xf, _, _, _ = _dataset("random")
    with pytest.raises(ValueError, match="Unknown label type"):
        pysim.KNeighborsClassifier().fit(Xf, Xf[:, 0])


# --------------------------------------------------------------------------------------
# scikit-learn's estimator checks (a lean set of configurations; each runs in well under a second)
# --------------------------------------------------------------------------------------


@parametrize_with_checks(
    [
        pysim.NearestNeighbors(),
        pysim.NearestNeighbors(algorithm="hnsw", metric="cosine"),
        pysim.KNeighborsClassifier(),
        pysim.KNeighborsClassifier(algorithm="kd_tree", weights="distance"),
        pysim.KNeighborsClassifier(
            algorithm="hnsw", metric_learner=pysim.NCA(max_iter=3), threads=1
        ),
        pysim.KNeighborsRegressor(),
        pysim.KNeighborsRegressor(
            algorithm="brute", weights="distance", metric_learner=pysim.Whitening()
        ),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
