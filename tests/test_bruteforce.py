"""BruteForceIndex against the float64 reference (tests/reference.py).

Exactness is checked on indices as well as distances: the index promises the float64
reference's neighbours with ties broken by the smaller row, so every test compares both.
Shapes are chosen to reach both engines (1-2 queries: one-to-many scan; more: tiles), data
splits across threads (n >= 8192), and the exact fallback (heavy ties).
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import reference
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import pysim
from pysim import _core

METRICS = ["sqeuclidean", "euclidean", "cosine", "ip", "mahalanobis"]
DTYPES = [np.float32, np.float64]


def _vi(rng, d):
    A = rng.standard_normal((d, d))
    return A @ A.T + 0.1 * np.eye(d)


def _expected(index, X, Q, k, metric, VI=None):
    """Reference neighbours. Mahalanobis: exact on the rows the index stores (mapped by L in
    float64 and rounded once to the dtype), so the comparison is bit-for-bit meaningful."""
    if metric == "mahalanobis":
        Xm = index._state[0].astype(np.float64)
        Qm = index._prepare_queries(Q).astype(np.float64)
        return reference.knn(Xm, Qm, k, "euclidean")
    return reference.knn(np.asarray(X, np.float64), np.asarray(Q, np.float64), k, metric)


def _check(index, X, Q, k, metric, VI=None, threads=None):
    D, ind = index.query(Q, k, threads=threads)
    want_d, want_i = _expected(index, X, Q, k, metric, VI)
    dtype = index.dtype
    assert D.dtype == dtype and ind.dtype == np.int64
    assert D.shape == ind.shape == (len(np.atleast_2d(Q)), k)
    np.testing.assert_array_equal(ind, want_i)
    # Distances are float64 values (summed in another order than numpy's) rounded to the dtype.
    Xr = index._state[0] if metric == "mahalanobis" else X
    Qr = index._prepare_queries(Q) if metric == "mahalanobis" else np.atleast_2d(Q)
    scale = reference.scale(Qr, Xr, "euclidean" if metric == "mahalanobis" else metric).max()
    atol = 4 * Xr.shape[1] * np.finfo(np.float64).eps * scale
    np.testing.assert_allclose(D, want_d.astype(dtype), rtol=2 * np.finfo(dtype).eps, atol=atol)
    if metric == "mahalanobis":  # and close to the true VI distance of the original rows
        full = reference.cdist(np.atleast_2d(Q), X, "mahalanobis", VI)
        got = np.take_along_axis(full, np.where(ind < 0, 0, ind), 1)
        scale = np.abs(full).max() + 1
        np.testing.assert_allclose(D, got, rtol=0, atol=50 * np.finfo(dtype).eps * scale)
    return D, ind


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    "n,m,d,k",
    [(300, 1, 7, 5), (300, 2, 33, 10), (257, 45, 17, 4), (120, 70, 64, 1), (40, 9, 5, 40)],
)
def test_random_matches_reference(rng, metric, dtype, n, m, d, k):
    X = rng.standard_normal((n, d)).astype(dtype)
    Q = rng.standard_normal((m, d)).astype(dtype)
    VI = _vi(rng, d) if metric == "mahalanobis" else None
    index = pysim.BruteForceIndex(X, metric, VI=VI)
    D1, I1 = _check(index, X, Q, k, metric, VI, threads=1)
    D2, I2 = index.query(Q, k, threads=2)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine", "ip"])
@pytest.mark.parametrize("m", [1, 2, 40])
def test_every_isa(isa, rng, metric, dtype, m):
    X = rng.standard_normal((700, 29)).astype(dtype)
    Q = rng.standard_normal((m, 29)).astype(dtype)
    _check(pysim.BruteForceIndex(X, metric), X, Q, 6, metric)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine", "ip"])
@pytest.mark.parametrize("m", [1, 3, 200])
def test_threads_equal_with_data_splits(rng, metric, dtype, m):
    # n >= 2 * 4096 lets the engines split the rows across threads (one heap set per split).
    X = rng.standard_normal((9000, 12)).astype(dtype)
    X[4000:4100] = X[:100]  # duplicates in different splits: ties by the smaller index
    Q = rng.standard_normal((m, 12)).astype(dtype)
    index = pysim.BruteForceIndex(X, metric)
    D1, I1 = _check(index, X, Q, 9, metric, threads=1)
    D2, I2 = index.query(Q, 9, threads=2)
    D3, I3 = index.query(Q, 9, threads=3)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(I1, I3)
    np.testing.assert_array_equal(D1, D2)


def _hard_cases(rng, dtype):
    base = rng.standard_normal((60, 6))
    yield "duplicates", np.repeat(base[:20], 3, axis=0), base[:7] + 0.01
    yield "identical", np.tile(base[:1], (50, 1)), base[:5]
    yield "zeros", np.zeros((30, 4)), np.vstack([np.zeros(4), base[:3, :4]])
    const = base.copy()
    const[:, [1, 4]] = 3.0
    yield "constant_columns", const, base[:8]
    yield "d1", rng.integers(0, 5, (80, 1)).astype(float), np.array([[2.0], [2.5], [-7.0]])
    yield "far_queries", base, base[:6] * 1e4 + 5e3
    # Rows far from the origin next to their spread: the norm expansion cannot separate the
    # neighbours in float32, so the index rescans with the direct kernels.
    yield "far_from_origin", base * 0.01 + 300.0, base[:9] * 0.01 + 300.0
    yield "integer_grid", rng.integers(-3, 4, (200, 3)).astype(float), rng.integers(-3, 4, (30, 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine", "ip"])
@pytest.mark.parametrize("case", [c for c, _, _ in _hard_cases(np.random.default_rng(0), None)])
def test_hard_data(rng, metric, dtype, case):
    X, Q = next((x, q) for c, x, q in _hard_cases(rng, dtype) if c == case)
    X, Q = X.astype(dtype), np.asarray(Q).astype(dtype)
    index = pysim.BruteForceIndex(X, metric)
    for k in (1, 4, len(X), len(X) + 3):
        for rows in (Q[:1], Q[:2], Q):  # both engines
            _check(index, X, rows, k, metric, threads=2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_when_k_exceeds_n(dtype):
    X = np.arange(12, dtype=dtype).reshape(4, 3)
    D, ind = pysim.BruteForceIndex(X).query(X[1], k=7)
    assert ind.shape == (1, 7)
    np.testing.assert_array_equal(ind[0, 4:], -1)
    assert np.isinf(D[0, 4:]).all() and np.isfinite(D[0, :4]).all()
    assert ind[0, 0] == 1 and D[0, 0] == 0


def test_empty_index_pads_and_add_fills():
    index = pysim.BruteForceIndex(np.empty((0, 3), np.float32))
    assert len(index) == 0 and index.dim == 3
    D, ind = index.query(np.ones((2, 3)), k=2)
    assert (ind == -1).all() and np.isinf(D).all()
    assert [len(x) for x in index.query_radius(np.ones((2, 3)), 5.0)] == [0, 0]
    index.add(np.eye(3))
    assert index.query(np.eye(3)[2], 1)[1][0, 0] == 2


def test_properties_dtype_and_no_copy(rng):
    X = rng.standard_normal((50, 4)).astype(np.float32)
    index = pysim.BruteForceIndex(X, "cosine")
    assert (len(index), index.dim, index.metric, index.dtype) == (50, 4, "cosine", np.float32)
    assert np.shares_memory(index._state[0], X)  # referenced, not copied
    assert pysim.BruteForceIndex(X.astype(np.float16)).dtype == np.float64
    assert pysim.BruteForceIndex(X.astype(np.int64)).dtype == np.float64
    strided = pysim.BruteForceIndex(np.asfortranarray(X), "cosine")  # copied once, same results
    assert not np.shares_memory(strided._state[0], X)
    np.testing.assert_array_equal(strided.query(X[:3], 2)[1], index.query(X[:3], 2)[1])
    assert "BruteForceIndex" in repr(index)
    # Queries are cast to the index dtype: float64 queries on a float32 index give float32.
    assert index.query(X[:2].astype(np.float64), 1)[0].dtype == np.float32
    # 1-D data is one row; 1-D queries are one query.
    one = pysim.BruteForceIndex(X[0])
    assert len(one) == 1 and one.query(X[0], 1)[1].shape == (1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_add_equals_building_at_once(rng, metric, dtype):
    d = 9
    parts = [rng.standard_normal((n, d)).astype(dtype) for n in (40, 1, 0, 75, 33)]
    VI = _vi(rng, d) if metric == "mahalanobis" else None
    index = pysim.BruteForceIndex(parts[0], metric, VI=VI)
    for p in parts[1:]:
        index.add(p)
    X = np.vstack(parts)
    whole = pysim.BruteForceIndex(X, metric, VI=VI)
    assert len(index) == len(X)
    Q = rng.standard_normal((11, d)).astype(dtype)
    D, ind = index.query(Q, 8)
    Dw, Iw = whole.query(Q, 8)
    np.testing.assert_array_equal(ind, Iw)
    np.testing.assert_array_equal(D, Dw)
    _check(index, X, Q, 8, metric, VI)


def test_add_does_not_touch_the_callers_array(rng):
    X = rng.standard_normal((10, 3))
    before = X.copy()
    index = pysim.BruteForceIndex(X)
    for _ in range(20):  # many small adds: amortised growth
        index.add(rng.standard_normal((3, 3)))
    np.testing.assert_array_equal(X, before)
    assert len(index) == 70


def test_failed_add_leaves_index_unchanged(rng, monkeypatch):
    X = rng.standard_normal((30, 5)).astype(np.float32)
    index = pysim.BruteForceIndex(X, "euclidean")
    Q = rng.standard_normal((4, 5)).astype(np.float32)
    want = index.query(Q, 3)
    bad = [
        (np.full((2, 5), np.nan), ValueError, "NaN"),
        (np.ones((2, 4)), ValueError, "columns"),
        (np.ones((2, 5, 1)), ValueError, "X"),
        (np.array([["a"] * 5]), TypeError, "X"),
        (np.full((1, 5), 1e30), ValueError, "too large"),
    ]
    for rows, exc, text in bad:
        with pytest.raises(exc, match=text):
            index.add(rows)
        assert len(index) == 30
    index.add(np.ones((2, 5)))  # grow once so the next add can reuse spare capacity
    want = index.query(Q, 3)

    def boom(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(_core, "brute_sqnorms_f32", boom)
    with pytest.raises(MemoryError):
        index.add(np.zeros((3, 5)))
    monkeypatch.undo()
    assert len(index) == 32
    got = index.query(Q, 3)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_errors_name_the_argument(rng):
    X = rng.standard_normal((20, 4))
    index = pysim.BruteForceIndex(X)
    with pytest.raises(ValueError, match="k"):
        index.query(X, k=0)
    with pytest.raises(TypeError, match="k"):
        index.query(X, k=1.5)
    with pytest.raises(ValueError, match="columns"):
        index.query(np.ones((2, 3)), k=1)
    with pytest.raises(ValueError, match="NaN"):
        index.query(np.full((1, 4), np.nan), k=1)
    with pytest.raises(ValueError, match="threads"):
        index.query(X, k=1, threads=0)
    with pytest.raises(ValueError, match="metric"):
        pysim.BruteForceIndex(X, "manhattan")
    with pytest.raises(ValueError, match="NaN"):
        pysim.BruteForceIndex(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="data"):
        pysim.BruteForceIndex(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="column"):
        pysim.BruteForceIndex(np.ones((3, 0)))
    with pytest.raises(TypeError, match="sparse"):
        import scipy.sparse

        pysim.BruteForceIndex(scipy.sparse.random(5, 5, format="csr"))
    with pytest.raises(ValueError, match="VI"):
        pysim.BruteForceIndex(X, "mahalanobis")
    with pytest.raises(ValueError, match="VI"):
        pysim.BruteForceIndex(X, "mahalanobis", VI=np.eye(3))
    with pytest.raises(ValueError, match="semi-definite"):
        pysim.BruteForceIndex(X, "mahalanobis", VI=-np.eye(4))
    with pytest.raises(ValueError, match="VI"):
        pysim.BruteForceIndex(X, "euclidean", VI=np.eye(4))
    with pytest.raises(ValueError, match="too large"):
        pysim.BruteForceIndex(np.full((2, 3), 1e30, np.float32))
    with pytest.raises(ValueError, match="too large"):
        pysim.BruteForceIndex(np.ones((2, 3), np.float32)).query(np.full(3, 1e30), 1)
    with pytest.raises(ValueError, match="r"):
        index.query_radius(X[:2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        index.query_radius(X[:2], np.nan)


# ---------------------------------------------------------------------------------------------
# radius search


def _radius_reference(X, Q, r, metric):
    D = reference.cdist(np.atleast_2d(Q), X, metric)
    r = np.broadcast_to(np.asarray(r, np.float64), (len(D),))
    return [np.flatnonzero(D[i] <= r[i]) for i in range(len(D))], D


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine", "ip"])
@pytest.mark.parametrize("m", [1, 2, 37])
def test_radius_matches_reference(rng, metric, dtype, m):
    X = rng.standard_normal((400, 6)).astype(dtype)
    X[200:220] = X[:20]
    Q = rng.standard_normal((m, 6)).astype(dtype)
    index = pysim.BruteForceIndex(X, metric)
    D = reference.cdist(Q, X, metric)
    # One radius per query, halfway between two distinct distances: float64 sums in another
    # order may differ in the last bit, so exact-boundary cases use integer data (below).
    S = np.sort(D, axis=1)
    S = [np.unique(row) for row in S]
    r = np.array([(row[len(row) // 10] + row[len(row) // 10 + 1]) / 2 for row in S])
    want, _ = _radius_reference(X.astype(np.float64), Q.astype(np.float64), r, metric)
    for threads in (1, 2):
        dist, ind = index.query_radius(Q, r, return_distance=True, threads=threads)
        assert ind.dtype == object and len(ind) == m
        for i in range(m):
            np.testing.assert_array_equal(ind[i], want[i])  # ascending row order
            assert ind[i].dtype == np.int64 and dist[i].dtype == dtype
            atol = 4 * X.shape[1] * np.finfo(np.float64).eps * reference.scale(Q, X, metric).max()
            np.testing.assert_allclose(
                dist[i], D[i, want[i]], rtol=2 * np.finfo(dtype).eps, atol=atol
            )
    sd, si = index.query_radius(Q, r, return_distance=True, sort_results=True)
    for i in range(m):
        order = np.lexsort((want[i], D[i, want[i]]))
        np.testing.assert_array_equal(si[i], want[i][order])
        assert (np.diff(sd[i]) >= 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
def test_radius_includes_points_exactly_on_it(rng, metric, dtype):
    # Integer points: distances are exact, many lie exactly on the radius.
    X = rng.integers(-4, 5, (500, 3)).astype(dtype)
    Q = rng.integers(-4, 5, (25, 3)).astype(dtype)
    r = 2.0 if metric == "euclidean" else 4.0
    want, _ = _radius_reference(X, Q, r, metric)
    assert sum(len(w) for w in want) > 0
    for q in (Q[:1], Q[:2], Q):
        got = pysim.BruteForceIndex(X, metric).query_radius(q, r)
        for i in range(len(q)):
            np.testing.assert_array_equal(got[i], want[i])


def test_radius_edge_values(rng):
    X = rng.standard_normal((50, 3))
    index = pysim.BruteForceIndex(X, "euclidean")
    with pytest.raises(ValueError, match="r must be >= 0"):  # the KD-tree's rule too
        index.query_radius(X[:3], -1.0)
    assert all(len(x) == 50 for x in index.query_radius(X[:3], np.inf))
    one = index.query_radius(X[0], 0.0)
    assert len(one) == 1 and one[0].tolist() == [0]


# ---------------------------------------------------------------------------------------------
# persistence


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_save_load_and_pickle_identical(tmp_path, rng, metric, dtype):
    X = rng.standard_normal((80, 5)).astype(dtype)
    VI = _vi(rng, 5) if metric == "mahalanobis" else None
    index = pysim.BruteForceIndex(X, metric, VI=VI)
    index.add(rng.standard_normal((7, 5)))
    Q = rng.standard_normal((6, 5))
    want = index.query(Q, 4)
    path = tmp_path / "index.pysim"
    index.save(path)
    for other in (pysim.BruteForceIndex.load(path), pickle.loads(pickle.dumps(index))):
        assert (len(other), other.dim, other.metric, other.dtype) == (87, 5, metric, index.dtype)
        got = other.query(Q, 4)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        other.add(np.ones((1, 5)))  # a loaded index (read-only file view) can still grow
        assert len(other) == 88


def test_corrupt_files_raise_value_error_naming_the_path(tmp_path, rng):
    index = pysim.BruteForceIndex(rng.standard_normal((40, 4)).astype(np.float32))
    path = tmp_path / "good.pysim"
    index.save(path)
    raw = path.read_bytes()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "flipped": bytearray(raw),
        "foreign": b"this is not an index at all" * 10,
        "empty": b"",
    }
    cases["flipped"][len(raw) // 2] ^= 0x10
    for name, blob in cases.items():
        bad = tmp_path / f"{name}.pysim"
        bad.write_bytes(bytes(blob))
        with pytest.raises(ValueError, match=name):
            pysim.BruteForceIndex.load(bad)
    with pytest.raises(ValueError, match="pickle"):
        blob = bytearray(pickle.dumps(index))
        blob[len(blob) // 2] ^= 0x10  # inside the payload: the pickle framing stays valid
        pickle.loads(bytes(blob))


def test_other_index_kind_is_refused(tmp_path):
    from pysim import _persist

    path = tmp_path / "kd.pysim"
    _persist.save(path, "kdtree", {"n": 1}, {"data": np.zeros((1, 2))})
    with pytest.raises(ValueError, match=os.path.basename(path)):
        pysim.BruteForceIndex.load(path)


@pytest.mark.parametrize("m", [1, 5, 70])
def test_large_k_matches_reference(rng, m):
    X = rng.standard_normal((9000, 6)).astype(np.float32)
    Q = rng.standard_normal((m, 6)).astype(np.float32)
    index = pysim.BruteForceIndex(X, "euclidean")
    D1, I1 = _check(index, X, Q, 700, "euclidean", threads=1)
    D2, I2 = index.query(Q, 700, threads=2)
    np.testing.assert_array_equal(I1, I2)


def test_queries_while_adding_from_other_threads(rng):
    # Queries release the GIL and keep the arrays they started with; add() publishes new
    # arrays atomically, so every query sees a consistent prefix of the rows.
    import threading

    X = rng.standard_normal((3000, 16)).astype(np.float32)
    Q = rng.standard_normal((50, 16)).astype(np.float32)
    index = pysim.BruteForceIndex(X[:1000])
    errors = []

    # Each concurrency test's reader checks its own index's contract: the same checks by shape
    # (duplicates pairs them with test_hnsw_quant's).
    def worker():
        try:
            for _ in range(20):
                D, ind = index.query(Q, 5, threads=2)
                assert (ind >= 0).all() and (ind < 3000).all()
                exact = ((Q[:, None, :].astype(np.float64) - X[ind].astype(np.float64)) ** 2).sum(
                    -1
                )
                np.testing.assert_allclose(D, exact, rtol=1e-6)
                assert (np.diff(D, axis=1) >= 0).all()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for s in range(1000, 3000, 100):
        index.add(X[s : s + 100])
    for t in threads:
        t.join()
    assert not errors, errors
    _check(index, X, Q, 5, "sqeuclidean")


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
def test_radius_far_from_origin_mixed_engines(rng, metric):
    # float32 rows around 300 with spread 0.01: the norm expansion cannot resolve radii of
    # that size, so those queries take the direct engine; the queries near the origin with
    # large radii keep the tile engine. Results must be exact either way, in query order.
    far = (rng.standard_normal((600, 5)) * 0.01 + 300.0).astype(np.float32)
    near = rng.standard_normal((600, 5)).astype(np.float32)
    X = np.vstack([far, near])
    Q = np.vstack([far[:4] + np.float32(0.003), near[:3], far[4:6]]).astype(np.float32)
    D = reference.cdist(Q, X, metric)
    S = [np.unique(row) for row in np.sort(D, axis=1)]
    # far queries: their 20 nearest; near queries: a wide radius (most of the near rows)
    rank = [20] * 4 + [500] * 3 + [20] * 2
    r = np.array([(row[t] + row[t + 1]) / 2 for row, t in zip(S, rank, strict=True)])
    got = pysim.BruteForceIndex(X, metric).query_radius(Q, r, threads=2)
    for i in range(len(Q)):
        np.testing.assert_array_equal(got[i], np.flatnonzero(D[i] <= r[i]))


def test_huge_k_pads_or_raises_memory_error(rng):
    X = rng.standard_normal((50, 3)).astype(np.float32)
    index = pysim.BruteForceIndex(X)
    D, ind = index.query(X[:2], k=100_000)  # work and scratch bounded by n, not k
    assert (ind[:, 50:] == -1).all() and np.isinf(D[:, 50:]).all()
    np.testing.assert_array_equal(np.sort(ind[:, :50], axis=1), np.tile(np.arange(50), (2, 1)))
    with pytest.raises(MemoryError):
        index.query(X, k=2**62)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
def test_mnist_equals_published_ground_truth(metric):
    # Real data with large norms (pixels 0..255, |x|^2 ~ 1e7) where the float32 norm
    # expansion alone would misorder near-ties; the ground truth breaks ties by the smaller
    # index and has no tie between ranks 100 and 101.
    from conftest import load_mnist

    base, queries, gt = load_mnist()
    index = pysim.BruteForceIndex(base, metric)
    for threads in (1, 2):
        D, ind = index.query(queries, 100, threads=threads)
        np.testing.assert_array_equal(ind, gt)
    _, ind = index.query(queries[:2], 10)  # one-to-many engine
    np.testing.assert_array_equal(ind, gt[:2, :10])


@st.composite
def _small_integer_problem(draw):
    n, d, m = draw(st.integers(1, 40)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    ints = st.integers(-3, 3).map(float)
    return draw(arrays(np.float64, (n, d), elements=ints)), draw(
        arrays(np.float64, (m, d), elements=ints)
    )


@settings(deadline=None, max_examples=60)
@given(
    data=_small_integer_problem(),
    k=st.integers(1, 45),
    metric=st.sampled_from(["sqeuclidean", "euclidean", "cosine", "ip"]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_property_small_integer_data_with_ties(data, k, metric, dtype):
    # Small integers: many exact ties, all distances exact in float64, so the tie rule
    # (smaller index first) is checked bit for bit.
    X, Q = (a.astype(dtype) for a in data)
    D, ind = pysim.BruteForceIndex(X, metric).query(Q, k, threads=2)
    want_d, want_i = reference.knn(X.astype(np.float64), Q.astype(np.float64), k, metric)
    np.testing.assert_array_equal(ind, want_i)
