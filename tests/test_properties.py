"""Hypothesis properties of the distances: symmetry, non-negativity, identity, the triangle
inequality for euclidean, cosine's scale invariance and ip = 1 - a.b."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import pysim

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)


def matrices(max_rows=12, max_dim=40):
    return st.integers(1, max_dim).flatmap(
        lambda d: st.tuples(
            arrays(np.float64, st.tuples(st.integers(1, max_rows), st.just(d)), elements=finite),
            arrays(np.float64, st.tuples(st.integers(1, max_rows), st.just(d)), elements=finite),
        )
    )


@given(matrices())
def test_symmetry_and_non_negativity(pair):
    A, B = pair
    for metric in ("sqeuclidean", "euclidean", "cosine"):
        D = pysim.cdist(A, B, metric)
        Dt = pysim.cdist(B, A, metric)
        scale = 1e-9 * (1 + np.abs(A).max() + np.abs(B).max()) ** 2
        np.testing.assert_allclose(D, Dt.T, rtol=1e-9, atol=scale)
        assert (D >= 0).all()


@given(
    st.integers(1, 30).flatmap(
        lambda d: arrays(np.float64, st.tuples(st.integers(3, 10), st.just(d)), elements=finite)
    )
)
def test_triangle_inequality_euclidean(X):
    D = pysim.cdist(X, X, "euclidean")
    slack = 1e-9 * (1 + np.abs(X).max())
    assert (D[:, None, :] <= D[:, :, None] + D[None, :, :] + slack).all()
    np.testing.assert_allclose(np.diag(D), 0, atol=slack)


@given(matrices(), st.floats(1e-3, 1e3))
def test_cosine_is_scale_invariant(pair, c):
    A, B = pair
    np.testing.assert_allclose(
        pysim.cdist(A * c, B, "cosine"), pysim.cdist(A, B, "cosine"), rtol=1e-9, atol=1e-9
    )


@given(matrices())
def test_ip_is_one_minus_dot(pair):
    A, B = pair
    np.testing.assert_allclose(pysim.cdist(A, B, "ip"), 1 - pysim.dot(A, B), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(pysim.dot(A, B), A @ B.T, rtol=1e-9, atol=1e-6)
