"""The contract of cdist / dot / paired_distances: dtype policy, shapes, `out`, threads, the
GIL, and the errors bad input gets."""

from __future__ import annotations

import numpy as np
import pytest
import reference
import scipy.sparse
from hardening_tools import ticks_while

import pysim


def test_dtype_policy(rng):
    a32 = rng.standard_normal((4, 8)).astype(np.float32)
    a64 = a32.astype(np.float64)
    assert pysim.cdist(a32, a32).dtype == np.float32
    assert pysim.cdist(a64, a64).dtype == np.float64
    assert pysim.cdist(a32, a64).dtype == np.float64
    ints = np.arange(12).reshape(3, 4)
    got = pysim.cdist(ints, ints, "sqeuclidean")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, reference.cdist(ints, ints, "sqeuclidean"))
    assert pysim.dot(a32, a32).dtype == np.float32
    assert pysim.paired_distances(a32, a32).dtype == np.float32


def test_one_dimensional_input_is_one_row(rng):
    a = rng.standard_normal(10)
    B = rng.standard_normal((5, 10))
    assert pysim.cdist(a, B).shape == (1, 5)
    assert pysim.cdist(B, a).shape == (5, 1)
    assert pysim.paired_distances(a, a).shape == (1,)


def test_empty_inputs(rng):
    B = rng.standard_normal((5, 3))
    assert pysim.cdist(np.empty((0, 3)), B).shape == (0, 5)
    assert pysim.cdist(B, np.empty((0, 3))).shape == (5, 0)
    assert pysim.dot(np.empty((0, 3)), B).shape == (0, 5)
    assert pysim.paired_distances(np.empty((0, 3)), np.empty((0, 3))).shape == (0,)


def test_out_is_filled_and_returned(rng):
    A = rng.standard_normal((6, 9)).astype(np.float32)
    B = rng.standard_normal((7, 9)).astype(np.float32)
    out = np.empty((6, 7), np.float32)
    res = pysim.cdist(A, B, "euclidean", out=out)
    assert res is out or np.shares_memory(res, out)
    np.testing.assert_allclose(out, reference.cdist(A, B, "euclidean"), rtol=1e-5, atol=1e-5)
    out2 = np.empty((6, 7), np.float32)
    pysim.dot(A, B, out=out2)
    np.testing.assert_allclose(out2, A.astype(float) @ B.T.astype(float), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        np.empty((6, 8), np.float32),  # shape
        np.empty((6, 7), np.float64),  # dtype
        np.empty((7, 6), np.float32).T,  # not C-contiguous
    ],
)
def test_wrong_out_raises(rng, bad):
    A = rng.standard_normal((6, 9)).astype(np.float32)
    B = rng.standard_normal((7, 9)).astype(np.float32)
    with pytest.raises(ValueError, match="out"):
        pysim.cdist(A, B, out=bad)


def test_wrong_out_type_raises(rng):
    with pytest.raises(TypeError, match="out"):
        pysim.cdist(np.ones((2, 2)), np.ones((2, 2)), out=[[0, 0], [0, 0]])


@pytest.mark.parametrize(
    ("XA", "XB", "kwargs", "exc", "match"),
    [
        (np.ones((2, 2, 2)), np.ones((2, 2)), {}, ValueError, "XA"),
        (np.ones((2, 3)), np.ones((2, 4)), {}, ValueError, "columns"),
        (np.ones((2, 3)), np.ones((2, 3)), {"metric": "hamming"}, ValueError, "metric"),
        (np.ones((2, 3)), np.ones((2, 3)), {"metric": 3}, ValueError, "metric"),
        (np.ones((2, 0)), np.ones((2, 0)), {}, ValueError, "column"),
        (np.array([["a", "b"]]), np.ones((1, 2)), {}, TypeError, "XA"),
        (np.ones((2, 3)), np.ones((2, 3)), {"threads": 0}, ValueError, "threads"),
        (np.ones((2, 3)), np.ones((2, 3)), {"metric": "mahalanobis"}, ValueError, "VI"),
        (
            np.ones((2, 3)),
            np.ones((2, 3)),
            {"metric": "mahalanobis", "VI": np.eye(4)},
            ValueError,
            "VI",
        ),
        (
            np.ones((2, 3)),
            np.ones((2, 3)),
            {"metric": "mahalanobis", "VI": -np.eye(3)},
            ValueError,
            "semi-definite",
        ),
        (
            np.ones((2, 3)),
            np.ones((2, 3)),
            {"metric": "mahalanobis", "VI": np.triu(np.ones((3, 3)))},
            ValueError,
            "symmetric",
        ),
        (
            np.ones((2, 3)),
            np.ones((2, 3)),
            {"metric": "euclidean", "VI": np.eye(3)},
            ValueError,
            "VI",
        ),
    ],
)
def test_bad_input_errors(XA, XB, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pysim.cdist(XA, XB, **kwargs)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(1, 2000), (50, 40)])
def test_non_finite_input_is_named(value, shape):
    # (1, 2000): the output is smaller than the input, so the kernel pass is the check;
    # (50, 40): the inputs are scanned first.
    m, n = shape
    A = np.ones((m, 8))
    B = np.ones((n, 8))
    B[n // 2, 3] = value
    with pytest.raises(ValueError, match="XB.*NaN"):
        pysim.cdist(A, B)
    with pytest.raises(ValueError, match="XB.*NaN"):
        pysim.dot(A, B)
    A2 = A.copy()
    A2[0, 0] = value
    with pytest.raises(ValueError, match="XA.*NaN"):
        pysim.cdist(A2, np.ones((n, 8)), "cosine")
    with pytest.raises(ValueError, match="XA.*NaN"):
        pysim.paired_distances(A2, np.ones((m, 8)))


def test_overflow_to_inf_is_not_reported_as_bad_input():
    A = np.full((1, 4), 3e38, np.float32)
    B = np.full((100, 4), -3e38, np.float32)
    D = pysim.cdist(A, B)
    assert np.isinf(D).all()


def test_sparse_input_is_refused():
    with pytest.raises(TypeError, match="sparse"):
        pysim.cdist(scipy.sparse.csr_matrix(np.eye(3)), np.eye(3))


def test_paired_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        pysim.paired_distances(np.ones((3, 2)), np.ones((4, 2)))


def test_threads_one_equals_threads_two(rng):
    A = rng.standard_normal((333, 70)).astype(np.float32)
    B = rng.standard_normal((1500, 70)).astype(np.float32)
    for metric in ("sqeuclidean", "euclidean", "cosine", "ip"):
        np.testing.assert_array_equal(
            pysim.cdist(A, B, metric, threads=1), pysim.cdist(A, B, metric, threads=2)
        )
        np.testing.assert_array_equal(
            pysim.cdist(A[:1], B, metric, threads=1), pysim.cdist(A[:1], B, metric, threads=2)
        )


def test_gil_is_released_during_cdist(rng):
    A = rng.standard_normal((1500, 256)).astype(np.float32)
    B = rng.standard_normal((6000, 256)).astype(np.float32)
    inside, duration = ticks_while(lambda: [pysim.cdist(A, B, threads=1) for _ in range(3)])
    # With the GIL held, the ticker could not run at all during the call.
    assert len(inside) >= 5
    gaps = np.diff(inside)
    assert gaps.max() < duration / 2


def test_simd_info_schema():
    info = pysim.simd_info()
    assert info["isa"] in info["available"]
    assert set(info["available"]) <= set(info["compiled"])
    assert info["detected"] in info["available"]
    assert "scalar" in info["compiled"]
    for name in ("dot_f32", "l2sq_f32", "tile_f32", "dot_f64", "tile_f64"):
        assert info["kernels"][name] in info["compiled"]


def test_set_isa_switches_every_kernel():
    from pysim import _core

    before = pysim.simd_info()["isa"]
    try:
        # x86 levels are cumulative: a level's kernels come from it or from a level below.
        chain = ["scalar", "avx2", "avx512", "avx512_vnni", "avx512_vnni_bf16"]
        for isa in _core._available_isas():
            assert _core._set_isa(isa)
            info = pysim.simd_info()
            assert info["isa"] == isa
            allowed = set(chain[: chain.index(isa) + 1]) if isa in chain else {"scalar", isa}
            assert set(info["kernels"].values()) <= allowed
        assert not _core._set_isa("no-such-level")
    finally:
        _core._set_isa(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 300])  # one-to-many path and tiled path
@pytest.mark.parametrize("scale", ["tiny", "huge"])
def test_cosine_of_vectors_whose_squared_norm_under_or_overflows(dtype, m, scale):
    # |x|^2 underflows (or overflows) the dtype, yet cosine is scale invariant: such rows must
    # not count as zero vectors or get a norm with a few significant bits.
    rng = np.random.default_rng(5)
    A = rng.standard_normal((m, 6)).astype(dtype)
    B = rng.standard_normal((40, 6)).astype(dtype)
    s = {
        "tiny": 1e-30 if dtype == np.float32 else 1e-170,
        "huge": 1e25 if dtype == np.float32 else 1e160,
    }[scale]
    A_scaled = (A * dtype(s)).astype(dtype)
    want = pysim.cdist(A, B, "cosine")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(pysim.cdist(A_scaled, B, "cosine"), want, atol=tol)
    np.testing.assert_allclose(pysim.cdist(B, A_scaled, "cosine"), want.T, atol=tol)
    np.testing.assert_allclose(
        pysim.paired_distances(A_scaled[:1], B[:1], "cosine"), want[:1, 0], atol=tol
    )
    zero = np.zeros((1, 6), dtype)
    np.testing.assert_array_equal(pysim.cdist(zero, B, "cosine"), np.ones((1, 40), dtype))
