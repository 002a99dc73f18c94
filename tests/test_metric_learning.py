"""Tests for pysim.Whitening, pysim.NCA and pysim.LMNN.

Losses and gradients are checked against plain dense float64 formulas and finite
differences; the blocked / cached machinery (class-sorted blocks, the impostor cache) is
checked to give exactly what a naive computation gives. Learning is checked on synthetic data
whose informative and noise dimensions are known. The scikit-learn contract is checked by
scikit-learn itself (parametrize_with_checks).
"""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.base import clone
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import pysim
from pysim import _core
from pysim.metric_learning._base import LabelledData, run_tasks, same_class_neighbors
from pysim.metric_learning._lmnn import ImpostorCache, find_impostors, lmnn_loss_grad
from pysim.metric_learning._nca import _nca_dense, _nca_dense_checked, nca_loss_grad

LEARNERS = [
    lambda: pysim.Whitening(),
    lambda: pysim.NCA(max_iter=30, random_state=0),
    lambda: pysim.LMNN(max_iter=30),
]


def noisy_classes(rng, n=240, informative=3, noise=12, classes=3, noise_scale=4.0):
    """Classes separated along `informative` dims, drowned in larger isotropic noise dims."""
    y = rng.permutation(np.arange(n) % classes)
    centres = 4.0 * np.eye(classes, informative)  # every pair of classes 5.7 apart
    Xi = centres[y] + 0.5 * rng.standard_normal((n, informative))
    Xn = noise_scale * rng.standard_normal((n, noise))
    return np.hstack([Xi, Xn]), y


def split(X, y):
    half = len(X) // 2
    return X[:half], y[:half], X[half:], y[half:]


def knn_accuracy(Xtr, ytr, Xte, yte, k=3):
    return KNeighborsClassifier(k).fit(Xtr, ytr).score(Xte, yte)


# ---------------------------------------------------------------- losses and gradients


def dense_nca(L, X, y):
    """f(L) = Σ_i Σ_{j: y_j = y_i} softmax_j(-|Lx_i - Lx_j|²), the whole matrix at once."""
    Z = X @ L.T
    D = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    P = np.exp(-(D - D.min(1, keepdims=True)))
    P /= P.sum(1, keepdims=True)
    return (P * (y[:, None] == y[None, :])).sum()


@pytest.mark.parametrize("n_components", [2, 5])
@pytest.mark.parametrize("block", [1, 7, 1000])
def test_nca_loss_and_gradient(rng, n_components, block):
    X = rng.standard_normal((50, 5))
    y = rng.integers(0, 3, 50)
    data = LabelledData(X, y)
    L = 0.5 * rng.standard_normal((n_components, 5))
    loss, _ = nca_loss_grad(L.ravel(), data, n_components, block=block)
    np.testing.assert_allclose(-loss, dense_nca(L, X, y), rtol=1e-12)
    err = check_grad(
        lambda w: nca_loss_grad(w, data, n_components, block=block)[0],
        lambda w: nca_loss_grad(w, data, n_components, block=block)[1],
        L.ravel(),
    )
    scale = np.linalg.norm(nca_loss_grad(L.ravel(), data, n_components, block=block)[1])
    assert err <= 1e-5 * max(scale, 1.0)


def test_nca_dense_path_matches_blocks(rng):
    """n <= 512 takes the whole-matrix path; it computes what the row blocks compute."""
    X = rng.standard_normal((90, 6))
    y = rng.integers(0, 4, 90)
    data = LabelledData(X, y)
    L = 0.5 * rng.standard_normal((3, 6)).ravel()
    dense = nca_loss_grad(L, data, 3)
    blocked = nca_loss_grad(L, data, 3, block=16)
    np.testing.assert_allclose(dense[0], blocked[0], rtol=1e-12)
    np.testing.assert_allclose(dense[1], blocked[1], rtol=1e-10, atol=1e-12)


def test_nca_overflowing_distances_take_the_checked_path(rng):
    """Rows whose squared norms overflow float64 (distances between them do not): the
    one-block path's unchecked result is not finite, so it is repeated through pysim.cdist's
    rescaling, exactly as the checked evaluation computes it."""
    X = 1e154 * (3.0 + 0.01 * rng.standard_normal((60, 4)))
    data = LabelledData(X, rng.integers(0, 3, 60))
    L = np.eye(2, 4)
    loss, grad = nca_loss_grad(L.ravel(), data, 2)
    want = _nca_dense_checked(L, data)
    assert np.isfinite(loss) and loss == want[0]
    np.testing.assert_array_equal(grad, want[1])


@pytest.mark.parametrize(
    ("n", "d", "k", "n_classes"), [(2, 1, 1, 1), (37, 5, 2, 3), (200, 9, 9, 7)]
)
def test_nca_compiled_dense_path_matches_numpy_and_finite_differences(isa, rng, n, d, k, n_classes):
    """The one-call C++ evaluation (n <= 512), on every kernel level, against the numpy
    formulas and against central differences of its own loss."""
    X = rng.standard_normal((n, d))
    data = LabelledData(X, rng.integers(0, n_classes, n))
    L = 0.7 * rng.standard_normal((k, d))
    loss, grad = _nca_dense(L, data)
    want = _nca_dense_checked(L, data)
    np.testing.assert_allclose(loss, want[0], rtol=1e-12)
    np.testing.assert_allclose(grad, want[1], rtol=1e-10, atol=1e-12)
    eps = 1e-6
    for idx in [(0, 0), (k - 1, d - 1)]:
        E = np.zeros_like(L)
        E[idx] = eps
        fd = (_nca_dense(L + E, data)[0] - _nca_dense(L - E, data)[0]) / (2 * eps)
        np.testing.assert_allclose(grad[idx[0] * d + idx[1]], fd, rtol=1e-5, atol=1e-7)


def test_nca_dense_binding_checks_its_arrays(rng):
    X = rng.standard_normal((10, 3))
    XT = np.ascontiguousarray(X.T)
    L = np.eye(3)
    starts = np.array([0, 4, 10], dtype=np.int64)
    with pytest.raises(ValueError, match="starts"):
        _core.nca_dense_objective(X, XT, L, np.array([0, 4, 9], dtype=np.int64))
    with pytest.raises(ValueError, match="starts"):
        _core.nca_dense_objective(X, XT, L, np.array([0, 6, 4, 10], dtype=np.int64))
    with pytest.raises(ValueError, match="XT"):
        _core.nca_dense_objective(X, X.copy(), L, starts)
    with pytest.raises(ValueError, match="L"):
        _core.nca_dense_objective(X, XT, np.eye(2), starts)


def test_nca_threads_agree(rng):
    X = rng.standard_normal((300, 6))
    y = rng.integers(0, 4, 300)
    data = LabelledData(X, y)
    L = 0.5 * rng.standard_normal((6, 6)).ravel()
    one = nca_loss_grad(L, data, 6, block=32, threads=1)
    three = nca_loss_grad(L, data, 6, block=32, threads=3)
    # Groups of blocks are fixed by the data and summed in order: the same bits at any count.
    assert three[0] == one[0]
    np.testing.assert_array_equal(three[1], one[1])
    dense = nca_loss_grad(L, data, 6, block=300)
    np.testing.assert_allclose(one[0], dense[0], rtol=1e-12)
    np.testing.assert_allclose(one[1], dense[1], rtol=1e-10, atol=1e-12)


def test_nca_default_blocks_agree_across_threads(rng):
    """n = 700 (past the one-block path): the default blocking gives the same bits on 1 and 2
    threads, and matches the whole-matrix formulas."""
    X = rng.standard_normal((700, 5))
    y = rng.integers(0, 3, 700)
    data = LabelledData(X, y)
    L = 0.5 * rng.standard_normal((5, 5)).ravel()
    one = nca_loss_grad(L, data, 5, threads=1)
    two = nca_loss_grad(L, data, 5, threads=2)
    assert two[0] == one[0]
    np.testing.assert_array_equal(two[1], one[1])
    dense = nca_loss_grad(L, data, 5, block=700)
    np.testing.assert_allclose(one[0], dense[0], rtol=1e-12)
    np.testing.assert_allclose(one[1], dense[1], rtol=1e-10, atol=1e-12)


def test_run_tasks_orders_results_and_reraises():
    def square(i):
        return i * i

    for workers in (1, 2, 5):
        assert run_tasks(square, 23, workers) == [i * i for i in range(23)]
    assert run_tasks(square, 0, 3) == []

    def fail(i):
        if i == 7:
            raise ArithmeticError("task 7")
        return i

    with pytest.raises(ArithmeticError, match="task 7"):
        run_tasks(fail, 40, 3)


def naive_lmnn(L, X, y, targets, mu):
    """The LMNN loss by enumerating every triplet (original row order)."""
    Z = X @ L.T
    loss = 0.0
    for i in range(len(X)):
        for j in targets[i]:
            if j < 0:
                continue
            dij = ((Z[i] - Z[j]) ** 2).sum()
            loss += (1 - mu) * dij
            for m in range(len(X)):
                if y[m] != y[i]:
                    loss += mu * max(0.0, 1 + dij - ((Z[i] - Z[m]) ** 2).sum())
    return loss


@pytest.mark.parametrize("mu", [0.0, 0.3, 0.5, 1.0])
def test_lmnn_loss_matches_triplet_enumeration(rng, mu):
    X = rng.standard_normal((40, 4))
    y = rng.integers(0, 3, 40)
    data = LabelledData(X, y)
    T = same_class_neighbors(data, 3)
    L = 0.7 * rng.standard_normal((3, 4))
    loss, _, _ = lmnn_loss_grad(L.ravel(), data, T, 3, mu)
    np.testing.assert_allclose(loss, naive_lmnn(L, data.X, data.codes, T, mu), rtol=1e-10)


@pytest.mark.parametrize("n_components", [2, 4])
def test_lmnn_gradient(rng, n_components):
    X = rng.standard_normal((40, 4))
    y = rng.integers(0, 2, 40)
    data = LabelledData(X, y)
    T = same_class_neighbors(data, 3)
    L = 0.7 * rng.standard_normal((n_components, 4))
    f = lambda w: lmnn_loss_grad(w, data, T, n_components, 0.5)[0]  # noqa: E731
    g = lambda w: lmnn_loss_grad(w, data, T, n_components, 0.5)[1]  # noqa: E731
    # The loss is piecewise quadratic: use a step far below the distance to any hinge kink.
    err = check_grad(f, g, L.ravel(), epsilon=1e-7)
    assert err <= 1e-4 * max(np.linalg.norm(g(L.ravel())), 1.0)


def test_impostor_search_is_exact(rng):
    X = rng.standard_normal((150, 6))
    y = rng.integers(0, 4, 150)
    data = LabelledData(X, y)
    Z = X[data.order] @ rng.standard_normal((6, 6))
    radius = rng.uniform(1, 20, 150)
    ai, aj, d = find_impostors(Z, data, radius)
    D = ((Z[:, None] - Z[None]) ** 2).sum(-1)
    want = (D < radius[:, None]) & (data.codes[:, None] != data.codes[None, :])
    got = np.zeros_like(want)
    got[ai, aj] = True
    assert (got == want).all() and len(ai) == want.sum()
    np.testing.assert_allclose(d, D[ai, aj], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_components", [5, 3])
def test_impostor_cache_gives_full_search_results(rng, n_components):
    """Along a path of small and large steps the cache must equal a fresh full search."""
    X = rng.standard_normal((200, 5))
    y = rng.integers(0, 3, 200)
    data = LabelledData(X, y)
    T = same_class_neighbors(data, 3)
    cache = ImpostorCache(data)
    L = np.eye(n_components, 5)
    for step in range(30):
        L = L + rng.standard_normal(L.shape) * (0.002 if step % 6 else 0.3)
        a = lmnn_loss_grad(L.ravel(), data, T, n_components, 0.5)
        b = lmnn_loss_grad(L.ravel(), data, T, n_components, 0.5, cache)
        assert a[2] == b[2]
        np.testing.assert_allclose(b[0], a[0], rtol=1e-12)
        np.testing.assert_allclose(b[1], a[1], rtol=1e-9, atol=1e-9)
    assert cache.full_searches < 30  # the cache did hold on the small steps


def test_same_class_neighbors(rng):
    X = rng.standard_normal((60, 3))
    y = np.r_[np.zeros(30), np.ones(28), [2, 2]].astype(int)  # class 2 has only 2 members
    data = LabelledData(X, y)
    T = same_class_neighbors(data, 4)
    Xs, c = data.X, data.codes
    for i in range(60):
        same = np.nonzero((c == c[i]) & (np.arange(60) != i))[0]
        d = ((Xs[same] - Xs[i]) ** 2).sum(1)
        want = same[np.lexsort((same, d))][:4]
        got = T[i][T[i] >= 0]
        np.testing.assert_array_equal(got, want)
    assert (T[58:, 1:] == -1).all()  # the 2-member class: its other member, then padding


# ---------------------------------------------------------------- learning


@pytest.mark.parametrize(
    "make",
    [lambda: pysim.NCA(random_state=0), lambda: pysim.LMNN(n_neighbors=3)],
    ids=["NCA", "LMNN"],
)
def test_learners_beat_euclidean_and_drop_noise(rng, make):
    X, y, Xte, yte = split(*noisy_classes(rng, n=480))
    base = knn_accuracy(X, y, Xte, yte)
    model = make().fit(X, y)
    learned = knn_accuracy(model.transform(X), y, model.transform(Xte), yte)
    assert learned >= base + 0.15, (base, learned)
    # How much each input dimension counts; the identity start gives every dim weight 1.
    weight = np.linalg.norm(model.components_, axis=0)
    assert weight[3:].mean() < 0.75 * weight[:3].mean(), weight


@pytest.mark.parametrize(
    "make",
    [lambda: pysim.NCA(n_components=2, random_state=0), lambda: pysim.LMNN(n_components=2)],
    ids=["NCA", "LMNN"],
)
def test_dimension_reduction(rng, make):
    X, y, Xte, yte = split(*noisy_classes(rng, n=480))
    model = make().fit(X, y)
    assert model.components_.shape == (2, X.shape[1])
    assert model.transform(Xte).shape == (len(Xte), 2)
    base = knn_accuracy(X, y, Xte, yte)
    assert knn_accuracy(model.transform(X), y, model.transform(Xte), yte) > base


def test_whitening_is_inverse_covariance(rng):
    X = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 4)) + 5.0
    w = pysim.Whitening().fit(X)
    np.testing.assert_allclose(w.get_mahalanobis_matrix(), np.linalg.inv(np.cov(X.T)), rtol=1e-9)
    Z = w.transform(X)
    np.testing.assert_allclose(np.cov(Z.T), np.eye(4), atol=1e-9)
    # n_components keeps the directions of largest variance, each with unit variance.
    w2 = pysim.Whitening(n_components=2).fit(X)
    evals = np.linalg.eigvalsh(np.cov(X.T))[::-1]
    np.testing.assert_allclose(w2.explained_variance_, evals[:2], rtol=1e-9)
    np.testing.assert_allclose(np.cov(w2.transform(X).T), np.eye(2), atol=1e-9)


def test_whitening_full_rank_is_the_inverse_cholesky_factor(rng):
    """Every direction kept: L is the inverse of C's lower Cholesky factor (no eigh in fit), the
    spectrum is computed on first access, and pickling / cloning keep working."""
    X = rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6)) + 2.0
    w = pysim.Whitening(shrinkage=0.05).fit(X)
    L = w.components_
    np.testing.assert_array_equal(L, np.tril(L))
    assert (np.diagonal(L) > 0).all()
    C = np.cov(X.T)
    C = 0.95 * C + 0.05 * np.trace(C) / 6 * np.eye(6)
    np.testing.assert_allclose(w.covariance_, C, rtol=1e-12)
    np.testing.assert_allclose(L @ C @ L.T, np.eye(6), atol=1e-10)
    assert "_explained_variance" in vars(w) and w._explained_variance is None
    np.testing.assert_allclose(w.explained_variance_, np.linalg.eigvalsh(C)[::-1], rtol=1e-10)
    again = pickle.loads(pickle.dumps(w))
    np.testing.assert_array_equal(again.explained_variance_, w.explained_variance_)
    with pytest.raises(AttributeError):
        pysim.Whitening().explained_variance_  # noqa: B018 - unfitted
    assert not hasattr(clone(w), "covariance_")


def test_whitening_nearly_singular_covariance_is_refused(rng):
    """A feature that is another one plus 1e-9 noise: positive definite in floating point,
    but its condition number is past 1 / (d eps), so the full-rank path refuses it, and
    shrinkage makes it usable."""
    X = rng.standard_normal((200, 4))
    X[:, 3] = X[:, 0] + 1e-9 * rng.standard_normal(200)
    with pytest.raises(ValueError, match="singular"):
        pysim.Whitening().fit(X)
    with pytest.raises(ValueError, match="singular"):
        pysim.Whitening().fit(X.copy(order="F"))  # the validate_data path
    assert np.isfinite(pysim.Whitening(shrinkage=0.01).fit(X).components_).all()


def test_whitening_shrinkage(rng):
    X = rng.standard_normal((5, 8))  # fewer samples than features: singular covariance
    with pytest.raises(ValueError, match="shrinkage"):
        pysim.Whitening().fit(X)
    C = np.cov(X.T)
    want = np.linalg.inv(0.7 * C + 0.3 * np.trace(C) / 8 * np.eye(8))
    got = pysim.Whitening(shrinkage=0.3).fit(X).get_mahalanobis_matrix()
    np.testing.assert_allclose(got, want, rtol=1e-8)
    with pytest.raises(ValueError, match="shrinkage"):
        pysim.Whitening(shrinkage=1.5).fit(X)


# ---------------------------------------------------------------- the transformer API


@pytest.mark.parametrize("make", LEARNERS, ids=["Whitening", "NCA", "LMNN"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_metric_and_pair_distance(rng, make, dtype):
    X, y = noisy_classes(rng, n=90)
    model = make().fit(X, y)
    L = model.components_
    assert L.dtype == np.float64
    Xd = X.astype(dtype)
    Z = model.transform(Xd)
    assert Z.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(Z, Xd @ L.T.astype(dtype), rtol=tol)
    M = model.get_mahalanobis_matrix()
    np.testing.assert_allclose(M, L.T @ L, rtol=1e-12)
    got = model.pair_distance(Xd[:30], Xd[30:60])
    assert got.shape == (30,) and got.dtype == dtype
    want = np.sqrt(np.einsum("ij,jk,ik->i", X[:30] - X[30:60], M, X[:30] - X[30:60]))
    np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == np.float32 else 1e-10)
    # The learned metric works as pysim's mahalanobis VI.
    np.testing.assert_allclose(
        pysim.cdist(X[:5], X[5:9], "mahalanobis", VI=M),
        np.sqrt(((Z[:5, None].astype(float) - Z[None, 5:9]) ** 2).sum(-1)),
        rtol=1e-4,
    )
    with pytest.raises(ValueError, match="same shape"):
        model.pair_distance(X[:3], X[:4])


@pytest.mark.parametrize("make", LEARNERS, ids=["Whitening", "NCA", "LMNN"])
def test_pipeline_clone_pickle(rng, make):
    X, y = noisy_classes(rng, n=180)
    Xtr, ytr, Xte, yte = split(X, y)
    pipe = make_pipeline(StandardScaler(), make(), KNeighborsClassifier(3)).fit(Xtr, ytr)
    # Scored on held-out rows (a 3-NN scores itself right on its training rows). Chance is 1/3;
    # measured: Whitening 0.87-0.91 (it keeps the noise dimensions), NCA and LMNN 1.0.
    assert pipe.score(Xte, yte) > 0.75
    model = make().fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.transform(X), model.transform(X))
    fresh = clone(model)
    assert not hasattr(fresh, "components_")
    assert fresh.get_params() == model.get_params()


@pytest.mark.parametrize(
    "make",
    [
        lambda s: pysim.NCA(init="random", random_state=s, max_iter=5),
        lambda s: pysim.LMNN(random_state=s, max_iter=5),
    ],
    ids=["NCA", "LMNN"],
)
def test_random_state_reproducible(rng, make):
    X, y = noisy_classes(rng, n=90)
    a = make(3).fit(X, y).components_
    b = make(3).fit(X, y).components_
    np.testing.assert_array_equal(a, b)


def test_nca_random_init_depends_on_seed(rng):
    X, y = noisy_classes(rng, n=90)
    a = pysim.NCA(init="random", random_state=1, max_iter=2).fit(X, y).components_
    b = pysim.NCA(init="random", random_state=2, max_iter=2).fit(X, y).components_
    assert not np.allclose(a, b)


@pytest.mark.parametrize("cls", [pysim.NCA, pysim.LMNN])
def test_verbose_reports_loss_and_time(rng, capsys, cls):
    X, y = noisy_classes(rng, n=60)
    cls(max_iter=3, verbose=True).fit(X, y)
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.split()[1:2] and line.split()[1].isdigit()]
    assert len(rows) >= 1
    _, it, loss, seconds = rows[0].split()
    assert np.isfinite(float(loss)) and float(seconds) >= 0


@pytest.mark.parametrize("cls", [pysim.NCA, pysim.LMNN])
def test_bad_labels(rng, cls):
    X = rng.standard_normal((20, 3))
    with pytest.raises(ValueError, match="at least 2 classes"):
        cls().fit(X, np.zeros(20))
    y = np.r_[np.zeros(19), 1]
    with pytest.raises(ValueError, match="one sample"):
        cls().fit(X, y)
    with pytest.raises(ValueError, match="n_components"):
        cls(n_components=4).fit(X, np.arange(20) % 2)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cls().fit(Xn, np.arange(20) % 2)
    with pytest.raises(ValueError, match="Reshape"):
        cls().fit(X[:, 0], np.arange(20) % 2)


def test_plain_input_fast_path_matches_validated_input(rng):
    """Finite float64 C-contiguous X with integer y skips validate_data: same fit, same
    attributes, and the same errors as input that goes through it."""
    X, y = noisy_classes(rng, n=60)
    fast = pysim.NCA(max_iter=5).fit(X, y)
    slow = pysim.NCA(max_iter=5).fit(X.tolist(), y.tolist())
    np.testing.assert_array_equal(fast.components_, slow.components_)
    assert fast.n_features_in_ == slow.n_features_in_ == X.shape[1]
    for bad in (np.inf, np.nan):
        Xb = X.copy()
        Xb[4, 2] = bad
        with pytest.raises(ValueError) as fast_error:
            pysim.NCA().fit(Xb, y)
        with pytest.raises(ValueError) as slow_error:
            pysim.NCA().fit(Xb.tolist(), y)
        assert str(fast_error.value) == str(slow_error.value)
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        pysim.NCA().fit(X[:1], y[:1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        pysim.NCA().fit(X, y[:-1])


def test_plain_input_refit_forgets_feature_names(rng):
    pd = pytest.importorskip("pandas")
    X, y = noisy_classes(rng, n=60)
    model = pysim.NCA(max_iter=3).fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(15)]), y)
    assert hasattr(model, "feature_names_in_")
    model.fit(X, y)  # refit on a plain array forgets the names, as validate_data does
    assert not hasattr(model, "feature_names_in_")


def test_whitening_bad_input(rng):
    X = rng.standard_normal((20, 3))
    with pytest.raises(ValueError, match="n_components"):
        pysim.Whitening(n_components=5).fit(X)
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        pysim.Whitening().fit(X)


def test_whitening_fast_input_check_matches_validate_data(rng):
    # A float64 ndarray is checked by its column sums instead of validate_data: the same
    # errors, attributes and fit as the validated path (float32 and lists take validate_data).
    X = rng.standard_normal((40, 3)) * [1.0, 5.0, 0.2] + 3.0
    w = pysim.Whitening(shrinkage=0.2).fit(X)
    assert w.n_features_in_ == 3 and not hasattr(w, "feature_names_in_")
    np.testing.assert_allclose(w.mean_, X.mean(axis=0), rtol=1e-14)
    via_list = pysim.Whitening(shrinkage=0.2).fit(X.tolist())
    np.testing.assert_allclose(w.components_, via_list.components_, rtol=1e-12)
    w.feature_names_in_ = np.array(["a", "b", "c"], dtype=object)  # as left by a DataFrame fit
    assert not hasattr(w.fit(X), "feature_names_in_")
    for bad, message in [(np.nan, "NaN"), (-np.inf, "infinity")]:
        Xb = X.copy()
        Xb[7, 2] = bad
        with pytest.raises(ValueError, match=message):
            pysim.Whitening().fit(Xb)
    # +inf and -inf in one column sum to NaN: still refused, as infinity (scikit-learn's own
    # first check sums X too, and warns about inf - inf).
    Xb = X.copy()
    Xb[1, 0], Xb[2, 0] = np.inf, -np.inf
    with pytest.raises(ValueError, match="infinity"), np.errstate(invalid="ignore"):
        pysim.Whitening().fit(Xb)
    with pytest.raises(ValueError, match="minimum of 2"):
        pysim.Whitening().fit(X[:1])


def test_bad_parameters(rng):
    X, y = noisy_classes(rng, n=30)
    with pytest.raises(ValueError, match="init"):
        pysim.NCA(init="bogus").fit(X, y)
    with pytest.raises(ValueError, match="init array"):
        pysim.NCA(init=np.eye(3)).fit(X, y)
    with pytest.raises(ValueError, match="max_iter"):
        pysim.NCA(max_iter=0).fit(X, y)
    with pytest.raises(ValueError, match="regularization"):
        pysim.LMNN(regularization=2).fit(X, y)
    with pytest.raises(ValueError, match="n_neighbors"):
        pysim.LMNN(n_neighbors=0).fit(X, y)
    with pytest.raises(TypeError, match="n_components"):
        pysim.LMNN(n_components=2.5).fit(X, y)


def test_small_class_uses_all_its_members(rng):
    X, y = noisy_classes(rng, n=60)
    X = np.vstack([X, rng.standard_normal((2, X.shape[1])) + 10])
    y = np.r_[y, [7, 7]]  # a class of 2 < n_neighbors + 1: no error, no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = pysim.LMNN(n_neighbors=5, max_iter=10).fit(X, y)
    assert np.isfinite(model.components_).all()


def test_nca_memory_is_blocked(rng):
    """One NCA evaluation allocates O(n * block), far below one n x n float64 matrix."""
    n = 3000
    X, y = noisy_classes(rng, n=n, informative=5, noise=15)
    data = LabelledData(X, y)
    L = np.eye(X.shape[1]).ravel()
    tracemalloc.start()
    nca_loss_grad(L, data, X.shape[1])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < n * n * 8 / 4, peak


@pytest.mark.slow
def test_nca_fits_20000_points_in_bounded_memory(rng):
    n = 20000
    X, y = noisy_classes(rng, n=n, informative=10, noise=40, classes=10)
    tracemalloc.start()
    pysim.NCA(max_iter=2).fit(X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 512 * 2**20, peak  # an n x n float64 matrix alone would be 3.2 GB


def test_serial_blas_rescans_only_when_a_library_is_loaded(tmp_path):
    """The BLAS limiter keeps its library scan until the loader reports a new shared object
    (importing a pure-Python module does not trigger the 10-20 ms rescan)."""
    import ctypes
    import importlib
    import shutil
    import sys

    from threadpoolctl import threadpool_info

    from pysim import _validation

    with _validation.serial_blas():
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)
    controller = _validation._blas_controller
    (tmp_path / "pysim_probe_module.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        modules = len(sys.modules)
        importlib.import_module("pysim_probe_module")  # pure Python: sys.modules grows
        assert len(sys.modules) > modules
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("pysim_probe_module", None)
    with _validation.serial_blas():
        pass
    assert _validation._blas_controller is controller
    stamp = _validation._loaded_objects_stamp()
    if stamp[0] != "dl":
        pytest.skip("the C library reports no loader counters here (non-glibc platform)")
    import _ctypes

    path = getattr(_ctypes, "__file__", None)  # an extension module's shared object
    if path is None:
        pytest.skip("_ctypes is built into this interpreter: no shared object to copy")
    copy = tmp_path / "libpysim_probe.so"
    shutil.copy(path, copy)
    ctypes.CDLL(str(copy))  # a new object for the loader, whatever it contains
    assert _validation._loaded_objects_stamp() != stamp
    with _validation.serial_blas():
        pass
    assert _validation._blas_controller is not controller


# ---------------------------------------------------------------- scikit-learn's own checks


@parametrize_with_checks([pysim.Whitening(), pysim.NCA(max_iter=20), pysim.LMNN(max_iter=20)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
