"""KDTreeIndex against brute-force references.

Two references: `reference.knn` (float64, the contract's), and `same_arithmetic`, a brute
force in the index's own documented arithmetic (per-dimension squared differences rounded to
the dtype and summed in dimension order, ties by the smaller index). The tree must equal the
second *exactly* (indices and distance bits) on any data, and the first exactly on data whose
distances are integers (exact in both dtypes) or to within rounding otherwise.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import reference
import scipy.sparse
from hardening_tools import ticks_while
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import pysim
from pysim import _persist

DTYPES = [np.float32, np.float64]
METRICS = ["euclidean", "sqeuclidean"]


def squared_same_arithmetic(X: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """(m, n) squared distances summed in dimension order in X's dtype (the index's rule)."""
    X = np.asarray(X)
    Q = np.asarray(Q, X.dtype)
    S = np.zeros((len(Q), len(X)), X.dtype)
    for j in range(X.shape[1]):
        diff = X[None, :, j] - Q[:, None, j]
        S = S + diff * diff
    return S


def same_arithmetic(X, Q, k, metric):
    """Exact expected (distances, indices) of a KD-tree query: padded like the contract."""
    S = squared_same_arithmetic(X, Q)
    n = S.shape[1]
    order = np.lexsort((np.broadcast_to(np.arange(n), S.shape), S), axis=1)[:, :k]
    dist = np.take_along_axis(S, order, axis=1)
    if metric == "euclidean":
        dist = np.sqrt(dist)
    if k > n:
        dist = np.hstack([dist, np.full((len(S), k - n), np.inf, S.dtype)])
        order = np.hstack([order, np.full((len(S), k - n), -1)])
    return dist, order.astype(np.int64)


def assert_exact(index, X, Q, k):
    dist, ind = index.query(Q, k=k)
    want_d, want_i = same_arithmetic(X.astype(index.dtype), Q, k, index.metric)
    np.testing.assert_array_equal(ind, want_i)
    np.testing.assert_array_equal(dist, want_d)
    assert dist.dtype == index.dtype and ind.dtype == np.int64
    return dist, ind


def assert_matches_float64(dist, ind, X, Q, k, metric, dtype):
    """Distances within rounding of the float64 reference; indices equal wherever the
    reference's distances are separated by more than the rounding error."""
    want_d, want_i = reference.knn(X.astype(np.float64), Q.astype(np.float64), k, metric)
    scale = reference.scale(Q, X, metric).max()
    tol = (1e-5 if dtype == np.float32 else 1e-12) * scale
    np.testing.assert_allclose(dist, want_d, rtol=0, atol=tol)
    full = reference.cdist(Q, X, metric)
    for row in range(len(Q)):
        for col in range(min(k, X.shape[0])):
            d = want_d[row, col]
            close = np.abs(full[row] - d) <= 2 * tol
            if close.sum() == 1:  # no other point within rounding: the neighbour is determined
                assert ind[row, col] == want_i[row, col]


# ----------------------------------------------------------------------------- k-NN


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dim", [1, 2, 3, 4, 7, 8, 9, 16, 17, 33])
def test_knn_random_data(rng, dtype, metric, dim):
    X = rng.standard_normal((600, dim)).astype(dtype)
    Q = rng.standard_normal((80, dim)).astype(dtype)
    index = pysim.KDTreeIndex(X, metric, leaf_size=8)
    dist, ind = assert_exact(index, X, Q, 7)
    assert_matches_float64(dist, ind, X, Q, 7, metric, dtype)


@pytest.mark.parametrize("k", [1, 2, 31, 32, 33, 64, 100])
def test_knn_small_and_large_k(rng, k):
    # k <= 32 and k > 32 use different result sets (sorted array, heap).
    X = rng.standard_normal((700, 3)).astype(np.float32)
    Q = rng.standard_normal((50, 3)).astype(np.float32)
    for leaf_size in (4, 64):
        assert_exact(pysim.KDTreeIndex(X, leaf_size=leaf_size), X, Q, k)
    Xi = rng.integers(0, 4, (300, 2)).astype(np.float64)  # heavy ties, exact arithmetic
    dist, ind = pysim.KDTreeIndex(Xi, leaf_size=4).query(Xi[:20], k=k)
    want_d, want_i = reference.knn(Xi, Xi[:20], k, "euclidean")
    np.testing.assert_array_equal(ind, want_i)
    np.testing.assert_array_equal(dist, want_d)


@pytest.mark.parametrize("leaf_size", [1, 2, 3, 5, 16, 40, 1000])
@pytest.mark.parametrize("n", [1, 2, 3, 15, 16, 17, 100, 257])
def test_knn_tree_shapes(rng, leaf_size, n):
    X = rng.random((n, 3))
    Q = rng.random((30, 3))
    index = pysim.KDTreeIndex(X, leaf_size=leaf_size)
    assert len(index) == n
    assert index._tree.max_leaf <= max(leaf_size, 2)
    assert_exact(index, X, Q, min(n, 5))


def test_knn_every_isa_is_bit_identical(isa, rng):
    for dtype in DTYPES:
        for dim in (1, 3, 5, 8, 16, 17, 31, 40):
            X = rng.standard_normal((400, dim)).astype(dtype)
            Q = rng.standard_normal((40, dim)).astype(dtype)
            index = pysim.KDTreeIndex(X, "sqeuclidean", leaf_size=37)  # odd leaves: tails
            assert_exact(index, X, Q, 6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_duplicates_and_ties_follow_the_smaller_index(rng, dtype, metric):
    # Small integers: every distance is exact in both dtypes, and ties are everywhere.
    X = rng.integers(0, 3, (500, 3)).astype(dtype)
    Q = rng.integers(-1, 4, (60, 3)).astype(dtype)
    index = pysim.KDTreeIndex(X, metric, leaf_size=4)
    dist, ind = index.query(Q, k=25)
    want_d, want_i = reference.knn(X, Q, 25, metric)
    np.testing.assert_array_equal(ind, want_i)
    np.testing.assert_array_equal(dist, want_d.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_points_identical(dtype):
    X = np.full((100, 4), 2.5, dtype)
    index = pysim.KDTreeIndex(X, leaf_size=3)
    dist, ind = index.query(np.zeros((2, 4)), k=10)
    np.testing.assert_array_equal(ind, np.tile(np.arange(10), (2, 1)))
    np.testing.assert_array_equal(dist, np.full((2, 10), 5.0, dtype))
    dist, ind = index.query(X[:1], k=100)
    np.testing.assert_array_equal(ind[0], np.arange(100))
    assert (dist == 0).all()


def test_constant_columns(rng):
    X = np.zeros((300, 5))
    X[:, 1] = rng.random(300)
    X[:, 3] = 7.0
    X[:, 4] = rng.integers(0, 4, 300)
    Q = rng.random((40, 5)) * 8
    index = pysim.KDTreeIndex(X, leaf_size=5)
    dist, ind = assert_exact(index, X, Q, 9)
    assert_matches_float64(dist, ind, X, Q, 9, "euclidean", np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_dimension(rng, dtype):
    X = rng.standard_normal((1000, 1)).astype(dtype)
    Q = np.linspace(-4, 4, 50).reshape(-1, 1).astype(dtype)
    index = pysim.KDTreeIndex(X)
    assert_exact(index, X, Q, 11)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fewer_points_than_leaf_size_and_k_equal_n(rng, dtype):
    X = rng.standard_normal((7, 3)).astype(dtype)
    Q = rng.standard_normal((5, 3)).astype(dtype)
    index = pysim.KDTreeIndex(X, leaf_size=16)
    dist, ind = assert_exact(index, X, Q, 7)
    assert sorted(ind[0].tolist()) == list(range(7))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_k_larger_than_n_pads(rng, dtype, metric):
    X = rng.standard_normal((20, 3)).astype(dtype)
    Q = rng.standard_normal((4, 3)).astype(dtype)
    index = pysim.KDTreeIndex(X, metric, leaf_size=4)
    dist, ind = assert_exact(index, X, Q, 25)
    assert (ind[:, 20:] == -1).all() and np.isinf(dist[:, 20:]).all()
    assert np.isfinite(dist[:, :20]).all() and (ind[:, :20] >= 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_far_away_queries(rng, dtype):
    X = rng.random((2000, 3)).astype(dtype)
    Q = np.array([[1e4, 1e4, 1e4], [-1e4, 0.5, 0.5], [0.5, 0.5, 3e3], [-50, -50, -50]], dtype)
    index = pysim.KDTreeIndex(X)
    dist, ind = assert_exact(index, X, Q, 10)
    assert_matches_float64(dist, ind, X, Q, 10, "euclidean", dtype)


def test_large_k(rng):
    X = rng.random((3000, 2))
    Q = rng.random((5, 2))
    index = pysim.KDTreeIndex(X)
    assert_exact(index, X, Q, 3000)
    dist, ind = index.query(Q, k=3005)
    assert (ind[:, 3000:] == -1).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_64_bit_id_path(rng, dtype):
    # Trees over 2^32 points store 64-bit ids; the core can be asked to do so for any n.
    X = rng.standard_normal((3000, 3)).astype(dtype)
    Q = rng.standard_normal((200, 3)).astype(dtype)
    index = pysim.KDTreeIndex(X, leaf_size=8)
    core = type(index._tree)(X, 8, 2, _wide_ids=True)
    assert core._wide_ids and not index._tree._wide_ids
    wide = pysim.KDTreeIndex.__new__(pysim.KDTreeIndex)
    wide._tree, wide._metric, wide._dtype = core, index.metric, index.dtype
    wide._scale_exp = 0
    _same_results(index, wide, X, Q)
    assert_exact(wide, X, Q, 40)
    _same_results(index, pickle.loads(pickle.dumps(wide)), X, Q)


def test_query_points_find_themselves(rng):
    X = rng.standard_normal((5000, 4)).astype(np.float32)
    index = pysim.KDTreeIndex(X)
    dist, ind = index.query(X, k=1)
    np.testing.assert_array_equal(ind[:, 0], np.arange(5000))
    assert (dist == 0).all()


# ------------------------------------------------------------------------- radius


def radius_reference(X, Q, r, metric):
    S = squared_same_arithmetic(X, Q)
    D = np.sqrt(S) if metric == "euclidean" else S
    r = np.broadcast_to(np.asarray(r, np.float64), (len(Q),))
    return D, [np.flatnonzero(D[i].astype(np.float64) <= r[i]) for i in range(len(Q))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dim", [1, 3, 8])
def test_radius_random(rng, dtype, metric, dim):
    X = rng.standard_normal((800, dim)).astype(dtype)
    Q = rng.standard_normal((40, dim)).astype(dtype)
    index = pysim.KDTreeIndex(X, metric, leaf_size=6)
    r = 0.9 if metric == "euclidean" else 0.81
    D, want = radius_reference(X, Q, r, metric)
    ind = index.query_radius(Q, r)
    assert ind.dtype == object and ind.shape == (len(Q),)
    for i in range(len(Q)):
        assert ind[i].dtype == np.int64
        np.testing.assert_array_equal(np.sort(ind[i]), want[i])
    dist, ind2 = index.query_radius(Q, r, return_distance=True)
    for i in range(len(Q)):
        np.testing.assert_array_equal(ind2[i], ind[i])  # same (tree) order
        assert dist[i].dtype == dtype
        np.testing.assert_array_equal(dist[i], D[i, ind[i]])
    dist, ind3 = index.query_radius(Q, r, return_distance=True, sort_results=True)
    for i in range(len(Q)):
        order = np.lexsort((want[i], D[i, want[i]]))
        np.testing.assert_array_equal(ind3[i], want[i][order])
        np.testing.assert_array_equal(dist[i], D[i, want[i][order]])
    # sort_results without distances: the same order.
    ind4 = index.query_radius(Q, r, sort_results=True)
    for i in range(len(Q)):
        np.testing.assert_array_equal(ind4[i], ind3[i])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_radius_points_exactly_on_the_radius(dtype, metric):
    # A 3-4-5 grid: many points at distance exactly 5 (squared 25) from the origin.
    g = np.arange(-6, 7)
    X = np.array(np.meshgrid(g, g, indexing="ij")).reshape(2, -1).T.astype(dtype)
    Q = np.zeros((1, 2), dtype)
    r = 5.0 if metric == "euclidean" else 25.0
    index = pysim.KDTreeIndex(X, metric, leaf_size=3)
    dist, ind = index.query_radius(Q, r, return_distance=True, sort_results=True)
    d2 = (X.astype(np.float64) ** 2).sum(1)
    want = np.flatnonzero(d2 <= 25)
    np.testing.assert_array_equal(np.sort(ind[0]), want)
    assert (d2[ind[0]] == 25).sum() == 12  # (±3, ±4), (±4, ±3), (±5, 0), (0, ±5)
    assert dist[0].max() == r
    # Just below the radius the 12 boundary points drop out.
    below = np.nextafter(r, 0)
    assert len(index.query_radius(Q, below)[0]) == len(want) - 12


def test_radius_float32_rounding_of_r_is_exact(rng):
    # r given in float64 between two float32 values: the comparison is with the exact r.
    X = np.array([[0.1]], np.float32)
    d32 = float(np.float32(0.1))  # the stored distance of X from 0
    index = pysim.KDTreeIndex(X)
    assert len(index.query_radius(np.zeros((1, 1)), d32)[0]) == 1
    assert len(index.query_radius(np.zeros((1, 1)), np.nextafter(d32, 0))[0]) == 0


def test_radius_per_query_and_extremes(rng):
    X = rng.random((500, 3))
    Q = rng.random((6, 3))
    r = np.array([0.0, 0.05, 0.2, 0.5, 10.0, np.inf])
    index = pysim.KDTreeIndex(X)
    D, want = radius_reference(X, Q, r, "euclidean")
    got = index.query_radius(Q, r)
    for i in range(len(Q)):
        np.testing.assert_array_equal(np.sort(got[i]), want[i])
    assert len(got[0]) == 0 and len(got[4]) == len(got[5]) == 500
    dup = index.query_radius(X[:3], 0.0)
    for i in range(3):
        assert dup[i].tolist() == [i]


def test_radius_duplicates(rng):
    X = np.repeat(rng.random((20, 2)), 5, axis=0)
    index = pysim.KDTreeIndex(X, leaf_size=2)
    dist, ind = index.query_radius(X[::5], 0.0, return_distance=True, sort_results=True)
    for i in range(20):
        np.testing.assert_array_equal(ind[i], np.arange(5 * i, 5 * i + 5))
        assert (dist[i] == 0).all()


def test_radius_empty_queries():
    index = pysim.KDTreeIndex(np.eye(3))
    ind = index.query_radius(np.empty((0, 3)), 1.0)
    assert ind.shape == (0,) and ind.dtype == object
    dist, ind = index.query_radius(np.empty((0, 3)), 1.0, return_distance=True)
    assert dist.shape == (0,)


# ------------------------------------------------------------------ threads and GIL


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_give_identical_results(rng, dtype):
    X = rng.standard_normal((20000, 4)).astype(dtype)
    Q = rng.standard_normal((3000, 4)).astype(dtype)
    one = pysim.KDTreeIndex(X, threads=1)
    two = pysim.KDTreeIndex(X, threads=2)
    three = pysim.KDTreeIndex(X, threads=3)
    for name, a in one._tree.state().items():
        np.testing.assert_array_equal(a, two._tree.state()[name])
        np.testing.assert_array_equal(a, three._tree.state()[name])
    d1, i1 = one.query(Q, k=10, threads=1)
    for t in (2, 3, None):
        d2, i2 = one.query(Q, k=10, threads=t)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(d1, d2)
    r1 = one.query_radius(Q, 0.3, return_distance=True, threads=1)
    r2 = one.query_radius(Q, 0.3, return_distance=True, threads=2)
    for a, b in zip(r1[1], r2[1], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(r1[0], r2[0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_gil_is_released_during_query(rng):
    X = rng.random((200000, 3)).astype(np.float32)
    Q = rng.random((100000, 3)).astype(np.float32)
    index = pysim.KDTreeIndex(X)
    inside, _ = ticks_while(lambda: [index.query(Q, k=10, threads=1) for _ in range(3)])
    assert len(inside) >= 5  # with the GIL held the ticker could not run at all


# ---------------------------------------------------------------- dtype and shapes


def test_dtype_policy(rng):
    X32 = rng.random((50, 3)).astype(np.float32)
    i32 = pysim.KDTreeIndex(X32)
    assert i32.dtype == np.float32
    dist, ind = i32.query(X32[:3].astype(np.float64), k=2)  # queries cast to float32
    assert dist.dtype == np.float32 and ind.dtype == np.int64
    ints = np.arange(30).reshape(10, 3)
    i64 = pysim.KDTreeIndex(ints)
    assert i64.dtype == np.float64
    dist, ind = i64.query(ints[:2], k=1)
    assert dist.dtype == np.float64 and (dist == 0).all()
    fortran = np.asfortranarray(rng.random((40, 3)))
    assert_exact(pysim.KDTreeIndex(fortran), np.ascontiguousarray(fortran), fortran[:5], 3)


def test_one_dimensional_input_is_one_row(rng):
    index = pysim.KDTreeIndex(np.array([1.0, 2.0, 3.0]))
    assert len(index) == 1 and index.dim == 3
    X = rng.random((30, 3))
    index = pysim.KDTreeIndex(X)
    dist, ind = index.query(X[4], k=2)
    assert dist.shape == (1, 2) and ind[0, 0] == 4
    assert index.query_radius(X[4], 0.0)[0].tolist() == [4]


def test_properties_and_repr(rng):
    index = pysim.KDTreeIndex(rng.random((100, 6)), "sqeuclidean", leaf_size=9)
    assert (len(index), index.dim, index.metric, index.leaf_size) == (100, 6, "sqeuclidean", 9)
    assert "KDTreeIndex" in repr(index) and "sqeuclidean" in repr(index)
    assert pysim.KDTreeIndex(np.ones((3, 2))).metric == "euclidean"


def test_empty_query_batch():
    index = pysim.KDTreeIndex(np.eye(4))
    dist, ind = index.query(np.empty((0, 4)), k=3)
    assert dist.shape == ind.shape == (0, 3)


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("data", "kwargs", "exc", "match"),
    [
        (np.ones((5, 2)), {"metric": "cosine"}, ValueError, "metric"),
        (np.ones((5, 2)), {"metric": "l1"}, ValueError, "metric"),
        (np.ones((5, 2)), {"leaf_size": 0}, ValueError, "leaf_size"),
        (np.ones((5, 2)), {"leaf_size": 2.5}, TypeError, "leaf_size"),
        (np.ones((5, 2)), {"leaf_size": True}, TypeError, "leaf_size"),
        (np.ones((5, 2)), {"threads": 0}, ValueError, "threads"),
        (np.empty((0, 3)), {}, ValueError, "at least one row"),
        (np.empty((3, 0)), {}, ValueError, "column"),
        (np.ones((2, 2, 2)), {}, ValueError, "data"),
        (np.array([[1.0, np.nan]]), {}, ValueError, "NaN"),
        (np.array([[1.0, np.inf]]), {}, ValueError, "NaN or inf"),
        (np.array([["a", "b"]]), {}, TypeError, "data"),
        (scipy.sparse.csr_matrix(np.eye(3)), {}, TypeError, "sparse"),
    ],
)
def test_constructor_errors(data, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pysim.KDTreeIndex(data, **kwargs)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda ix: ix.query(np.ones((2, 4))), ValueError, "3 columns"),
        (lambda ix: ix.query(np.ones((2, 3)), k=0), ValueError, "k"),
        (lambda ix: ix.query(np.ones((2, 3)), k=-2), ValueError, "k"),
        (lambda ix: ix.query(np.ones((2, 3)), k=1.5), TypeError, "k"),
        (lambda ix: ix.query(np.array([[np.nan, 0, 0]])), ValueError, "NaN"),
        (lambda ix: ix.query(np.ones((2, 3)), threads=-1), ValueError, "threads"),
        (lambda ix: ix.query(scipy.sparse.csr_matrix(np.ones((2, 3)))), TypeError, "sparse"),
        (lambda ix: ix.query_radius(np.ones((2, 3)), -1.0), ValueError, "r must be >= 0"),
        (lambda ix: ix.query_radius(np.ones((2, 3)), np.nan), ValueError, "NaN"),
        (lambda ix: ix.query_radius(np.ones((2, 3)), [1.0, 2.0, 3.0]), ValueError, "r must"),
        (lambda ix: ix.query_radius(np.ones((2, 3)), "x"), TypeError, "r"),
        (lambda ix: ix.query_radius(np.ones((2, 4)), 1.0), ValueError, "columns"),
        (lambda ix: ix.query_radius(np.ones((2, 3)), 1.0, return_distance=1), TypeError, "return"),
        (lambda ix: ix.query_radius(np.ones((2, 3)), 1.0, sort_results="y"), TypeError, "sort"),
    ],
)
def test_query_errors_leave_index_unchanged(rng, call, exc, match):
    X = rng.random((50, 3))
    index = pysim.KDTreeIndex(X)
    before = index.query(X[:5], k=3)
    with pytest.raises(exc, match=match):
        call(index)
    after = index.query(X[:5], k=3)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


def test_output_too_large_is_memory_error():
    index = pysim.KDTreeIndex(np.eye(3))
    with pytest.raises(MemoryError):
        index.query(np.zeros((4, 3)), k=2**61)


# -------------------------------------------------------------------- persistence


def _same_results(a, b, X, Q):
    for k in (1, 7):
        da, ia = a.query(Q, k=k)
        db, ib = b.query(Q, k=k)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(da, db)
    ra = a.query_radius(Q, 0.4, return_distance=True)
    rb = b.query_radius(Q, 0.4, return_distance=True)
    for x, y in zip(ra[0], rb[0], strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(ra[1], rb[1], strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_save_load_and_pickle_round_trip(rng, tmp_path, dtype, metric):
    X = rng.standard_normal((3000, 5)).astype(dtype)
    Q = rng.standard_normal((100, 5)).astype(dtype)
    index = pysim.KDTreeIndex(X, metric, leaf_size=11)
    path = tmp_path / "tree.pysim"
    index.save(path)
    loaded = pysim.KDTreeIndex.load(path)
    unpickled = pickle.loads(pickle.dumps(index))
    for other in (loaded, unpickled):
        assert (len(other), other.dim, other.metric, other.leaf_size, other.dtype) == (
            len(index),
            index.dim,
            index.metric,
            index.leaf_size,
            index.dtype,
        )
        _same_results(index, other, X, Q)
    small = pysim.KDTreeIndex(X[:3])
    _same_results(small, pickle.loads(pickle.dumps(small)), X[:3], Q)


def test_load_rejects_truncated_flipped_and_foreign_files(rng, tmp_path):
    index = pysim.KDTreeIndex(rng.random((500, 3)))
    path = tmp_path / "tree.pysim"
    index.save(path)
    blob = path.read_bytes()
    cases = {
        "truncated": blob[: len(blob) // 2],
        "header_only": blob[:20],
        "empty": b"",
        "flipped": bytearray(blob),
        "foreign": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "text": b"hello world" * 10,
    }
    cases["flipped"][len(blob) // 2] ^= 0x10
    for name, data in cases.items():
        bad = tmp_path / f"{name}.pysim"
        bad.write_bytes(bytes(data))
        with pytest.raises(ValueError, match=str(bad.name)):
            pysim.KDTreeIndex.load(bad)
    other_kind = tmp_path / "other.pysim"
    _persist.save(other_kind, "hnsw", {}, {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="other.pysim"):
        pysim.KDTreeIndex.load(other_kind)


def test_load_rejects_consistent_but_invalid_state(rng, tmp_path):
    # A file with a valid checksum whose arrays contradict each other must be refused too.
    index = pysim.KDTreeIndex(rng.random((200, 3)), leaf_size=4)
    meta, arrays = index._get_state()
    arrays = {k: np.array(v) for k, v in arrays.items()}
    broken = [
        ({**meta, "n": 199}, arrays),
        ({**meta, "layout": 99}, arrays),
        ({**meta, "dtype": "int8"}, arrays),
        ({**meta, "metric": "cosine"}, arrays),
        ({**meta, "leaf_size": 100}, arrays),
        (meta, {**arrays, "ids": np.zeros(200, np.int64)}),
        (meta, {**arrays, "split_dims": np.full_like(arrays["split_dims"], 7)}),
        (meta, {**arrays, "points": arrays["points"][:-1]}),
        (meta, {k: v for k, v in arrays.items() if k != "bbox"}),
        (meta, {**arrays, "ids": arrays["ids"].astype(np.int32)}),
    ]
    for i, (m, a) in enumerate(broken):
        path = tmp_path / f"bad{i}.pysim"
        _persist.save(path, "kdtree", m, a)
        with pytest.raises(ValueError, match=f"bad{i}.pysim"):
            pysim.KDTreeIndex.load(path)


def test_corrupt_pickle_is_value_error(rng):
    blob = bytearray(pickle.dumps(pysim.KDTreeIndex(rng.random((100, 2)))))
    blob[len(blob) // 2] ^= 0x01
    with pytest.raises(ValueError, match="corrupt"):
        pickle.loads(bytes(blob))


# ------------------------------------------------------------------------ property


@settings(deadline=None, max_examples=60)
@given(
    X=arrays(
        np.float64,
        st.tuples(st.integers(1, 60), st.integers(1, 5)),
        elements=st.sampled_from([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0, 16.0]),
    ),
    leaf_size=st.integers(1, 8),
    k=st.integers(1, 8),
    use_f32=st.booleans(),
)
def test_property_distances_equal_brute_force(X, leaf_size, k, use_f32):
    if use_f32:
        X = X.astype(np.float32)
    Q = np.vstack([X[:3], X[:3] + 0.125])
    index = pysim.KDTreeIndex(X, leaf_size=leaf_size)
    dist, ind = index.query(Q, k=k)
    want_d, want_i = reference.knn(X, Q, k, "euclidean")
    rtol = 1e-6 if use_f32 else 1e-12
    np.testing.assert_allclose(dist, want_d, rtol=rtol, atol=0)
    # Coordinates on a coarse dyadic grid: squared distances are exact in both dtypes, so the
    # ranking, ties included, is the float64 reference's.
    np.testing.assert_array_equal(ind, want_i)
    r = float(np.sort(dist[:, min(k, len(X)) - 1])[0])  # a radius hit exactly by some points
    got = index.query_radius(Q, r)
    _, want = radius_reference(X, Q, r, "euclidean")
    for i in range(len(Q)):
        np.testing.assert_array_equal(np.sort(got[i]), want[i])
