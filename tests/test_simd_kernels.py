"""Every kernel shape x every ISA this CPU runs x dtype x metric x tail dimension, against a
float64 reference, with tolerances relative to the norms (the contract's accuracy)."""

from __future__ import annotations

import numpy as np
import pytest
import reference
from conftest import rel_tolerance

import pysim
from pysim import _core

DIMS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 257, 768]
METRICS = ["sqeuclidean", "euclidean", "cosine", "ip"]
DTYPES = [np.float32, np.float64]


def misaligned(rng, shape, dtype):
    """Contiguous but offset by one element from the allocator's alignment."""
    size = int(np.prod(shape))
    buf = np.empty(size + 1, dtype=dtype)[1:]
    out = buf.reshape(shape)
    out[...] = rng.standard_normal(shape)
    return out


def assert_close(got, want, scale, dtype):
    assert got.dtype == dtype
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want) / scale
    assert err.max(initial=0) <= rel_tolerance(dtype), f"max relative error {err.max():.3g}"


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_cdist_tiles_match_reference(isa, rng, metric, dtype, dim):
    # 19 x 37 rows: full register blocks plus ragged row and column tails on every ISA.
    A = misaligned(rng, (19, dim), dtype)
    B = misaligned(rng, (37, dim), dtype)
    got = pysim.cdist(A, B, metric)
    assert_close(got, reference.cdist(A, B, metric), reference.scale(A, B, metric), dtype)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_cdist_one_to_many_matches_reference(isa, rng, metric, dtype, dim):
    q = misaligned(rng, (dim,), dtype)
    B = misaligned(rng, (53, dim), dtype)
    got = pysim.cdist(q, B, metric)
    A = q[None]
    assert_close(got, reference.cdist(A, B, metric), reference.scale(A, B, metric), dtype)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_matches_reference(isa, rng, dtype, dim):
    A = misaligned(rng, (13, dim), dtype)
    B = misaligned(rng, (41, dim), dtype)
    for a in (A, A[:1]):
        got = pysim.dot(a, B)
        assert_close(got, reference.cdist(a, B, "dot"), reference.scale(a, B, "dot"), dtype)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_paired_matches_reference(isa, rng, metric, dtype, dim):
    A = misaligned(rng, (11, dim), dtype)
    B = misaligned(rng, (11, dim), dtype)
    got = pysim.paired_distances(A, B, metric)
    want = reference.paired(A, B, metric)
    scale = np.diag(reference.scale(A, B, metric))
    assert_close(got, want, scale, dtype)


@pytest.mark.parametrize("dim", [3, 16, 33, 128])
@pytest.mark.parametrize("dtype", DTYPES)
def test_mahalanobis_matches_reference(isa, rng, dtype, dim):
    A = rng.standard_normal((9, dim)).astype(dtype)
    B = rng.standard_normal((23, dim)).astype(dtype)
    M = rng.standard_normal((dim, dim))
    VI = M @ M.T / dim
    want = reference.cdist(A, B, "mahalanobis", VI)
    scale = reference.scale(A @ np.linalg.cholesky(VI), B @ np.linalg.cholesky(VI), "euclidean")
    assert_close(pysim.cdist(A, B, "mahalanobis", VI=VI), want, scale, dtype)
    assert_close(
        pysim.paired_distances(A, B[:9], "mahalanobis", VI=VI),
        reference.paired(A, B[:9], "mahalanobis", VI),
        np.diag(scale[:, :9]),
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
def test_self_distance_diagonal_is_zero_and_never_negative(isa, rng, metric, dtype):
    X = (rng.standard_normal((50, 96)) * 100 + 1000).astype(dtype)
    D = pysim.cdist(X, X, metric)
    assert (D >= 0).all()
    tol = rel_tolerance(dtype) * (reference.scale(X, X, metric).diagonal())
    assert (np.abs(np.diag(D)) <= tol).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_of_zero_vectors_is_one(isa, dtype):
    X = np.zeros((3, 20), dtype)
    Y = np.ones((4, 20), dtype)
    Y[0] = 0
    np.testing.assert_array_equal(pysim.cdist(X, Y, "cosine"), np.ones((3, 4), dtype))
    np.testing.assert_array_equal(pysim.cdist(X[:1], Y, "cosine"), np.ones((1, 4), dtype))
    np.testing.assert_array_equal(pysim.paired_distances(X, Y[:3], "cosine"), np.ones(3, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_input_is_copied_and_correct(isa, rng, dtype):
    A = rng.standard_normal((40, 66)).astype(dtype)[:, ::2]  # strided columns
    B = np.asfortranarray(rng.standard_normal((25, 33)).astype(dtype))
    for metric in METRICS:
        assert_close(
            pysim.cdist(A, B, metric),
            reference.cdist(A, B, metric),
            reference.scale(A, B, metric),
            dtype,
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_blocks_cross_packing_boundaries(isa, rng, dtype):
    # More rows than one task and more columns than one packed block of B.
    A = rng.standard_normal((300, 40)).astype(dtype)
    B = rng.standard_normal((2100, 40)).astype(dtype)
    got = pysim.cdist(A, B, "sqeuclidean", threads=2)
    assert_close(
        got, reference.cdist(A, B, "sqeuclidean"), reference.scale(A, B, "sqeuclidean"), dtype
    )


# ---------------------------------------------------------------- shifted exponential


def exp_reference(t):
    """exp of float64 arguments through long double (x87 80-bit / binary128), rounded to
    float64: a reference within half an ulp or so, as the kernel's contract assumes."""
    return np.exp(t.astype(np.longdouble)).astype(np.float64)


def ulp_error(got, want):
    """|got - want| in units of the last place of `want` (inf where got is not finite)."""
    err = np.abs(got - want) / np.spacing(np.abs(want))
    return np.where(np.isfinite(got), err, np.inf)


@pytest.mark.parametrize("cols", [*range(0, 34), 63, 64, 65, 257])
def test_shifted_exp_rows_matches_exp_within_two_ulp(isa, rng, cols):
    # Every tail length of every vector width; arguments over the kernel's whole range.
    E = rng.uniform(-700.0, 700.0, (5, cols))
    E[1] = rng.standard_normal(cols)  # the softmax range: near 0
    E[2] = -rng.exponential(30.0, cols)
    shifts = rng.uniform(-3.0, 3.0, 5)
    t = E - shifts[:, None]  # the same rounding as the kernel's subtraction
    got = _core.shifted_exp_rows(E, shifts)
    assert got.shape == E.shape and got.dtype == np.float64
    assert ulp_error(got, exp_reference(t)).max(initial=0) <= 2.0
    assert ulp_error(got, np.exp(t)).max(initial=0) <= 3.0  # numpy's own exp is within ~1 ulp


def test_shifted_exp_rows_edge_cases(isa):
    x = np.array(
        [-np.inf, -1e300, -746.0, -709.0, -708.5, -708.0, -707.9, -1e-300, 0.0, 5e-324, 1e-10,
         0.5 * np.log(2.0), 1.0, 700.0, 707.9, 708.0, 708.5, 1e300, np.inf, np.nan, -np.nan]
    )  # fmt: skip
    E = np.tile(x, (3, 1))
    got = _core.shifted_exp_rows(E, np.zeros(3))
    for row in got:
        want = exp_reference(np.clip(x, None, 708.0))
        want[x < -708.0] = 0.0  # below -708 (and -inf) flush to 0, not numpy's subnormals
        np.testing.assert_array_equal(np.isnan(row), np.isnan(x))  # NaN propagates
        ok = ~np.isnan(x)
        assert ulp_error(row[ok], want[ok]).max() <= 2.0
        assert (row[ok & (x < -708.0)] == 0.0).all()
        assert row[x == 0.0][0] == 1.0  # exp(0) is exactly 1 (the row maximum's weight)
        assert np.isfinite(row[ok]).all()  # arguments above 708 saturate at exp(708)


def test_shifted_exp_rows_shift_per_row_in_place_and_threads(isa, rng):
    E = rng.standard_normal((300, 517)) * 20.0
    shifts = E.max(axis=1)
    want = _core.shifted_exp_rows(E, shifts)
    assert (want.max(axis=1) == 1.0).all()  # each row's maximum maps to exactly 1
    threaded = _core.shifted_exp_rows(E, shifts, None, 2)  # 155k elements: the pool runs it
    np.testing.assert_array_equal(threaded, want)
    out = E.copy()
    assert _core.shifted_exp_rows(out, shifts, out) is out
    np.testing.assert_array_equal(out, want)


def test_shifted_exp_rows_bad_input(rng):
    E = rng.standard_normal((4, 6))
    with pytest.raises(ValueError, match="shifts"):
        _core.shifted_exp_rows(E, np.zeros(3))
    with pytest.raises(ValueError, match="E must be a 2-D"):
        _core.shifted_exp_rows(E[0], np.zeros(1))
    with pytest.raises(ValueError, match="out must have the shape"):
        _core.shifted_exp_rows(E, np.zeros(4), np.empty((4, 5)))
    with pytest.raises(TypeError, match="out must be a float64"):
        _core.shifted_exp_rows(E, np.zeros(4), np.empty((4, 6), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.shifted_exp_rows(E, np.zeros(4), np.empty((6, 4)).T)
    with pytest.raises(ValueError, match="threads"):
        _core.shifted_exp_rows(E, np.zeros(4), None, 0)
    with pytest.raises(TypeError):
        _core.shifted_exp_rows(E.astype(np.float32), np.zeros(4))  # no silent conversion
    with pytest.raises(TypeError):
        _core.shifted_exp_rows(np.asfortranarray(E), np.zeros(4))


def test_shifted_exp_slot_reports_the_active_level(isa):
    assert pysim.simd_info()["kernels"]["shifted_exp_f64"] == (
        "avx512" if isa.startswith("avx512") else isa
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 50, 64, 65, 129])
def test_gram_matches_reference(isa, rng, dtype, dim):
    """The Gram kernel on every level: Xᵀ X and the column sums against float64, for row
    counts that leave ragged blocks, a misaligned X, and any thread count giving the same bits
    (the row groups are fixed by the shape). Its blocks read past each row's end (into the
    next row, and a padded copy after the last one), so a tail of NaN after X must not leak."""
    for n in (1, 2, 13, 300, 2600):
        buf = np.full(n * dim + 64, np.nan, dtype=dtype)
        X = buf[1 : 1 + n * dim].reshape(n, dim)
        X[...] = rng.standard_normal((n, dim))
        G, colsum = getattr(_core, f"gram_{np.dtype(dtype).name.replace('float', 'f')}")(X, 1)
        X64 = X.astype(np.float64)
        want = X64.T @ X64
        scale = np.sqrt(np.outer(np.diagonal(want), np.diagonal(want))) + 1e-300
        assert G.dtype == dtype and G.shape == (dim, dim)
        np.testing.assert_array_equal(G, G.T)
        assert (np.abs(G - want) / scale).max() <= rel_tolerance(dtype) * max(1, n / 100)
        assert_close(colsum, X64.sum(axis=0), np.abs(X64).sum(axis=0) + 1e-300, dtype)
        G2, c2 = getattr(_core, f"gram_{np.dtype(dtype).name.replace('float', 'f')}")(X, 3)
        np.testing.assert_array_equal(G2, G)
        np.testing.assert_array_equal(c2, colsum)


def test_gram_bad_input(rng):
    with pytest.raises(ValueError, match="X must be a 2-D"):
        _core.gram_f64(np.ones(3))
    with pytest.raises(ValueError, match="threads"):
        _core.gram_f64(np.ones((3, 2)), 0)
    with pytest.raises(TypeError):
        _core.gram_f64(np.ones((3, 2), np.float32))  # no silent conversion
    with pytest.raises(TypeError):
        _core.gram_f64(np.asfortranarray(rng.standard_normal((3, 2))))
    G, c = _core.gram_f64(np.empty((0, 3)))
    np.testing.assert_array_equal(G, np.zeros((3, 3)))
    np.testing.assert_array_equal(c, np.zeros(3))


def test_gram_slot_reports_the_active_level(isa):
    level = "avx512" if isa.startswith("avx512") else isa
    assert pysim.simd_info()["kernels"]["gram_f64"] == level
    assert pysim.simd_info()["kernels"]["gram_f32"] == level
