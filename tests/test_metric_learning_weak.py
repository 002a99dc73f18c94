"""Tests for the weakly supervised learners (pairs, triplets, quadruplets, chunklets), LFDA,
MLKR and the triplet / contrastive embeddings.

Each algorithm is checked against a mathematical reference: losses and gradients against
dense formulas and finite differences, closed forms (RCA, LFDA) against a direct dense
computation, learning on synthetic data whose informative and noise directions are known.
The shared API (tuple shapes, preprocessor indices, labels, threshold calibration) is
checked against brute force. Comparisons with metric-learn itself run only where it is
installed (an optional peer, skipped otherwise). scikit-learn's ``check_estimator`` runs on
every label-based learner.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.base import clone
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

import pysim
from pysim.metric_learning import (
    ITML,
    LFDA,
    LSML,
    MLKR,
    MMC,
    RCA,
    SCML,
    SDML,
    ContrastiveEmbedding,
    Covariance,
    ITML_Supervised,
    LSML_Supervised,
    MMC_Supervised,
    RCA_Supervised,
    SCML_Supervised,
    SDML_Supervised,
    TripletEmbedding,
    Whitening,
)
from pysim.metric_learning._base import LabelledData, _lda_components
from pysim.metric_learning._embedding import contrastive_loss_grad, triplet_loss_grad
from pysim.metric_learning._lfda import local_scatters
from pysim.metric_learning._lsml import lsml_loss_grad
from pysim.metric_learning._mlkr import mlkr_loss_grad
from pysim.metric_learning._mmc import mmc_diag_loss_grad, mmc_ratio_loss_grad
from pysim.metric_learning._scml import scml_loss_grad
from pysim.metric_learning._weakly import (
    _distinct_pairs,
    chunks_from_labels,
    knn_triplets,
    positive_negative_pairs,
    quadruplets_from_labels,
)


def noisy_classes(rng, n=200, informative=2, noise=4, classes=3, noise_scale=3.0):
    """Classes separated along `informative` dims, drowned in larger isotropic noise dims."""
    y = rng.permutation(np.arange(n) % classes)
    centres = 3.0 * np.eye(classes, informative)
    Xi = centres[y] + 0.4 * rng.standard_normal((n, informative))
    Xn = noise_scale * rng.standard_normal((n, noise))
    return np.hstack([Xi, Xn]), y


def label_pairs(X, y, rng, n=300):
    """Random similar / dissimilar pairs from labels: (n, 2, d) and +1 / -1."""
    a = rng.integers(0, len(X), n)
    b = rng.integers(0, len(X), n)
    keep = a != b
    a, b = a[keep], b[keep]
    return np.stack([X[a], X[b]], axis=1), np.where(y[a] == y[b], 1, -1), np.c_[a, b]


def label_triplets(X, y, rng, n=400):
    a = rng.integers(0, len(X), 4 * n)
    b = rng.integers(0, len(X), 4 * n)
    c = rng.integers(0, len(X), 4 * n)
    ok = (y[a] == y[b]) & (y[a] != y[c]) & (a != b)
    idx = np.c_[a, b, c][ok][:n]
    return X[idx], idx


def label_quadruplets(X, y, rng, n=400):
    a, b, c, d = (rng.integers(0, len(X), 4 * n) for _ in range(4))
    ok = (y[a] == y[b]) & (y[c] != y[d]) & (a != b)
    idx = np.c_[a, b, c, d][ok][:n]
    return X[idx], idx


def informative_share(learner, informative=2):
    """Share of the learned metric's trace on the informative features."""
    M = learner.get_mahalanobis_matrix()
    return np.trace(M[:informative, :informative]) / np.trace(M)


def knn_accuracy(Xtr, ytr, Xte, yte, k=3):
    return KNeighborsClassifier(k).fit(Xtr, ytr).score(Xte, yte)


# ---------------------------------------------------------------- the shared tuple API

PAIR_LEARNERS = [
    lambda: ITML(max_iter=50),
    lambda: SDML(balance_param=1e-3),
    lambda: MMC(max_iter=50),
]


@pytest.mark.parametrize("make", PAIR_LEARNERS)
def test_pair_api_shapes_and_index_form(rng, make):
    X, y = noisy_classes(rng)
    pairs, py, idx = label_pairs(X, y, rng)
    a = make().fit(pairs, py)
    b = make().set_params(preprocessor=X).fit(idx, py)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-10, atol=1e-12)
    assert a.threshold_ == pytest.approx(b.threshold_)
    d = a.pair_distance(pairs)
    assert d.shape == (len(pairs),)
    np.testing.assert_allclose(a.pair_score(pairs), -d)
    np.testing.assert_allclose(a.decision_function(pairs), -d)
    np.testing.assert_allclose(b.pair_distance(idx), d, rtol=1e-10)
    pred = a.predict(pairs)
    assert set(np.unique(pred)) <= {-1, 1}
    np.testing.assert_array_equal(pred, np.where(d <= a.threshold_, 1, -1))
    assert 0.5 < a.score(pairs, py) <= 1.0  # ROC AUC, better than chance on this data
    Z = a.transform(X)
    np.testing.assert_allclose(Z, X @ a.components_.T)
    M = a.get_mahalanobis_matrix()
    diff = pairs[:, 0] - pairs[:, 1]
    np.testing.assert_allclose(d, np.sqrt(np.einsum("ij,jk,ik->i", diff, M, diff)), rtol=1e-8)


@pytest.mark.parametrize("make", PAIR_LEARNERS)
def test_pair_bad_input(rng, make):
    X, y = noisy_classes(rng, n=60)
    pairs, py, idx = label_pairs(X, y, rng, n=80)
    learner = make()
    with pytest.raises(ValueError, match="pairs must have shape"):
        learner.fit(pairs[:, :1], py)
    with pytest.raises(ValueError, match="looks like indices"):
        learner.fit(idx, py)
    with pytest.raises(ValueError, match=r"\+1 \(similar\) and -1"):
        learner.fit(pairs, np.where(py == 1, 1, 0))
    with pytest.raises(ValueError, match="single class"):
        learner.fit(pairs, np.ones(len(pairs), int))
    with pytest.raises(ValueError, match="shape"):
        learner.fit(pairs, py[:-1])
    bad = pairs.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        learner.fit(bad, py)
    with pytest.raises(ValueError, match="out of range"):
        clone(learner).set_params(preprocessor=X).fit(idx + len(X), py)
    assert not hasattr(learner, "components_")  # failed fits leave it unfitted
    learner.fit(pairs, py)
    with pytest.raises(ValueError, match="features"):
        learner.predict(pairs[:, :, :3])


def test_calibrate_threshold_strategies_against_brute_force(rng):
    X, y = noisy_classes(rng, noise_scale=5.0)
    pairs, py, _ = label_pairs(X, y, rng, n=400)
    itml = ITML(max_iter=20).fit(pairs, py)
    d = itml.pair_distance(pairs)
    cands = np.r_[np.sort(d), np.inf]
    pos, neg = py == 1, py == -1

    def rates(t):
        acc = d <= t
        tpr = (acc & pos).sum() / pos.sum()
        tnr = (~acc & neg).sum() / neg.sum()
        return acc, tpr, tnr

    def check(strategy, value, **kw):
        itml.calibrate_threshold(pairs, py, strategy=strategy, **kw)
        best = max(value(t) for t in cands)
        assert value(itml.threshold_) == pytest.approx(best)

    check("accuracy", lambda t: np.mean(np.where(d <= t, 1, -1) == py))

    def fbeta(t, beta=2.0):
        acc, tpr, _ = rates(t)
        tp = (acc & pos).sum()
        if tp == 0:
            return 0.0
        prec = tp / acc.sum()
        return (1 + beta**2) * prec * tpr / (beta**2 * prec + tpr)

    check("f_beta", fbeta, beta=2.0)
    check("max_tpr", lambda t: rates(t)[1] if rates(t)[2] >= 0.8 else -1, min_rate=0.8)
    check("max_tnr", lambda t: rates(t)[2] if rates(t)[1] >= 0.7 else -1, min_rate=0.7)
    with pytest.raises(ValueError, match="min_rate"):
        itml.calibrate_threshold(pairs, py, strategy="max_tpr")
    with pytest.raises(ValueError, match="strategy"):
        itml.calibrate_threshold(pairs, py, strategy="auc")
    with pytest.raises(ValueError, match="beta"):
        itml.calibrate_threshold(pairs, py, strategy="f_beta", beta=0)
    # fit(calibration_params=...) forwards to calibrate_threshold
    t = (
        ITML(max_iter=20)
        .fit(pairs, py, calibration_params={"strategy": "max_tpr", "min_rate": 0.8})
        .threshold_
    )
    assert t == pytest.approx(itml.calibrate_threshold(pairs, py, "max_tpr", 0.8).threshold_)


def test_triplet_and_quadruplet_api(rng):
    X, y = noisy_classes(rng)
    T, tidx = label_triplets(X, y, rng)
    scml = SCML(random_state=0).fit(T)
    dec = scml.decision_function(T)
    M = scml.get_mahalanobis_matrix()
    dist = lambda u, v: np.sqrt(np.einsum("ij,jk,ik->i", u - v, M, u - v))  # noqa: E731
    np.testing.assert_allclose(dec, dist(T[:, 0], T[:, 2]) - dist(T[:, 0], T[:, 1]), atol=1e-9)
    np.testing.assert_array_equal(scml.predict(T), np.where(dec > 0, 1, -1))
    assert scml.score(T) == pytest.approx(np.mean(dec > 0))
    assert scml.score(T) > 0.8
    same = SCML(random_state=0, preprocessor=X).fit(tidx)
    np.testing.assert_allclose(same.components_, scml.components_, atol=1e-10)
    Q, qidx = label_quadruplets(X, y, rng)
    lsml = LSML().fit(Q)
    euclid = LSML(max_iter=1).set_params().fit(Q)  # one step from the identity prior
    assert lsml.score(Q) > 0.65  # the LogDet prior term keeps M near I (as metric-learn)
    assert lsml.loss_ < euclid.loss_
    np.testing.assert_allclose(LSML(preprocessor=X).fit(qidx).components_, lsml.components_)
    with pytest.raises(ValueError, match="triplets must have shape"):
        SCML().fit(Q)
    with pytest.raises(ValueError, match="quadruplets must have shape"):
        LSML().fit(T)


# ---------------------------------------------------------------- losses against references


def test_lsml_loss_and_gradient(rng):
    d = 4
    Q = rng.standard_normal((60, 4, d))
    Vab, Vcd = Q[:, 0] - Q[:, 1], Q[:, 2] - Q[:, 3]
    w = rng.random(60)
    w /= w.sum()
    P = np.eye(d) * 0.5
    L = np.eye(d) + 0.1 * rng.standard_normal((d, d))
    M = L.T @ L
    dab = np.sqrt(np.einsum("ij,jk,ik->i", Vab, M, Vab))
    dcd = np.sqrt(np.einsum("ij,jk,ik->i", Vcd, M, Vcd))
    viol = dab > dcd
    ref = (
        (w[viol] * (dab[viol] - dcd[viol]) ** 2).sum() + np.trace(M @ P) - np.log(np.linalg.det(M))
    )
    loss, _ = lsml_loss_grad(L.ravel(), Vab, Vcd, w, P)
    assert loss == pytest.approx(ref, rel=1e-9)
    err = check_grad(
        lambda f: lsml_loss_grad(f, Vab, Vcd, w, P)[0],
        lambda f: lsml_loss_grad(f, Vab, Vcd, w, P)[1],
        L.ravel(),
    )
    assert err < 1e-5


def test_mmc_objectives_and_gradients(rng):
    d = 4
    VS, VD = rng.standard_normal((30, d)), rng.standard_normal((40, d))
    L = rng.standard_normal((d, d))
    f = ((VS @ L.T) ** 2).sum()
    g = np.linalg.norm(VD @ L.T, axis=1).sum()
    loss, _ = mmc_ratio_loss_grad(L.ravel(), VS.T @ VS, VD)
    assert loss == pytest.approx(f / g**2, rel=1e-8)
    err = check_grad(
        lambda x: mmc_ratio_loss_grad(x, VS.T @ VS, VD)[0],
        lambda x: mmc_ratio_loss_grad(x, VS.T @ VS, VD)[1],
        L.ravel(),
    )
    assert err < 1e-6 * max(1.0, np.abs(mmc_ratio_loss_grad(L.ravel(), VS.T @ VS, VD)[1]).max())
    w = rng.random(d) + 0.5
    s = (VS**2).sum(0)
    ref = s @ w - 2.0 * np.log(np.sqrt((VD**2) @ w).sum())
    assert mmc_diag_loss_grad(w, s, VD**2, 2.0)[0] == pytest.approx(ref, rel=1e-9)
    assert (
        check_grad(
            lambda x: mmc_diag_loss_grad(x, s, VD**2, 2.0)[0],
            lambda x: mmc_diag_loss_grad(x, s, VD**2, 2.0)[1],
            w,
        )
        < 1e-5
    )


@pytest.mark.parametrize("block", [3, 1000])
def test_mlkr_loss_and_gradient(rng, block):
    X = rng.standard_normal((40, 3))
    y = X[:, 0] * 2 + 0.1 * rng.standard_normal(40)
    L = 0.7 * rng.standard_normal((2, 3))
    Z = X @ L.T
    D = ((Z[:, None] - Z[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    K = np.exp(-D)
    yhat = K @ y / K.sum(1)
    loss, _ = mlkr_loss_grad(L.ravel(), X, y, 2, block=block)
    assert loss == pytest.approx(((yhat - y) ** 2).sum(), rel=1e-10)
    err = check_grad(
        lambda f: mlkr_loss_grad(f, X, y, 2, block=block)[0],
        lambda f: mlkr_loss_grad(f, X, y, 2, block=block)[1],
        L.ravel(),
    )
    assert err < 1e-5 * max(1.0, loss)


def test_mlkr_overflowing_distances_take_the_checked_path(rng):
    """Rows whose squared norms overflow float64 (distances between them do not): the core
    kernel's unchecked result is not finite, so the evaluation is repeated through
    pysim.cdist's rescaling, exactly as `checked=True` computes it."""
    X = 1e154 * (3.0 + 0.01 * rng.standard_normal((40, 3)))
    y = rng.standard_normal(40)
    flat = np.eye(2, 3).ravel()
    loss, grad = mlkr_loss_grad(flat, X, y, 2)
    want = mlkr_loss_grad(flat, X, y, 2, checked=True)
    assert np.isfinite(loss) and loss == want[0]
    np.testing.assert_array_equal(grad, want[1])


def test_mlkr_and_scml_losses_do_not_depend_on_threads(rng):
    X = rng.standard_normal((700, 4))  # several row blocks, so threads share the work
    y = 50.0 + 30.0 * X[:, 0] + rng.standard_normal(700)  # offset targets: centring is exact
    L = 0.5 * rng.standard_normal((3, 4))
    one = mlkr_loss_grad(L.ravel(), X, y, 3, threads=1)
    two = mlkr_loss_grad(L.ravel(), X, y, 3, threads=2)
    assert one[0] == two[0] and np.array_equal(one[1], two[1])
    Z = X @ L.T
    D = ((Z[:, None] - Z[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    K = np.exp(-(D - D.min(1)[:, None]))
    yhat = K @ y / K.sum(1)
    assert one[0] == pytest.approx(((yhat - y) ** 2).sum(), rel=1e-10)
    Phi = rng.standard_normal((1000, 30)).astype(np.float32).astype(np.float64)  # Φ is float32
    w = rng.random(30)
    a, b = scml_loss_grad(w, Phi, 1e-3, threads=1), scml_loss_grad(w, Phi, 1e-3, threads=2)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    z = 1.0 + Phi @ w
    dz = np.where(z >= 0.05, 1.0, np.where(z > 0, z / 0.05, 0.0))
    np.testing.assert_allclose(a[1], Phi.T @ dz / 1000 + 1e-3, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("K", [1, 3, 7, 8, 9, 16, 17, 63, 64, 65, 130])
def test_scml_fused_pass_matches_float64_reference(isa, rng, K):
    # The compiled pass (dispatched mixed-precision dot per row, then the row added to the
    # gradient) on a float32 Φ against numpy in float64 on the same values, with margins in all
    # three parts of the smoothed hinge (satisfied, quadratic band, linear), at every ISA, and
    # the same bits at 1 and 2 threads.
    T = 203  # not a multiple of the 8 slices
    P = rng.standard_normal((T, K))
    w = 0.5 + rng.random(K)
    target = rng.uniform(-3.0, 1.0, T)
    target[:20] = rng.uniform(0.0, 0.05, 20)  # the quadratic band
    P[:, 0] += (target - 1.0 - P @ w) / w[0]  # margins z = 1 + Φw = target
    Phi32 = np.empty(T * K + 1, dtype=np.float32)[1:].reshape(T, K)  # misaligned rows
    Phi32[...] = P
    Phi = Phi32.astype(np.float64)
    z = 1.0 + Phi @ w
    assert (z <= 0).any() and ((z > 0) & (z < 0.05)).any() and (z >= 0.05).any()
    value = np.where(z >= 0.05, z - 0.025, np.where(z > 0, z * z / 0.1, 0.0))
    dz = np.where(z >= 0.05, 1.0, np.where(z > 0, z / 0.05, 0.0))
    one = scml_loss_grad(w, Phi32, 1e-3, threads=1)
    two = scml_loss_grad(w, Phi32, 1e-3, threads=2)
    assert one[0] == two[0] and np.array_equal(one[1], two[1])
    scale = np.abs(Phi).sum() / T
    assert one[0] == pytest.approx(value.mean() + 1e-3 * w.sum(), rel=1e-12, abs=1e-14 * scale)
    np.testing.assert_allclose(one[1], Phi.T @ dz / T + 1e-3, rtol=1e-12, atol=1e-14 * scale)
    # Fewer rows than slices, and a single row.
    for rows in (Phi[:3], Phi[:1]):
        got = scml_loss_grad(w, rows.astype(np.float32), 0.0)
        zz = 1.0 + rows @ w
        want = np.where(zz >= 0.05, 1.0, np.where(zz > 0, zz / 0.05, 0.0)) @ rows / len(rows)
        np.testing.assert_allclose(got[1], want, rtol=1e-12, atol=1e-14 * scale)


def test_lda_components_are_the_generalised_eigenvectors(rng):
    # SCML's local bases (and the "lda" init): Fisher directions l with l Sw lᵀ = I and
    # l Sb lᵀ diagonal, by decreasing eigenvalue, from the Cholesky + SVD form.
    X, y = noisy_classes(rng, n=150)
    data = LabelledData(X, y)
    n, d = data.X.shape
    k = len(data.classes) - 1
    L = _lda_components(data, k)
    means = np.stack([data.X[data.codes == c].mean(0) for c in range(k + 1)])
    within = data.X - means[data.codes]
    Sw = within.T @ within / n
    Sw += (1e-8 * np.trace(Sw) / d + 1e-300) * np.eye(d)
    between = (means - data.X.mean(0)) * np.sqrt(data.counts / n)[:, None]
    Sb = between.T @ between
    np.testing.assert_allclose(L @ Sw @ L.T, np.eye(k), atol=1e-10)
    B = L @ Sb @ L.T
    np.testing.assert_allclose(B, np.diag(np.diag(B)), atol=1e-10)
    assert (np.diff(np.diag(B)) <= 1e-12).all()
    ev = np.sort(np.linalg.eigvals(np.linalg.solve(Sw, Sb)).real)[::-1][:k]
    np.testing.assert_allclose(np.diag(B), ev, rtol=1e-8)


def test_scml_and_embedding_losses(rng):
    d, K = 3, 5
    Phi = rng.standard_normal((50, K))
    w = rng.random(K)
    assert (
        check_grad(
            lambda x: scml_loss_grad(x, Phi, 1e-3)[0], lambda x: scml_loss_grad(x, Phi, 1e-3)[1], w
        )
        < 1e-5
    )
    Vap, Van = rng.standard_normal((40, d)), rng.standard_normal((40, d))
    L = rng.standard_normal((2, d))
    for fn in (triplet_loss_grad, contrastive_loss_grad):
        err = check_grad(
            lambda f, fn=fn: fn(f, Vap, Van, 1.5, 2)[0],
            lambda f, fn=fn: fn(f, Vap, Van, 1.5, 2)[1],
            L.ravel(),
        )
        assert err < 1e-5
    # Away from the smoothing band the triplet loss is the plain hinge (shifted by width/2).
    z = 1.5 + ((Vap @ L.T) ** 2).sum(1) - ((Van @ L.T) ** 2).sum(1)
    ref = np.where(z >= 0.075, z - 0.0375, np.where(z > 0, z * z / 0.15, 0.0)).mean()
    assert triplet_loss_grad(L.ravel(), Vap, Van, 1.5, 2)[0] == pytest.approx(ref)


def test_lfda_scatters_match_dense_formula(rng):
    X, y = noisy_classes(rng, n=60)
    data = LabelledData(X, y)
    Xs, codes, n = data.X, data.codes, len(X)
    k = 4
    D = ((Xs[:, None] - Xs[None]) ** 2).sum(-1)
    same = codes[:, None] == codes[None]
    sigma = np.empty(n)
    for i in range(n):
        sigma[i] = np.sqrt(np.sort(D[i][same[i]])[k])  # k-th neighbour (index 0 is itself)
    A = np.exp(-D / np.outer(sigma, sigma)) * same
    nc = np.bincount(codes)[codes]
    Ww = np.where(same, A / nc[:, None], 0.0)
    Wb = np.where(same, A * (1 / n - 1 / nc[:, None]), 1 / n)

    def scatter(W):
        diff = Xs[:, None] - Xs[None]
        return 0.5 * np.einsum("ij,ijk,ijl->kl", W, diff, diff)

    Sw, Sb = local_scatters(Xs, data.starts, k)
    np.testing.assert_allclose(Sw, scatter(Ww), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(Sb, scatter(Wb), rtol=1e-9, atol=1e-9)


def test_lfda_row_blocks_match_whole_classes(rng, monkeypatch):
    # Classes above _WHOLE_CLASS_ROWS run in row blocks (distances computed twice, A @ Z per
    # block instead of the triangular product): the same scatters, on 1 or 2 threads.
    from pysim.metric_learning import _lfda

    X, y = noisy_classes(rng, n=90)
    data = LabelledData(X, y)
    whole = local_scatters(data.X, data.starts, 5)
    monkeypatch.setattr(_lfda, "_WHOLE_CLASS_ROWS", 0)
    monkeypatch.setattr(_lfda, "block_rows", lambda n_cols: 7)
    for threads in (1, 2):
        blocked = local_scatters(data.X, data.starts, 5, threads=threads)
        for a, b in zip(whole, blocked, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())


def test_rca_is_inverse_sqrt_of_within_chunk_covariance(rng):
    X = rng.standard_normal((60, 3)) * [1.0, 3.0, 0.5]
    chunks = np.repeat(np.arange(20), 3)
    rca = RCA().fit(X, chunks)
    centred = X - np.stack([X[chunks == c].mean(0) for c in range(20)])[chunks]
    C = centred.T @ centred / len(X)
    np.testing.assert_allclose(rca.get_mahalanobis_matrix(), np.linalg.inv(C), rtol=1e-8)
    assert RCA(n_components=2).fit(X, chunks).components_.shape == (2, 3)
    # A constant feature gets weight 0; the rest is the same metric.
    M = RCA().fit(np.c_[X, np.ones(60)], chunks).get_mahalanobis_matrix()
    np.testing.assert_allclose(M[:3, :3], np.linalg.inv(C), rtol=1e-8)
    np.testing.assert_allclose(M[3], 0.0, atol=1e-12)
    # A feature constant within every chunklet but not across them: no inverse square root.
    with pytest.raises(ValueError, match="singular"):
        RCA().fit(np.c_[X, chunks % 2], chunks)
    with pytest.raises(ValueError, match="no point"):
        RCA().fit(X, -np.ones(60, int))
    with pytest.raises(ValueError, match="chunks"):
        RCA().fit(X, chunks[:-1])


def test_rca_shrinkage_whitens_the_blended_covariance(rng):
    X = rng.standard_normal((60, 3)) * [1.0, 3.0, 0.5]
    chunks = np.repeat(np.arange(20), 3)
    centred = X - np.stack([X[chunks == c].mean(0) for c in range(20)])[chunks]
    C = centred.T @ centred / len(X)
    target = 0.3 * C + 0.7 * np.trace(C) / 3 * np.eye(3)
    M = RCA(shrinkage=0.7).fit(X, chunks).get_mahalanobis_matrix()
    np.testing.assert_allclose(M, np.linalg.inv(target), rtol=1e-8)
    # "auto": the Ledoit-Wolf intensity of the within-chunklet residuals.
    from sklearn.covariance import ledoit_wolf_shrinkage

    a = ledoit_wolf_shrinkage(centred, assume_centered=True)
    assert 0 < a < 1
    target = (1 - a) * C + a * np.trace(C) / 3 * np.eye(3)
    M = RCA(shrinkage="auto").fit(X, chunks).get_mahalanobis_matrix()
    np.testing.assert_allclose(M, np.linalg.inv(target), rtol=1e-8)
    # A constant feature still gets weight 0; a feature constant within every chunklet (C
    # singular) has an inverse once shrunk.
    M = RCA(shrinkage=0.7).fit(np.c_[X, np.ones(60)], chunks).get_mahalanobis_matrix()
    np.testing.assert_allclose(M[3], 0.0, atol=1e-12)
    assert np.isfinite(RCA(shrinkage=0.1).fit(np.c_[X, chunks % 2], chunks).components_).all()
    assert RCA(n_components=2, shrinkage="auto").fit(X, chunks).components_.shape == (2, 3)
    assert RCA(shrinkage=0.0).fit(X, chunks).get_mahalanobis_matrix() == pytest.approx(
        np.linalg.inv(C), rel=1e-8
    )
    for bad in (-0.1, 1.5, "ledoit"):
        with pytest.raises(ValueError, match="shrinkage"):
            RCA(shrinkage=bad).fit(X, chunks)
    y = np.repeat(np.arange(3), 20)
    Xs = X + 4.0 * y[:, None]
    model = RCA_Supervised(n_chunks=20, shrinkage="auto", random_state=0).fit(Xs, y)
    assert np.isfinite(model.components_).all()


def test_itml_moves_pairs_towards_their_bounds(rng):
    X, y = noisy_classes(rng, n=80)
    pairs, py, _ = label_pairs(X, y, rng, n=60)
    u, lo = 4.0, 40.0
    itml = ITML(gamma=100.0, max_iter=2000, tol=1e-6).fit(pairs, py, bounds=(u, lo))
    diff = pairs[:, 0] - pairs[:, 1]

    def met(M):  # share of constraints met; metric-learn's convention: squared distances
        d2 = np.einsum("ij,jk,ik->i", diff, M, diff)
        return np.mean(np.where(py == 1, d2 <= u * 1.05, d2 >= lo * 0.95))

    assert met(itml.get_mahalanobis_matrix()) > met(np.eye(X.shape[1])) + 0.1
    assert itml.bounds_.tolist() == [u, lo]


def test_sdml_rank_deficient_input_falls_back_not_nan(rng):
    X, y = noisy_classes(rng, n=60)
    pairs, py, _ = label_pairs(X, y, rng, n=200)
    sdml = SDML(balance_param=10.0).fit(pairs, py)  # dissimilar pairs swamp the prior
    assert sdml.shifted_
    assert np.isfinite(sdml.components_).all()


# ---------------------------------------------------------------- learning the right metric


SUPERVISED = {
    "ITML_Supervised": lambda: ITML_Supervised(max_iter=100, random_state=0),
    "SDML_Supervised": lambda: SDML_Supervised(balance_param=1e-3, random_state=0),
    "MMC_Supervised": lambda: MMC_Supervised(random_state=0),
    "LSML_Supervised": lambda: LSML_Supervised(random_state=0),
    "SCML_Supervised": lambda: SCML_Supervised(random_state=0),
    "RCA_Supervised": lambda: RCA_Supervised(random_state=0),
    "LFDA": lambda: LFDA(k=5),
    "TripletEmbedding": lambda: TripletEmbedding(random_state=0),
    "ContrastiveEmbedding": lambda: ContrastiveEmbedding(random_state=0),
}


@pytest.mark.parametrize("name", list(SUPERVISED))
def test_learns_informative_directions(rng, name):
    X, y = noisy_classes(rng, n=300)
    half = 150
    learner = SUPERVISED[name]().fit(X[:half], y[:half])
    assert informative_share(learner) > 0.6, name
    base = knn_accuracy(X[:half], y[:half], X[half:], y[half:])
    acc = knn_accuracy(learner.transform(X[:half]), y[:half], learner.transform(X[half:]), y[half:])
    assert acc > base + 0.05, (name, acc, base)


def test_mlkr_finds_the_regression_direction(rng):
    X = rng.standard_normal((200, 4))
    yr = np.sin(2 * X[:, 0]) + 0.05 * rng.standard_normal(200)
    mlkr = MLKR(max_iter=100).fit(X, yr)
    M = mlkr.get_mahalanobis_matrix()
    assert M[0, 0] > 5 * max(M[1, 1], M[2, 2], M[3, 3])
    from sklearn.neighbors import KNeighborsRegressor

    Z = mlkr.transform(X)
    plain = KNeighborsRegressor(5).fit(X[:100], yr[:100]).score(X[100:], yr[100:])
    learned = KNeighborsRegressor(5).fit(Z[:100], yr[:100]).score(Z[100:], yr[100:])
    assert learned > plain + 0.1


def test_constraint_generators(rng):
    y = rng.integers(0, 4, 120)
    X = rng.standard_normal((120, 3))
    data = LabelledData(X, y)
    pairs, py = positive_negative_pairs(data, 200, 0)
    same = data.codes[pairs[:, 0]] == data.codes[pairs[:, 1]]
    np.testing.assert_array_equal(same, py == 1)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    # The distinct pairs are numpy's row-wise unique of the sorted pairs, same order.
    a, b = rng.integers(0, 50, 400), rng.integers(0, 50, 400)
    np.testing.assert_array_equal(
        _distinct_pairs(a, b, 50), np.unique(np.sort(np.c_[a, b], axis=1), axis=0)
    )
    q = quadruplets_from_labels(data, 100, 0)
    assert (data.codes[q[:, 0]] == data.codes[q[:, 1]]).all()
    assert (data.codes[q[:, 2]] != data.codes[q[:, 3]]).all()
    ch = chunks_from_labels(data, 30, 3, 0)
    for c in np.unique(ch[ch >= 0]):
        members = np.flatnonzero(ch == c)
        assert len(members) == 3 and len(set(data.codes[members])) == 1
    t = knn_triplets(data, 2, 3)
    assert np.array_equal(t, knn_triplets(data, 2, 3, threads=2))
    assert len(t) == 120 * 2 * 3
    assert (data.codes[t[:, 0]] == data.codes[t[:, 1]]).all()
    assert (data.codes[t[:, 0]] != data.codes[t[:, 2]]).all()
    # b is among a's 2 nearest same-class rows
    D = ((data.X[:, None] - data.X[None]) ** 2).sum(-1)
    for a, b, _ in t[:30]:
        mask = (data.codes == data.codes[a]) & (np.arange(120) != a)
        near = np.argsort(np.where(mask, D[a], np.inf), kind="stable")[:2]
        assert b in near


def test_embeddings_explicit_constraints_and_hnsw(rng):
    X, y = noisy_classes(rng, n=200)
    T, _ = label_triplets(X, y, rng)
    te = TripletEmbedding(max_iter=5).fit_triplets(T)
    assert informative_share(te) > 0.6
    pairs, py, _ = label_pairs(X, y, rng, n=400)
    ce = ContrastiveEmbedding(max_iter=5, margin=3.0).fit_pairs(pairs, py)
    assert informative_share(ce) > 0.6
    hn = TripletEmbedding(index="hnsw", mining="all", random_state=0).fit(X, y)
    assert informative_share(hn) > 0.6
    with pytest.raises(ValueError, match="mining"):
        TripletEmbedding(mining="easy").fit(X, y)


# ---------------------------------------------------------------- against metric-learn


# The same scikit-learn >= 1.8 shim as benchmarks/bench_metric_learning.py's: the benchmarks and
# the tests are separate trees and neither imports the other (duplicates pairs them).
def _metric_learn():
    ml = pytest.importorskip("metric_learn")
    import functools

    util = ml._util
    if not getattr(util, "_pysim_shim", False):  # force_all_finite was removed in sklearn 1.8

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


@pytest.mark.filterwarnings("ignore")
def test_same_metric_as_metric_learn_on_tiny_problems(rng):
    ml = _metric_learn()
    X, y = noisy_classes(rng, n=60)
    pairs, py, _ = label_pairs(X, y, rng, n=80)
    # Run to convergence: pysim's active set (idle constraints skipped between full passes)
    # takes another path to the same fixed point, so the stopping points at a loose tol differ.
    ours = ITML(max_iter=5000, tol=1e-9).fit(pairs, py, bounds=(2.0, 20.0))
    theirs = ml.ITML(max_iter=5000, tol=1e-9).fit(pairs, py, bounds=(2.0, 20.0))
    np.testing.assert_allclose(
        ours.get_mahalanobis_matrix(), theirs.get_mahalanobis_matrix(), rtol=1e-6, atol=1e-8
    )
    # LSML: our L-BFGS reaches at least metric-learn's objective value.
    Q, _ = label_quadruplets(X, y, rng, n=200)
    w = np.full(len(Q), 1.0 / len(Q))
    V = (Q[:, 0] - Q[:, 1], Q[:, 2] - Q[:, 3])
    ours_L = LSML().fit(Q).components_
    theirs_L = ml.LSML(prior="identity").fit(Q).components_
    ours_loss = lsml_loss_grad(ours_L.ravel(), *V, w, np.eye(X.shape[1]))[0]
    theirs_loss = lsml_loss_grad(theirs_L.ravel(), *V, w, np.eye(X.shape[1]))[0]
    assert ours_loss <= theirs_loss * (1 + 1e-6)
    chunks = np.repeat(np.arange(20), 3)
    np.testing.assert_allclose(
        RCA().fit(X, chunks).get_mahalanobis_matrix(),
        ml.RCA().fit(X, chunks).get_mahalanobis_matrix(),
        rtol=1e-6,
    )
    # LFDA is checked against the paper's dense formulas instead
    # (test_lfda_scatters_match_dense_formula): metric-learn 0.7 takes the local scale sigma
    # from a column of a column-wise partition and adds 2 S_w to S_b, so its result differs.
    # metric-learn 0.7's SDML passes graphical_lasso(cov_init=...), which scikit-learn no
    # longer accepts: it cannot run here to compare with.


# ---------------------------------------------------------------- estimator contract


def test_nca_rejects_nan_tol():
    X, y = noisy_classes(np.random.default_rng(0), n=30)
    with pytest.raises(ValueError, match="tol"):
        pysim.NCA(tol=np.nan).fit(X, y)
    with pytest.raises(ValueError, match="max_iter"):
        pysim.NCA(max_iter=0).fit(X, y)


def test_top_level_exports_and_alias():
    assert Covariance is Whitening
    for name in (
        "ITML_Supervised",
        "SDML_Supervised",
        "MMC_Supervised",
        "LSML_Supervised",
        "SCML_Supervised",
        "RCA_Supervised",
        "LFDA",
        "MLKR",
        "Covariance",
    ):
        assert getattr(pysim, name) is getattr(pysim.metric_learning, name)


@pytest.mark.parametrize("name", list(SUPERVISED))
def test_pickle_and_clone(rng, name):
    X, y = noisy_classes(rng, n=90)
    learner = SUPERVISED[name]().fit(X, y)
    again = pickle.loads(pickle.dumps(learner))
    np.testing.assert_array_equal(again.transform(X), learner.transform(X))
    np.testing.assert_allclose(clone(learner).fit(X, y).components_, learner.components_)


def test_pair_learner_pickles_with_threshold(rng):
    X, y = noisy_classes(rng, n=60)
    pairs, py, _ = label_pairs(X, y, rng, n=80)
    itml = ITML(max_iter=20).fit(pairs, py)
    again = pickle.loads(pickle.dumps(itml))
    np.testing.assert_array_equal(again.predict(pairs), itml.predict(pairs))


@parametrize_with_checks(
    [
        ITML_Supervised(max_iter=20),
        SDML_Supervised(balance_param=1e-3),
        MMC_Supervised(max_iter=20),
        LSML_Supervised(max_iter=20),
        SCML_Supervised(max_iter=20, n_basis=16),
        RCA_Supervised(),
        LFDA(),
        MLKR(max_iter=10),
        TripletEmbedding(max_iter=2, n_candidates=5),
        ContrastiveEmbedding(max_iter=2, n_candidates=5),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "make", [lambda: ITML(max_iter=50), lambda: ContrastiveEmbedding(max_iter=3, margin=3.0)]
)
def test_pair_verifier_fits_an_unfitted_pair_learner(rng, make):
    X, y = noisy_classes(rng, n=200)
    pairs, py, _ = label_pairs(X, y, rng, n=400)
    learner = make()
    ver = pysim.PairVerifier("euclidean", metric_learner=learner)
    ver.fit(pairs[:, 0], pairs[:, 1], py == 1)
    plain = pysim.PairVerifier("euclidean").fit(pairs[:, 0], pairs[:, 1], py == 1)
    assert ver.eer_ < plain.eer_ - 0.05
    assert ver.metric_learner_ is not learner and not hasattr(learner, "components_")
    assert pysim.metrics.eer(ver.decision_function(pairs[:, 0], pairs[:, 1]), py == 1) == (
        pytest.approx(ver.eer_)
    )


# ------------------------------------------------- fixes of the quality gaps (issue 16 table)


def _mmc_projected_gradient(VS, VD, iters=3000):
    """A reference MMC solution: Xing et al.'s formulation (max Σ_D d s.t. Σ_S d² <= 1,
    M ⪰ 0) by projected gradient ascent on M, slow but independent of pysim's L-BFGS."""
    d = VS.shape[1]
    CS = VS.T @ VS
    M = np.eye(d) / np.trace(CS)
    for t in range(iters):
        dist = np.sqrt(np.einsum("ij,jk,ik->i", VD, M, VD) + 1e-12)
        G = (VD.T / (2 * dist)) @ VD
        M = M + (0.5 / (1 + t) ** 0.5) * G / np.linalg.norm(G) * np.linalg.norm(M)
        w, V = np.linalg.eigh((M + M.T) / 2)
        M = (V * np.clip(w, 0, None)) @ V.T
        M /= np.sqrt(max(np.sum(CS * M), 1e-300))  # back onto Σ_S d² = 1
    return M


def test_mmc_reaches_the_reference_objective(rng):
    X, y = noisy_classes(rng, n=80, informative=2, noise=2)
    pairs, py, _ = label_pairs(X, y, rng, n=200)
    diff = pairs[:, 0] - pairs[:, 1]
    VS, VD = diff[py == 1], diff[py == -1]

    def ratio(M):  # f / g², the scale-free MMC objective (smaller is better)
        f = np.einsum("ij,jk,ik->i", VS, M, VS).sum()
        g = np.sqrt(np.einsum("ij,jk,ik->i", VD, M, VD)).sum()
        return f / g**2

    mine = ratio(MMC(max_iter=500).fit(pairs, py).get_mahalanobis_matrix())
    ref = ratio(_mmc_projected_gradient(VS, VD))
    assert mine <= ref * (1 + 1e-3)
    assert mine < 0.9 * ratio(np.eye(X.shape[1]))


@pytest.mark.parametrize("diagonal", [False, True])
def test_mmc_leaves_out_what_no_similar_pair_varies_in(rng, diagonal):
    # Feature 2 is equal within every similar pair but differs across dissimilar ones: the
    # unrestricted optimum (f = 0 < g) would measure that feature alone, a metric that
    # separates the training pairs and nothing else. It is left out instead, and the
    # informative features 0 and 1 carry the metric.
    n = 200
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, 3)) * 0.3
    X[:, 0] += 3.0 * y
    pos = np.array([rng.choice(np.flatnonzero(y == c), 2, replace=False) for c in y[:100]])
    neg = np.array([[i, rng.choice(np.flatnonzero(y != y[i]))] for i in range(100)])
    pairs = X[np.vstack([pos, neg])].copy()
    pairs[:100, 1, 2] = pairs[:100, 0, 2]  # no similar pair differs in feature 2
    labels = np.r_[np.ones(100), -np.ones(100)]
    M = MMC(diagonal=diagonal).fit(pairs, labels).get_mahalanobis_matrix()
    assert np.isfinite(M).all()
    assert abs(M[2, 2]) <= 1e-8 * np.trace(M)
    assert M[0, 0] > M[1, 1] >= 0  # the class direction counts most (noise may drop out)


def test_mmc_supervised_default_draws_pairs_per_sample(rng):
    X, y = noisy_classes(rng, n=150, classes=3)
    mmc = MMC_Supervised(random_state=0)
    assert mmc._n_constraints(LabelledData(X, y)) == max(20 * 9, 10 * 150)
    assert MMC_Supervised(n_constraints=7)._n_constraints(LabelledData(X, y)) == 7


def test_sdml_lowers_the_pair_weight_instead_of_shifting(rng):
    X, y = noisy_classes(rng, n=60)
    pairs, py, _ = label_pairs(X, y, rng, n=200)
    sdml = SDML(balance_param=10.0).fit(pairs, py)  # S = I + 10 K is far from definite
    assert sdml.shifted_
    assert 0 < sdml.balance_param_ < 10.0
    diff = pairs[:, 0] - pairs[:, 1]
    S = np.eye(X.shape[1]) + sdml.balance_param_ * ((diff.T * py) @ diff)
    assert np.linalg.eigvalsh(S).min() == pytest.approx(0.1, rel=1e-6)
    ok = SDML(balance_param=1e-6).fit(pairs, py)  # a definite S is used as given
    assert not ok.shifted_ and ok.balance_param_ == 1e-6


def _held_out_accuracy(model, X, y):
    from sklearn.model_selection import train_test_split

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=1, stratify=y)
    if model is None:
        Ztr, Zte = Xtr, Xte
    else:
        model.fit(Xtr, ytr)
        Ztr, Zte = model.transform(Xtr), model.transform(Xte)
    return KNeighborsClassifier(3).fit(Ztr, ytr).score(Zte, yte)


def test_contrastive_embedding_beats_euclidean_held_out(rng):
    # Informative directions buried in noise ones of the same scale: a working contrastive
    # embedding shrinks the noise and classifies the held-out points better (the plain d²
    # pull with an unscaled start collapsed the map instead).
    X, y = noisy_classes(rng, n=300, informative=2, noise=6, classes=3, noise_scale=2.0)
    base = _held_out_accuracy(None, X, y)
    mine = _held_out_accuracy(ContrastiveEmbedding(random_state=0), X, y)
    assert mine > base + 0.02


def test_mlkr_tolerance_is_relative_to_the_target_scale(rng):
    X = rng.standard_normal((120, 4))
    y = 1e4 * X[:, 0] + 1e3 * rng.standard_normal(120)  # large targets: loss ~ 1e10
    m = MLKR(max_iter=1000).fit(X, y)
    assert m.n_iter_ < 1000  # converges instead of running out of iterations
    M = m.get_mahalanobis_matrix()
    assert M[0, 0] > 5 * max(abs(M[1, 1]), abs(M[2, 2]), abs(M[3, 3]))


@pytest.mark.parametrize("n", [40, 600, 2100])  # every pair; sampled from the Gram; chunked
def test_itml_default_bounds_match_the_direct_distances(rng, n):
    from pysim.metric_learning._itml import _MAX_BOUND_PAIRS, default_bounds
    from pysim.metric_learning._weakly import rng_of

    X = rng.standard_normal((n, 9)) * 3.0 + 5.0  # off-centre: the Gram form's cancellation
    got = default_bounds(X, 7)
    r = rng_of(7)  # the same draw as default_bounds'
    if n * (n - 1) // 2 <= _MAX_BOUND_PAIRS:
        i, j = np.triu_indices(n, 1)
    else:
        i, j = r.integers(0, n, _MAX_BOUND_PAIRS), r.integers(0, n, _MAX_BOUND_PAIRS)
        i, j = i[i != j], j[i != j]
    want = np.percentile(np.sqrt(((X[i] - X[j]) ** 2).sum(axis=1)), (5, 95))
    np.testing.assert_allclose(got, want, rtol=1e-9)
