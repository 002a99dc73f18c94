"""Quantizer and QuantStore: round-trip bounds, prepared-query distances, re-fitting, state.

Distances are compared with float64 references on the *decoded* vectors (exact for the
asymmetric form up to float32 accumulation; within the proven bound sigma * sum |c_j - C| for
the symmetric int8 form), and re-ranking with references on the float32 rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from quant_reference import bf16_round, bf16_value, u4_positions, unpack_u4

from pysim import _core

EPS32 = float(np.finfo(np.float32).eps)
SPACES = {"sqeuclidean": ("l2", False), "ip": ("ip", False), "cosine": ("ip", True)}


def skewed_data(rng, n, dim, *, offset=0.0):
    """Per-dimension scales over three orders of magnitude, offsets, and one constant dim."""
    scale = np.exp(rng.uniform(-3, 3, dim))
    shift = rng.uniform(-5, 5, dim) + offset
    x = rng.standard_normal((n, dim)) * scale + shift
    x[:, dim // 2] = 0.25  # a constant dimension (zero range)
    return x.astype(np.float32)


def levels_of(kind: str, records: np.ndarray, dim: int) -> np.ndarray:
    if kind == "sq8":
        return records[:, :dim].astype(np.int64)
    return unpack_u4(records[:, : (dim + 1) // 2], dim)


def exact_decoded(qz, kind: str, records: np.ndarray, dim: int) -> np.ndarray:
    """The decoded vectors in float64, straight from the codes (no float32 rounding)."""
    if kind == "f16":
        return np.ascontiguousarray(records[:, : 2 * dim]).view(np.float16).astype(np.float64)
    if kind == "bf16":
        return bf16_value(np.ascontiguousarray(records[:, : 2 * dim]).view(np.uint16)).astype(
            np.float64
        )
    lo, step = qz.lo.astype(np.float64), qz.step.astype(np.float64)
    return lo + step * levels_of(kind, records, dim)


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length the way the core does it (double norm, float32 result)."""
    x64 = x.astype(np.float64)
    norms = np.sqrt((x64 * x64).sum(axis=1, keepdims=True))
    inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1), 0.0)
    return (x * inv).astype(np.float32)


def reference(space: str, q: np.ndarray, x: np.ndarray):
    """(m, n) float64 distances and a float32-accumulation tolerance per entry."""
    q, x = q.astype(np.float64), x.astype(np.float64)
    if space == "l2":
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        mag = ((np.abs(q)[:, None, :] + np.abs(x)[None, :, :]) ** 2).sum(-1)
    else:
        d = 1.0 - q @ x.T
        mag = np.abs(q) @ np.abs(x).T + 1.0
    return d, 16 * EPS32 * (np.sqrt(q.shape[1]) + 2) * mag


# ---- Quantizer -------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 5, 64, 129, 300])
@pytest.mark.parametrize("clip", [0.0, 0.02])
@pytest.mark.parametrize("kind", ["sq8", "sq4"])
def test_round_trip_error_bound(rng, kind, clip, dim):
    # |x - decode(encode(x))| <= (hi - lo) / (2 L - 2) = step / 2 inside the ranges; values
    # outside are clipped to the nearest end and counted.
    x = skewed_data(rng, 400, dim)
    qz = _core._Quantizer(kind, dim)
    qz.fit(x, clip=clip)
    records, clipped = qz.encode(x)
    got = qz.decode(records)
    lo, step, hi = (a.astype(np.float64) for a in (qz.lo, qz.step, qz.hi))
    levels = qz.levels
    if clip == 0.0:
        np.testing.assert_array_equal(qz.lo, x.min(axis=0))
        span = x.max(0).astype(np.float64) - x.min(0)
        top = np.abs(x.max(0).astype(np.float64))
        assert np.all(np.abs(hi - x.max(axis=0)) <= 2 * EPS32 * (span + top))
        np.testing.assert_allclose(step, span / (levels - 1), rtol=2 * EPS32)
    want = exact_decoded(qz, kind, records, dim)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    x64 = x.astype(np.float64)
    inside = (x64 >= lo) & (x64 <= hi)
    err = np.abs(x64 - want)
    bound = np.broadcast_to(step / 2 * (1 + 1e-6) + 2 * EPS32 * np.abs(x64), x.shape)
    assert np.all(err[inside] <= bound[inside])
    v = np.where(step > 0, (x64 - lo) / np.where(step > 0, step, 1), 0)
    outside = np.where(step > 0, (v < -0.5) | (v > levels - 0.5), x64 != lo)
    assert clipped == int(outside.sum())
    assert np.all(want[x64 < lo] == np.broadcast_to(lo, x.shape)[x64 < lo])
    if clip > 0 and dim > 1:  # (dim 1 is the constant dimension)
        assert clipped > 0


@pytest.mark.parametrize("kind", ["f16", "bf16"])
def test_half_round_trip_is_the_ieee_rounding(rng, kind):
    x = (rng.standard_normal((50, 37)) * 300).astype(np.float32)
    qz = _core._Quantizer(kind, 37)
    records, clipped = qz.encode(x)
    assert clipped == 0
    want = x.astype(np.float16).astype(np.float32) if kind == "f16" else bf16_value(bf16_round(x))
    np.testing.assert_array_equal(qz.decode(records), want)


@pytest.mark.parametrize("dim", [1, 2, 127, 128, 129, 255, 300])
def test_nibble_layout(dim):
    levels = (np.arange(dim) * 7 + 3) % 16
    qz = _core._Quantizer("sq4", dim)
    qz.set_ranges(np.zeros(dim, np.float32), np.full(dim, 15, np.float32))
    records, clipped = qz.encode(levels[None, :].astype(np.float32))
    assert clipped == 0
    byte, high = u4_positions(dim)
    want = np.zeros((dim + 1) // 2, np.uint8)
    for j in range(dim):
        want[byte[j]] |= levels[j] << 4 if high[j] else levels[j]
    np.testing.assert_array_equal(records[0], want)


MODES = [
    ("f16", "asymmetric"),
    ("bf16", "asymmetric"),
    ("bf16", "symmetric"),
    ("sq8", "asymmetric"),
    ("sq8", "symmetric"),
    ("sq4", "asymmetric"),
    ("sq4", "symmetric"),
]


# Symmetric bf16 exists for the ip spaces only (a ValueError otherwise, tested below).
VALID = [
    (k, m, metric)
    for k, m in MODES
    for metric in SPACES
    if not (k == "bf16" and m == "symmetric" and SPACES[metric][0] == "l2")
]


@pytest.mark.parametrize("dim", [3, 64, 100, 129, 384])
@pytest.mark.parametrize("kind,mode,metric", VALID)
def test_prepared_query_distances(isa, rng, kind, mode, metric, dim):
    space, normalize = SPACES[metric]
    x = skewed_data(rng, 40, dim)
    queries = skewed_data(rng, 3, dim) * 1.1
    qz = _core._Quantizer(kind, dim, space, normalize, mode)
    qz.fit(x)
    records, _ = qz.encode(x)
    xd = exact_decoded(qz, kind, records, dim)
    qn = np.stack([qz.prepared(q)["normalised"] for q in queries])
    np.testing.assert_array_equal(qn, normalised(queries) if normalize else queries)
    want, tol = reference(space, qn, xd)
    for form in ("batch", "pair"):
        decoded = qz.distances(queries, records, "decoded", form)
        assert np.all(np.abs(decoded - want) <= tol)
        search = qz.distances(queries, records, "search", form)
        if mode == "asymmetric":
            assert np.all(np.abs(search - want) <= tol)
        elif kind == "bf16":
            qb = bf16_value(bf16_round(qn)).astype(np.float64)
            bound = 2.0**-8 * (np.abs(qn) @ np.abs(xd).T)
            rounding = 16 * EPS32 * (np.abs(qb) @ np.abs(xd).T)
            assert np.all(np.abs(search - want) <= bound + tol + rounding)
        else:
            # sigma * sum_j |c_j - C| (l2), half of it (ip), plus float rounding of the terms.
            c = levels_of(kind, records, dim)
            centre = (qz.levels - 1) / 2
            spread = np.abs(c - centre).sum(axis=1)
            sigmas = np.array([qz.prepared(q)["sigma"] for q in queries])
            factor = 1.0 if space == "l2" else 0.5
            bound = factor * sigmas[:, None] * spread[None, :]
            assert np.all(np.abs(search - want) <= bound * (1 + 1e-6) + 4 * tol)


def test_symmetric_query_is_int8_on_one_scale(rng):
    x = skewed_data(rng, 30, 50)
    qz = _core._Quantizer("sq8", 50, "l2", False, "symmetric")
    qz.fit(x)
    p = qz.prepared(x[0] + 0.1)
    assert p["form"] == "sym_trailer"
    assert p["t"].dtype == np.int8 and np.abs(p["t"].astype(int)).max() == 127
    assert qz.trailer_offset == 52 and qz.record_bytes == 56


def test_quantizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        _core._Quantizer("q3", 4)
    with pytest.raises(ValueError, match="dim"):
        _core._Quantizer("sq8", 0)
    with pytest.raises(ValueError, match="symmetric"):
        _core._Quantizer("f16", 4, "l2", False, "symmetric")
    with pytest.raises(ValueError, match="ip and cosine"):
        _core._Quantizer("bf16", 4, "l2", False, "symmetric")
    with pytest.raises(ValueError, match="65536"):
        _core._Quantizer("sq8", 70000)
    qz = _core._Quantizer("sq8", 4)
    with pytest.raises(ValueError, match="not fitted"):
        qz.encode(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="clip"):
        qz.fit(np.zeros((3, 4), np.float32), clip=0.5)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        qz.set_ranges(np.ones(4, np.float32), np.zeros(4, np.float32))
    bad = np.zeros((5, 4), np.float32)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        qz.check_rows(bad)
    big = np.zeros((2, 4), np.float32)
    big[1, 0] = 1e5
    with pytest.raises(ValueError, match="row 1.*f16"):
        _core._Quantizer("f16", 4).check_rows(big)
    _core._Quantizer("f16", 4, "ip", True).check_rows(big)  # cosine stores unit vectors


# ---- QuantStore ------------------------------------------------------------------------------

STORE_KINDS = [
    ("sq8", "asymmetric"),
    ("sq8", "symmetric"),
    ("sq4", "asymmetric"),
    ("sq4", "symmetric"),
    ("f16", "asymmetric"),
    ("bf16", "asymmetric"),
]


def make_store(kind, mode, dim, metric="sqeuclidean", keep_full=True, clip=0.0):
    space, normalize = SPACES[metric]
    return _core._QuantStore(kind, dim, space, normalize, mode, keep_full, clip)


@pytest.mark.parametrize("keep_full", [True, False])
@pytest.mark.parametrize("metric", list(SPACES))
@pytest.mark.parametrize("kind,mode", STORE_KINDS)
def test_store_search_and_refine(rng, kind, mode, metric, keep_full):
    dim = 70
    x = skewed_data(rng, 60, dim)
    queries = skewed_data(rng, 4, dim)
    store = make_store(kind, mode, dim, metric, keep_full)
    assert store.append(x, threads=2) == 0 and len(store) == 60
    slots = rng.permutation(60)[:25].astype(np.int64)
    space, normalize = SPACES[metric]
    qn = normalised(queries) if normalize else queries
    stored = normalised(x) if normalize else x
    decoded = store.decode(slots)
    want, tol = reference(space, qn, decoded)
    search = store.distances(queries, slots, "search")
    pair = store.distances(queries, slots, "pair")
    np.testing.assert_allclose(pair, search, rtol=1e-5, atol=1e-4 * np.abs(want).max())
    if mode == "asymmetric":
        assert np.all(np.abs(search - want) <= tol + 4 * EPS32 * np.abs(want))
    decoded_form = store.distances(queries, slots, "decoded")
    assert np.all(np.abs(decoded_form - want) <= tol + 4 * EPS32 * np.abs(want))
    refine = store.distances(queries, slots, "refine")
    if keep_full:
        exact, etol = reference(space, qn, stored[slots])
        assert np.all(np.abs(refine - exact) <= etol)
    else:
        assert np.all(np.abs(refine - want) <= tol + 4 * EPS32 * np.abs(want))


def test_store_slot_as_query(rng):
    x = skewed_data(rng, 20, 33)
    for keep_full in (True, False):
        store = make_store("sq8", "asymmetric", 33, keep_full=keep_full)
        store.append(x)
        slots = np.arange(20, dtype=np.int64)
        got = store.slot_distances(5, slots)
        src = x[5:6] if keep_full else store.decode(np.array([5], np.int64))
        want = store.distances(src, slots, "search")[0]
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert got[5] == pytest.approx(store.distances(src, slots[5:6], "search")[0, 0])


@pytest.mark.parametrize("keep_full", [True, False])
@pytest.mark.parametrize("kind", ["sq8", "sq4"])
def test_drift_is_counted_and_refit_covers_it(rng, kind, keep_full):
    dim = 24
    x1 = rng.uniform(0, 1, (200, dim)).astype(np.float32)
    x2 = (rng.uniform(0, 1, (100, dim)) + 2.0).astype(np.float32)
    store = make_store(kind, "asymmetric", dim, keep_full=keep_full)
    store.append(x1)
    assert store.drift == (200, 0, 0)
    assert store.count_clipped(x1) == 0
    assert store.count_clipped(x2) == 100 * dim
    store.append(x2)
    assert store.drift == (200, 100, 100 * dim)
    store.refit(threads=2)
    assert store.drift == (300, 0, 0)
    both = np.vstack([x1, x2])
    lo, step = store.lo.astype(np.float64), store.step.astype(np.float64)
    assert np.all(lo <= both.min(0))
    if keep_full:
        assert np.all(lo + step * (15 if kind == "sq4" else 255) >= both.max(0) * (1 - 1e-6))
        err = np.abs(store.decode(np.arange(300, dtype=np.int64)) - both)
        assert np.all(err <= step / 2 * (1 + 1e-5) + 1e-6)
    else:
        # Rows clipped before the re-fit stay clipped (their float32 values are gone), but the
        # ranges now cover every row ever stored.
        hi = lo + step * (15 if kind == "sq4" else 255)
        assert np.all(hi >= both.max(0) * (1 - 1e-6))


@pytest.mark.parametrize("kind", ["sq8", "sq4"])
def test_refit_before_storing_a_drifted_batch(rng, kind):
    dim = 16
    x1 = rng.uniform(0, 1, (150, dim)).astype(np.float32)
    x2 = (rng.uniform(0, 1, (50, dim)) * 3 - 1).astype(np.float32)
    store = make_store(kind, "asymmetric", dim, keep_full=False)
    store.append(x1)
    old_step = store.step.astype(np.float64)
    assert store.count_clipped(x2) > 0
    store.refit(extra=x2)
    assert store.count_clipped(x2) == 0
    store.append(x2)
    assert store.drift == (200, 50, 0)
    step = store.step.astype(np.float64)
    got = store.decode(np.arange(200, dtype=np.int64))
    # New rows: one quantisation; old rows: re-quantised decoded values.
    assert np.all(np.abs(got[150:] - x2) <= step / 2 * (1 + 1e-5) + 1e-6)
    assert np.all(np.abs(got[:150] - x1) <= (step + old_step) / 2 * (1 + 1e-5) + 1e-6)


@pytest.mark.parametrize("clip", [0.0, 0.01])
def test_refit_with_quantiles(rng, clip):
    x = skewed_data(rng, 500, 20)
    a = make_store("sq8", "asymmetric", 20, clip=clip)
    a.append(x)
    b = _core._Quantizer("sq8", 20)
    b.fit(x, clip=clip)
    np.testing.assert_array_equal(a.lo, b.lo)
    np.testing.assert_array_equal(a.step, b.step)
    a.refit()  # the same rows: the same ranges
    np.testing.assert_array_equal(a.lo, b.lo)
    np.testing.assert_array_equal(a.step, b.step)


@pytest.mark.parametrize("keep_full", [True, False])
@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
@pytest.mark.parametrize("kind,mode", STORE_KINDS)
def test_store_state_round_trip(rng, kind, mode, metric, keep_full):
    dim = 45
    space, normalize = SPACES[metric]
    store = make_store(kind, mode, dim, metric, keep_full)
    store.append(skewed_data(rng, 30, dim))
    state = store.get_state()
    args = (kind, dim, space, normalize, mode, keep_full, 0.0)
    copy = _core._QuantStore.from_state(*args, state)
    slots = np.arange(30, dtype=np.int64)
    q = skewed_data(rng, 3, dim)
    for which in ("search", "refine"):
        np.testing.assert_array_equal(
            copy.distances(q, slots, which), store.distances(q, slots, which)
        )
    np.testing.assert_array_equal(copy.decode(slots), store.decode(slots))
    assert copy.drift == store.drift and len(copy) == len(store)
    more = skewed_data(rng, 10, dim)
    store.append(more)
    copy.append(more)
    np.testing.assert_array_equal(copy.get_state()["codes"], store.get_state()["codes"])


def test_store_state_rejects_corruption(rng):
    dim = 9
    store = make_store("sq4", "asymmetric", dim)
    store.append(skewed_data(rng, 12, dim))
    args = ("sq4", dim, "l2", False, "asymmetric", True, 0.0)
    good = store.get_state()

    def broken(**changes):
        st = dict(good)
        st.update(changes)
        return st

    codes = good["codes"].copy()
    codes[4] |= 0xF0  # the padding nibble of the first code (odd dim)
    cases = {
        "codes do not match": broken(codes=good["codes"][:-1]),
        "float32 rows": broken(full=good["full"][:-1]),
        "not finite": broken(
            full=np.where(np.arange(good["full"].size) == 3, np.nan, good["full"]).astype(
                np.float32
            )
        ),
        "differ in length": broken(step=good["step"][:-1]),
        "step finite and >= 0": broken(step=-good["step"]),
        "padding nibble": broken(codes=codes),
    }
    for message, state in cases.items():
        with pytest.raises(ValueError, match=message):
            _core._QuantStore.from_state(*args, state)
    f16 = make_store("f16", "asymmetric", 4)
    f16.append(rng.standard_normal((2, 4)).astype(np.float32))
    st = f16.get_state()
    st["codes"] = np.full_like(st["codes"], 0xFF)
    with pytest.raises(ValueError, match="infinite or NaN"):
        _core._QuantStore.from_state("f16", 4, "l2", False, "asymmetric", True, 0.0, st)


def test_failed_append_leaves_store_unchanged(rng):
    store = make_store("sq8", "symmetric", 8)
    store.append(skewed_data(rng, 10, 8))
    before = store.get_state()
    bad = skewed_data(rng, 6, 8)
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="row 3"):
        store.append(bad)
    after = store.get_state()
    assert len(store) == 10
    for key in before:
        np.testing.assert_array_equal(np.asarray(before[key]), np.asarray(after[key]))


def test_set_rows_overwrites_slots(rng):
    x = skewed_data(rng, 10, 12)
    store = make_store("sq8", "asymmetric", 12)
    store.append(x)
    new = np.stack([(x[7] + x[8]) / 2, x[3]])  # inside the fitted ranges
    store.set_rows(np.array([2, 5], np.int64), new)
    got = store.decode(np.array([2, 5], np.int64))
    step = store.step.astype(np.float64)
    assert np.all(np.abs(got - new) <= step / 2 * (1 + 1e-5) + 1e-6)
    assert store.drift[1] == 2
    with pytest.raises(ValueError, match="out of range"):
        store.set_rows(np.array([10], np.int64), new[:1])


@pytest.mark.parametrize("dim", [128, 384, 784])
@pytest.mark.parametrize("mode", ["asymmetric", "symmetric"])
def test_sq8_without_float_copy_fits_the_memory_target(rng, mode, dim):
    # The target: sq8 with refine=0 stores at most 0.3x the bytes of float32 vectors.
    n = 300
    store = make_store("sq8", mode, dim, keep_full=False)
    store.append(rng.standard_normal((n, dim)).astype(np.float32))
    per_vector = (store.memory_bytes - 4 * 4 * dim) / n  # minus the ranges
    assert per_vector == store.stride
    assert per_vector <= 0.3 * 4 * dim


def test_store_threads_and_concurrent_queries(rng):
    x = skewed_data(rng, 3000, 40)
    a = make_store("sq4", "symmetric", 40)
    b = make_store("sq4", "symmetric", 40)
    a.append(x, threads=1)
    b.append(x, threads=2)
    np.testing.assert_array_equal(a.get_state()["codes"], b.get_state()["codes"])
    q = skewed_data(rng, 8, 40)
    slots = np.arange(3000, dtype=np.int64)
    serial = a.distances(q, slots)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: a.distances(q, slots), range(8)))
    for r in results:
        np.testing.assert_array_equal(r, serial)
