"""HNSWIndex with quantised storage (f16 / bf16 / sq8 / sq4, refine=): recall at the defaults,
exact distances for what is stored, round-trip error bounds, persistence, drift and refit,
memory, bad input, and the guarantees of the float32 index (filters, removal, replacement,
threads, determinism, every ISA).

Why this file is built this way: every claim of pysim/_hnsw.py and csrc/hnsw/quantized.cpp is
checked against a float64 reference (tests/reference.py) computed from what the index says it
stores - the float32 rows when it keeps a copy (refine > 0), the decoded records from
get_items otherwise - so a test can tell "approximate neighbours" from "wrong distances".
Recall targets (0.95 at the default ef and refine) are asserted as given by the issue, never
loosened: a quantisation below it fails here and is reported. The full MNIST / MiniLM runs
are slow; subsets of the same data run by default.
"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
import reference
from conftest import load_minilm, load_mnist

import pysim
from pysim import _persist
from pysim._index_base import _rebuild

QUANTS = ["f16", "bf16", "sq8", "sq4"]
METRICS = ["sqeuclidean", "euclidean", "cosine", "ip", "mahalanobis"]
LEVELS = {"sq8": 256, "sq4": 16}


# ---------------------------------------------------------------------------- helpers


def clustered(rng, n, d, clusters=30, spread=0.3):
    centres = rng.standard_normal((clusters, d))
    X = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, d))
    return X.astype(np.float32)


def random_vi(d):
    A = np.random.default_rng(7).standard_normal((d, d))
    return A @ A.T / d + 0.1 * np.eye(d)


def build(X, metric="sqeuclidean", quantization=None, refine=None, *, threads=1, ids=None, **kw):
    VI = random_vi(X.shape[1]) if metric == "mahalanobis" else None
    index = pysim.HNSWIndex(
        X.shape[1], metric, VI=VI, quantization=quantization, refine=refine, **kw
    )
    index.add(X, ids, threads=threads)
    return index


def vi_of(index):
    return index._L.T @ index._L if index.metric == "mahalanobis" else None


def ref_dist(index, Q, X):
    """float64 distances (len(Q), len(X)) with the index's metric, from raw rows."""
    out = [
        reference.cdist(Q[s : s + 32], X, index.metric, vi_of(index)) for s in range(0, len(Q), 32)
    ]
    return np.vstack(out) if out else np.empty((0, len(X)))


def ref_knn(X, Q, k, metric, VI=None):
    """Exact neighbours in float64, in query blocks (the reference broadcasts (m, n, d))."""
    block = max(1, 2_000_000 // max(1, X.shape[0] * X.shape[1]))
    parts = [reference.knn(X, Q[s : s + block], k, metric, VI) for s in range(0, len(Q), block)]
    return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])


def stored_dist(index, q, S):
    """float64 distance from raw queries q to vectors S in the index's stored form (what
    get_items returns: unit rows for cosine, L @ x for mahalanobis)."""
    q = np.asarray(q, np.float64)
    S = np.asarray(S, np.float64)
    if index.metric == "mahalanobis":
        q = q @ index._L.T
    if index.metric == "cosine":
        norm = np.linalg.norm(q, axis=-1, keepdims=True)
        q = np.where(norm > 0, q / np.where(norm > 0, norm, 1), 0)
    if index.metric in ("cosine", "ip"):
        d = 1.0 - np.einsum("...j,...j->...", q, S)
        return np.clip(d, 0, 2) if index.metric == "cosine" else d
    sq = np.einsum("...j,...j->...", q - S, q - S)
    return sq if index.metric == "sqeuclidean" else np.sqrt(sq)


def tol(index, q, S):
    """float32 accuracy of a distance, relative to the magnitude of its terms."""
    q = np.asarray(q, np.float64)
    if index.metric == "mahalanobis":
        q = q @ index._L.T
    nq = np.linalg.norm(q, axis=-1)
    if index.metric == "cosine":
        nq = np.ones_like(nq)
    ns = np.linalg.norm(np.asarray(S, np.float64), axis=-1)
    if index.metric == "sqeuclidean":
        return 3e-5 * (nq**2 + ns**2) + 1e-6
    if index.metric in ("euclidean", "mahalanobis"):
        return 3e-5 * (nq + ns) + 1e-4
    return 3e-5 * (nq * ns + 1)


def stored_truth(index, ids, Q, k=10):
    """Exact top-k ids among `ids` by distance to what the index stores (decoded records
    without a float32 copy): the best any search over these records can return."""
    S = index.get_items(ids)
    D = stored_dist(index, Q[:, None, :], S[None])
    order = np.lexsort((np.broadcast_to(ids, D.shape), D), axis=1)[:, :k]
    return np.asarray(ids)[order]


def overlap_recall(found, truth):
    k = truth.shape[1]
    return float(
        np.mean(
            [len(set(f) & set(t)) / k for f, t in zip(found.tolist(), truth.tolist(), strict=True)]
        )
    )


@pytest.fixture(scope="module")
def mnist_subset():
    base, queries, _ = load_mnist()
    X, Q = base[:3000], queries[:300]
    return X, Q, ref_knn(X, Q, 10, "euclidean")


@pytest.fixture(scope="module")
def minilm_subset():
    X, Q, _ = load_minilm()
    return X, Q, ref_knn(X, Q, 10, "cosine")


# ---------------------------------------------------------------------------- recall at defaults


def _check_default_recall(X, Q, truth, metric, quantization, threads=2):
    index = build(X, metric, quantization, threads=threads)
    assert index.quantization == quantization and index.ef == 64
    _, found = index.query(Q, k=10, threads=threads)
    r = overlap_recall(found, truth)
    assert r >= 0.95, f"{quantization} {metric} recall@10 {r:.4f} at defaults"
    return index, r


@pytest.mark.parametrize("quantization", QUANTS)
def test_recall_mnist_subset_defaults(mnist_subset, quantization):
    X, Q, (_, truth) = mnist_subset
    _check_default_recall(X, Q, truth, "euclidean", quantization)


@pytest.mark.parametrize("quantization", QUANTS)
def test_recall_minilm_subset_defaults(minilm_subset, quantization):
    X, Q, (_, truth) = minilm_subset
    _check_default_recall(X, Q, truth, "cosine", quantization)


@pytest.mark.slow
@pytest.mark.parametrize("quantization", QUANTS)
def test_recall_mnist_full_defaults(quantization):
    base, queries, gt = load_mnist()
    _check_default_recall(base, queries, gt[:, :10], "euclidean", quantization)


@pytest.mark.slow
@pytest.mark.parametrize("quantization", QUANTS)
def test_recall_minilm_full_defaults(quantization):
    base, queries, gt = load_minilm(full=True)
    _check_default_recall(base, queries, gt[:, :10], "cosine", quantization)


def synthetic(rng, data, n_queries):
    """5,000 rows and `n_queries` queries of "gauss32" (standard normal, 32-d) or
    "clustered64" (clustered, 64-d) data, float32."""
    if data == "gauss32":
        X = rng.standard_normal((5000, 32)).astype(np.float32)
        return X, rng.standard_normal((n_queries, 32)).astype(np.float32)
    X = clustered(rng, 5000 + n_queries, 64)
    return X[:5000], X[5000:]


@pytest.mark.parametrize("quantization", QUANTS)
@pytest.mark.parametrize(
    "data, metric",
    [
        ("gauss32", "sqeuclidean"),
        ("gauss32", "cosine"),
        ("gauss32", "ip"),
        ("clustered64", "euclidean"),
    ],
)
def test_recall_synthetic_defaults(quantization, data, metric):
    X, Q = synthetic(np.random.default_rng(2024), data, 200)
    _, truth = ref_knn(X, Q, 10, metric)
    _check_default_recall(X, Q, truth, metric, quantization)


@pytest.mark.slow
@pytest.mark.parametrize("quantization", QUANTS)
def test_quantised_recall_tracks_float32_on_hard_gaussian(quantization):
    """Isotropic d=64 Gaussians are hard for any HNSW at ef=64 (float32 itself is below 0.95
    there); quantisation must not cost more than two points on top of that (sq4 measured 1.5)."""
    rng = np.random.default_rng(77)
    X = rng.standard_normal((5000, 64)).astype(np.float32)
    Q = rng.standard_normal((300, 64)).astype(np.float32)
    _, truth = ref_knn(X, Q, 10, "sqeuclidean")
    r32 = overlap_recall(build(X, threads=2).query(Q, k=10)[1], truth)
    rq = overlap_recall(build(X, "sqeuclidean", quantization, threads=2).query(Q, k=10)[1], truth)
    assert rq >= r32 - 0.02, (rq, r32)


# ---------------------------------------------------------------------------- exact distances


REFINES = [None, 0, 5]


@pytest.mark.parametrize("refine", REFINES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("quantization", QUANTS)
def test_distances_exact_for_what_is_stored(rng, quantization, metric, refine):
    X = clustered(rng, 700, 24) + 1.0
    Q = clustered(rng, 25, 24) + 1.0
    index = build(X, metric, quantization, refine)
    k = 10
    dists, nbrs = index.query(Q, k=k, ef=40)
    assert dists.dtype == np.float32 and nbrs.dtype == np.int64 and dists.shape == (25, k)
    assert (nbrs >= 0).all() and (nbrs < 700).all()
    assert all(len(set(r)) == k for r in nbrs.tolist())
    assert (np.diff(dists, axis=1) >= 0).all()
    S = index.get_items(nbrs.ravel()).reshape(25, k, -1)
    want = stored_dist(index, Q[:, None, :], S)
    np.testing.assert_array_less(np.abs(dists - want), tol(index, Q[:, None, :], S))
    if index.refine != 0:
        # The float32 copy is the caller's rows: distances are those to X itself.
        full = np.stack([ref_dist(index, Q[i : i + 1], X[nbrs[i]])[0] for i in range(25)])
        np.testing.assert_array_less(np.abs(dists - full), tol(index, Q[:, None, :], S))


@pytest.mark.parametrize("refine", [None, 0])
@pytest.mark.parametrize("quantization", QUANTS)
def test_k_larger_than_index_pads_and_small_index_is_exact(rng, quantization, refine):
    X = rng.standard_normal((6, 5)).astype(np.float32)
    index = build(X, "sqeuclidean", quantization, refine)
    dists, nbrs = index.query(X[:3] + 0.01, k=9)
    assert (nbrs[:, 6:] == -1).all() and np.isinf(dists[:, 6:]).all()
    S = index.get_items(np.arange(6))
    want = stored_dist(index, (X[:3] + 0.01)[:, None, :], S[None])
    order = np.lexsort((np.broadcast_to(np.arange(6), want.shape), want), axis=1)
    np.testing.assert_array_equal(nbrs[:, :6], order)
    np.testing.assert_allclose(
        dists[:, :6], np.take_along_axis(want, order, 1), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("quantization", QUANTS)
def test_empty_quantised_index(quantization):
    index = pysim.HNSWIndex(4, quantization=quantization)
    dists, nbrs = index.query(np.zeros(4), k=3)
    assert (nbrs == -1).all() and np.isinf(dists).all()
    assert len(index) == 0 and index.drift == {
        "rows_at_fit": 0,
        "rows_since_fit": 0,
        "clipped_since_fit": 0,
    }
    index.refit()  # nothing to fit: no error


# ---------------------------------------------------------------------------- round trip


def _spread_rows(rng, n, d):
    """Rows whose dimensions have very different scales and offsets (per-dimension ranges)."""
    scale = np.exp(rng.uniform(-3, 3, d))
    offset = rng.uniform(-5, 5, d)
    return (offset + scale * rng.standard_normal((n, d))).astype(np.float32)


def _stored_form(X, metric):
    X = np.asarray(X, np.float64)
    if metric == "cosine":
        return X / np.linalg.norm(X, axis=1, keepdims=True)
    return X


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine", "ip"])
@pytest.mark.parametrize("quantization", QUANTS)
def test_round_trip_error_bounds(rng, quantization, metric):
    first = _spread_rows(rng, 400, 19)
    index = build(first, metric, quantization, refine=0)
    inside = first[rng.integers(0, 400, 300)] * rng.uniform(0.7, 1.0, (300, 1)).astype(np.float32)
    if quantization.startswith("sq"):
        # Later rows inside the first batch's ranges (convex combinations of its rows).
        w = rng.dirichlet(np.ones(3), 300)
        picks = first[rng.integers(0, 400, (300, 3))].astype(np.float64)
        inside = np.einsum("ij,ijk->ik", w, picks).astype(np.float32)
        if metric == "cosine":
            # Normalised rows: take stored rows of the first batch (already inside the ranges).
            inside = first[rng.integers(0, 400, 300)]
    index.add(inside, np.arange(1000, 1300))
    for rows, ids in ((first, np.arange(400)), (inside, np.arange(1000, 1300))):
        x = _stored_form(rows, metric)
        got = index.get_items(ids).astype(np.float64)
        err = np.abs(got - x)
        if quantization == "f16":
            np.testing.assert_array_equal(got, x.astype(np.float32).astype(np.float16))
            assert (err <= 2.0**-11 * np.abs(x) + 2.0**-25).all()
        elif quantization == "bf16":
            assert (err <= 2.0**-8 * np.abs(x) + 1e-38).all()
        else:
            s = _stored_form(first, metric)
            lo, hi = s.min(axis=0), s.max(axis=0)
            half_step = (hi - lo) / (2 * (LEVELS[quantization] - 1))
            bound = half_step + 4 * np.finfo(np.float32).eps * (np.abs(lo) + np.abs(hi))
            over = err - bound
            assert (over <= 0).all(), (quantization, float(over.max()), float(half_step.max()))
            assert (got >= lo - bound).all() and (got <= hi + bound).all()
    assert index.drift["clipped_since_fit"] == 0


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
@pytest.mark.parametrize("quantization", QUANTS)
def test_refined_index_keeps_float32_rows(rng, quantization, metric):
    X = _spread_rows(rng, 200, 13)
    index = build(X, metric, quantization, refine=4)
    got = index.get_items(np.arange(200))
    want = _stored_form(X, metric)
    if metric == "cosine":
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-7)
    else:
        np.testing.assert_array_equal(got, X)


def test_f16_range_edges():
    index = pysim.HNSWIndex(2, quantization="f16")
    index.add(np.array([[65504.0, -65504.0], [65519.0, 1.0]], np.float32))
    np.testing.assert_array_equal(index.get_items([0, 1]), [[65504, -65504], [65504, 1]])
    with pytest.raises(ValueError, match="row 0"):
        index.add(np.array([[65520.0, 0.0]], np.float32))
    assert len(index) == 2


# ---------------------------------------------------------------------------- persistence


def _persisted_index(rng, quantization, refine, metric):
    X = clustered(rng, 600, 20)
    index = build(X, metric, quantization, refine, M=8, ef_construction=60, seed=3)
    index.remove([5, 17, 300])
    index.add(clustered(rng, 40, 20) * 1.5, np.arange(2000, 2040))  # some clipped
    return index


def _assert_same_index(a, b, Q, same_capacity=True):
    assert len(a) == len(b) and a.quantization == b.quantization and a.refine == b.refine
    assert a.drift == b.drift
    if same_capacity:
        assert a.memory_bytes() == b.memory_bytes()
    else:
        # Capacity is not saved (a loaded index reserves exactly its slots, float32 too).
        assert b.memory_bytes() <= a.memory_bytes()
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.get_items(a.ids), b.get_items(b.ids))
    for kw in ({}, {"ef": 10}, {"filter": a.ids[::3]}):
        da, ia = a.query(Q, k=7, **kw)
        db, ib = b.query(Q, k=7, **kw)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(da, db)


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine", "mahalanobis"])
@pytest.mark.parametrize("refine", [None, 0])
@pytest.mark.parametrize("quantization", QUANTS)
def test_save_load_pickle_round_trip(rng, tmp_path, quantization, refine, metric):
    index = _persisted_index(rng, quantization, refine, metric)
    Q = clustered(rng, 20, 20)
    path = tmp_path / "q.idx"
    index.save(path)
    for back in (pysim.HNSWIndex.load(path), pickle.loads(pickle.dumps(index))):
        _assert_same_index(index, back, Q, same_capacity=False)
        _assert_same_index(back, pickle.loads(pickle.dumps(back)), Q)
        # A loaded index keeps working: the same add gives the same index as on the original.
        more = clustered(np.random.default_rng(8), 30, 20)
        copy = pickle.loads(pickle.dumps(index))
        copy.add(more, threads=1)
        back.add(more, threads=1)
        _assert_same_index(copy, back, Q)
        back.remove(back.ids[:4])
        back.refit()
        d, i = back.query(Q, k=5)
        assert np.isin(i, back.ids).all() and (np.diff(d, axis=1) >= 0).all()


def _state_blob(index, edit):
    meta, arrays = index._get_state()
    edit(meta, arrays)
    return _persist.dumps("hnsw", meta, arrays)


def _drop(name):
    return lambda meta, arrays: arrays.pop(name)


def _retype(name, dtype):
    def edit(meta, arrays):
        arrays[name] = arrays[name].astype(dtype)

    return edit


def _shorten(name):
    def edit(meta, arrays):
        arrays[name] = arrays[name][:-1]

    return edit


def _set_meta(key, value):
    return lambda meta, arrays: meta.__setitem__(key, value)


def _nan_at(name):
    def edit(meta, arrays):
        a = arrays[name].copy()
        a[0] = np.nan
        arrays[name] = a

    return edit


DAMAGE = {
    "drop q_codes": _drop("q_codes"),
    "drop q_lo": _drop("q_lo"),
    "drop q_drift": _drop("q_drift"),
    "drop q_full": _drop("q_full"),
    "q_lo float64": _retype("q_lo", np.float64),
    "q_codes int16": _retype("q_codes", np.int16),
    "q_full float64": _retype("q_full", np.float64),
    "q_drift int64": _retype("q_drift", np.int64),
    "short q_codes": _shorten("q_codes"),
    "short q_step": _shorten("q_step"),
    "short q_seen_hi": _shorten("q_seen_hi"),
    "nan q_seen_lo": _nan_at("q_seen_lo"),
    "quantization int8": _set_meta("quantization", "int8"),
    "quantization None": _set_meta("quantization", None),
    "quantization swapped": None,  # filled per case: another valid kind
    "refine -1": _set_meta("refine", -1),
    "refine flipped": None,  # 0 <-> 32: the float32 copy no longer matches
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("refine", [None, 0])
@pytest.mark.parametrize("quantization", QUANTS)
def test_damaged_quantised_state_is_rejected(rng, tmp_path, quantization, refine, damage):
    index = _persisted_index(rng, quantization, refine, "sqeuclidean")
    edit = DAMAGE[damage]
    if damage == "quantization swapped":
        other = {"f16": "sq4", "bf16": "sq8", "sq8": "f16", "sq4": "bf16"}[quantization]
        edit = _set_meta("quantization", other)
    elif damage == "refine flipped":
        edit = _set_meta("refine", 0 if index.refine != 0 else 32)
    _, arrays = index._get_state()
    target = next((w for w in damage.split() if w.startswith("q_")), None)
    if target is not None:
        assert target in arrays  # every quantised state stores all q_ arrays
        if arrays[target].size == 0 and not damage.startswith("drop"):
            return  # an empty array (no copy with refine=0, no ranges for f16) stays valid
    blob = _state_blob(index, edit)
    path = tmp_path / "bad.idx"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="bad.idx"):
        pysim.HNSWIndex.load(path)
    with pytest.raises(ValueError, match="corrupt pysim pickle"):
        _rebuild(pysim.HNSWIndex, blob)


@pytest.mark.parametrize("quantization", QUANTS)
def test_truncated_and_flipped_quantised_files(rng, tmp_path, quantization):
    index = _persisted_index(rng, quantization, 0, "sqeuclidean")
    path = tmp_path / "q.idx"
    index.save(path)
    good = path.read_bytes()
    bad = tmp_path / "bad.idx"
    for cut in (len(good) // 3, len(good) // 2, len(good) - 100, len(good) - 1):
        bad.write_bytes(good[:cut])
        with pytest.raises(ValueError, match="bad.idx"):
            pysim.HNSWIndex.load(bad)
    for pos in np.random.default_rng(4).integers(64, len(good), 20).tolist():
        data = bytearray(good)
        data[pos] ^= 0x5A
        bad.write_bytes(bytes(data))
        with pytest.raises(ValueError, match="bad.idx"):
            pysim.HNSWIndex.load(bad)


# ---------------------------------------------------------------------------- drift and refit


def _drift_data(seed=5, d=16):
    rng = np.random.default_rng(seed)
    A = rng.random((2000, d)).astype(np.float32)  # fit: every dimension in [0, 1]
    B = (3 * rng.random((1000, d))).astype(np.float32)  # drifted: [0, 3]
    QB = (B[:200] + 0.01 * rng.standard_normal((200, d))).astype(np.float32)
    return A, B, QB


@pytest.mark.parametrize("refine", [0, 32])
def test_drift_is_counted_and_refit_recovers(refine):
    A, B, QB = _drift_data()
    X = np.vstack([A, B])
    _, truth = ref_knn(X, QB, 10, "sqeuclidean")
    index = build(A, "sqeuclidean", "sq8", refine)
    assert index.drift == {"rows_at_fit": 2000, "rows_since_fit": 0, "clipped_since_fit": 0}
    index.add(B, threads=1)
    # Clipped: an element whose code would fall outside [0, L - 1] before clamping, i.e.
    # more than half a step outside the fitted min / max.
    lo, hi = A.min(axis=0).astype(np.float64), A.max(axis=0).astype(np.float64)
    v = (B - lo) / ((hi - lo) / 255)
    clipped = int(((v < -0.5) | (v > 255.5)).sum())
    assert index.drift == {
        "rows_at_fit": 2000,
        "rows_since_fit": 1000,
        "clipped_since_fit": clipped,
    }
    before = overlap_recall(index.query(QB, k=10)[1], truth)
    assert before < 0.9, before  # clipped codes cannot tell the new rows apart
    if refine > 0:
        index.refit()
        assert index.drift == {"rows_at_fit": 3000, "rows_since_fit": 0, "clipped_since_fit": 0}
        after = overlap_recall(index.query(QB, k=10)[1], truth)
    else:
        # Without a float32 copy the clipped values are lost: refit widens the ranges (to every
        # row ever seen), then the drifted batch is stored again under them.
        index.remove(np.arange(2000, 3000))
        index.refit()
        assert index.drift == {"rows_at_fit": 3000, "rows_since_fit": 0, "clipped_since_fit": 0}
        index.add(B, np.arange(2000, 3000), threads=1)
        assert index.drift == {"rows_at_fit": 3000, "rows_since_fit": 1000, "clipped_since_fit": 0}
        after = overlap_recall(index.query(QB, k=10)[1], truth)
        got = index.get_items(np.arange(2000, 3000)).astype(np.float64)
        half = (np.maximum(A.max(0), B.max(0)) - np.minimum(A.min(0), B.min(0))) / 510
        assert (np.abs(got - B) <= half + 1e-5).all()
    assert after >= 0.95, (before, after)


def test_refit_without_copy_keeps_unclipped_rows_within_two_half_steps():
    A, B, _ = _drift_data(seed=6)
    index = build(A, "sqeuclidean", "sq8", 0)
    index.add(B, threads=1)
    index.refit()
    old_half = (A.max(0) - A.min(0)) / 510
    new_half = (np.maximum(A.max(0), B.max(0)) - np.minimum(A.min(0), B.min(0))) / 510
    got = index.get_items(np.arange(2000)).astype(np.float64)
    assert (np.abs(got - A) <= old_half + new_half + 1e-5).all()


@pytest.mark.parametrize("quantization", ["f16", "bf16", None])
def test_refit_is_a_no_op_without_scalar_codes(rng, quantization):
    X = _spread_rows(rng, 300, 12)
    index = build(X, "sqeuclidean", quantization)
    index.add(X * 10, np.arange(1000, 1300))
    Q = _spread_rows(rng, 10, 12)
    items, res, mem = index.get_items(index.ids), index.query(Q, k=5), index.memory_bytes()
    zero = {"rows_at_fit": 0, "rows_since_fit": 0, "clipped_since_fit": 0}
    assert index.drift == zero
    index.refit()
    assert index.drift == zero and index.memory_bytes() == mem
    np.testing.assert_array_equal(index.get_items(index.ids), items)
    np.testing.assert_array_equal(index.query(Q, k=5)[1], res[1])


# ---------------------------------------------------------------------------- memory, refine


@pytest.mark.parametrize("quantization", QUANTS)
def test_refine_zero_saves_the_float32_copy(rng, quantization):
    X = rng.standard_normal((1000, 48)).astype(np.float32)
    m0 = build(X, "sqeuclidean", quantization, 0, max_elements=1000).memory_bytes()
    m32 = build(X, "sqeuclidean", quantization, 32, max_elements=1000).memory_bytes()
    assert m32 - m0 >= 4 * 48 * 1000
    assert m32 - m0 <= 4 * 48 * 1000 * 1.6 + 4096


@pytest.mark.parametrize("metric, d", [("sqeuclidean", 128), ("cosine", 384), ("euclidean", 784)])
def test_sq8_without_copy_stores_vectors_in_under_0_3_of_float32(rng, metric, d):
    n = 1500
    X = rng.standard_normal((n, d)).astype(np.float32)
    f32 = build(X, metric, None, max_elements=n, M=16, seed=1)
    sq8 = build(X, metric, "sq8", 0, max_elements=n, M=16, seed=1)
    assert f32.capacity == sq8.capacity == n
    vectors_f32 = 4 * d * n
    graph = f32.memory_bytes() - vectors_f32  # the float32 index keeps rows in its node records
    codes = sq8.memory_bytes() - graph
    assert codes <= 0.3 * vectors_f32 + 64 * 1024, codes / vectors_f32


def _same_ef_gap(X, Q, metric, truth):
    r32 = overlap_recall(build(X, metric, None, threads=2).query(Q, k=10, ef=64)[1], truth)
    rq = overlap_recall(build(X, metric, "sq8", 0, threads=2).query(Q, k=10, ef=64)[1], truth)
    return r32, rq


def test_sq8_without_copy_recall_within_a_point_of_float32_mnist(mnist_subset):
    X, Q, (_, truth) = mnist_subset
    r32, rq = _same_ef_gap(X, Q, "euclidean", truth)
    assert rq >= r32 - 0.01, (rq, r32)


def test_sq8_without_copy_recall_within_a_point_of_float32_minilm(minilm_subset):
    X, Q, (_, truth) = minilm_subset
    r32, rq = _same_ef_gap(X, Q, "cosine", truth)
    assert rq >= r32 - 0.01, (rq, r32)


@pytest.mark.parametrize("data", ["gauss32", "clustered64"])
def test_sq8_without_copy_synthetic_is_limited_by_its_codes_only(data):
    """On synthetic Gaussian / clustered data the 8-bit codes themselves lose recall.

    Per-dimension ranges span the whole cloud (or every cluster), so a step is coarse next to
    the gaps between near neighbours: an exact scan over the decoded codes already misses
    some of the true top 10 (measured 0.98 / 0.97 here, 0.95 on 100k x 128 clustered data).
    The 1-point recall target holds on the real embeddings (MNIST, MiniLM tests above);
    here the graph walk must stay within 1.5 points of what its codes allow, and the float32
    copy (the default refine) must give float32's recall back.
    """
    X, Q = synthetic(np.random.default_rng(31), data, 500)
    _, truth = ref_knn(X, Q, 10, "sqeuclidean")
    r32, rq = _same_ef_gap(X, Q, "sqeuclidean", truth)
    codes = build(X, "sqeuclidean", "sq8", 0, threads=2)
    decoded = codes.get_items(np.arange(len(X)))
    _, scan = ref_knn(decoded, Q, 10, "sqeuclidean")
    ceiling = overlap_recall(scan, truth)
    assert rq >= min(r32, ceiling) - 0.015, (rq, r32, ceiling)
    copy = build(X, "sqeuclidean", "sq8", None, threads=2)
    assert overlap_recall(copy.query(Q, k=10, ef=64)[1], truth) >= r32 - 0.005


# ---------------------------------------------------------------------------- bad input


def test_bad_quantization_arguments():
    with pytest.raises(ValueError, match="quantization"):
        pysim.HNSWIndex(4, quantization="int8")
    with pytest.raises(ValueError, match="quantization"):
        pysim.HNSWIndex(4, quantization="SQ8")
    with pytest.raises(TypeError, match="quantization"):
        pysim.HNSWIndex(4, quantization=8)
    with pytest.raises(ValueError, match="refine"):
        pysim.HNSWIndex(4, quantization="sq8", refine=-1)
    with pytest.raises(TypeError, match="refine"):
        pysim.HNSWIndex(4, quantization="sq8", refine=1.5)
    with pytest.raises(ValueError, match="refine"):
        pysim.HNSWIndex(4, refine=4)
    assert pysim.HNSWIndex(4, quantization="sq8").refine is None  # 2 * k
    assert pysim.HNSWIndex(4, quantization="f16").refine == 0
    assert pysim.HNSWIndex(4).quantization is None and pysim.HNSWIndex(4).refine == 0


@pytest.mark.parametrize("refine", [None, 3])
def test_f16_overflow_names_the_row_and_leaves_the_index_unchanged(rng, refine):
    X = rng.standard_normal((300, 8)).astype(np.float32)
    index = build(X, "sqeuclidean", "f16", refine)
    Q = rng.standard_normal((10, 8)).astype(np.float32)
    before = index.query(Q, k=5)
    mem, drift = index.memory_bytes(), index.drift
    bad = rng.standard_normal((5, 8)).astype(np.float32)
    bad[3, 2] = 1e6
    with pytest.raises(ValueError, match="row 3"):
        index.add(bad, np.arange(1000, 1005))
    with pytest.raises(ValueError, match="row 0"):
        index.add(bad[3:4], [7])  # replacing an existing id: still rejected, old vector kept
    assert len(index) == 300 and 1000 not in index and index.memory_bytes() == mem
    assert index.drift == drift
    after = index.query(Q, k=5)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(
        index.get_items([7]), build(X, "sqeuclidean", "f16", refine).get_items([7])
    )


@pytest.mark.parametrize("quantization", QUANTS)
def test_nan_rows_rejected_before_fitting(quantization):
    index = pysim.HNSWIndex(3, quantization=quantization)
    with pytest.raises(ValueError):
        index.add(np.array([[0.0, 1.0, np.nan]]))
    assert len(index) == 0
    # The rejected batch did not fit the ranges: the next (first real) batch does.
    X = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], np.float32)
    index.add(X)
    if quantization.startswith("sq"):
        assert index.drift == {"rows_at_fit": 2, "rows_since_fit": 0, "clipped_since_fit": 0}
    np.testing.assert_allclose(index.get_items([0, 1]), X, atol=3 / 510 + 1e-6)


# ---------------------------------------------------------------------------- float32 guarantees


@pytest.mark.parametrize("refine", [None, 0])
@pytest.mark.parametrize("quantization", QUANTS)
def test_filters_selective_are_exact_among_allowed(rng, quantization, refine):
    X = clustered(rng, 3000, 16)
    Q = clustered(rng, 20, 16)
    ids = np.arange(3000) * 3 + 7
    index = build(X, "sqeuclidean", quantization, refine, ids=ids, threads=2)
    allowed = ids[rng.choice(3000, 25, replace=False)]
    allowed_rows = (allowed - 7) // 3
    for filt in (allowed, set(allowed.tolist()), lambda i: i in set(allowed.tolist())):
        dists, nbrs = index.query(Q, k=10, filter=filt)
        assert np.isin(nbrs, allowed).all()
        # Exact among allowed, over what is stored (the float copy, or the decoded records).
        S = index.get_items(allowed)
        D = stored_dist(index, Q[:, None, :], S[None])
        order = np.lexsort((np.broadcast_to(allowed, D.shape), D), axis=1)[:, :10]
        want_ids = allowed[order]
        gap = np.sort(D, axis=1)
        clear = gap[:, 10] - gap[:, 9] > 1e-4 * (1 + gap[:, 9])  # no near-tie at the k-th
        np.testing.assert_array_equal(nbrs[clear], want_ids[clear])
        np.testing.assert_allclose(dists, np.take_along_axis(D, order, 1), rtol=1e-4, atol=1e-4)
        if index.refine != 0:
            want_d, _ = ref_knn(X[allowed_rows], Q, 10, "sqeuclidean")
            np.testing.assert_allclose(dists, want_d, rtol=1e-4, atol=1e-4)
    # A broad filter goes through the graph: only allowed ids, recall still high.
    half = ids[::2]
    _, nbrs = index.query(Q, k=10, filter=half)
    assert np.isin(nbrs, half).all()
    assert overlap_recall(nbrs, stored_truth(index, half, Q)) >= 0.9


@pytest.mark.parametrize("refine", [None, 0])
@pytest.mark.parametrize("quantization", QUANTS)
def test_remove_readd_and_replace(rng, quantization, refine):
    X = clustered(rng, 1500, 16)
    Q = clustered(rng, 40, 16)
    index = build(X, "sqeuclidean", quantization, refine, threads=2)
    gone = rng.choice(1500, 700, replace=False)
    index.remove(gone)
    assert len(index) == 800 and not any(int(g) in index for g in gone[:20])
    _, nbrs = index.query(Q, k=10)
    assert not np.isin(nbrs, gone).any() and (nbrs >= 0).all()
    keep = np.setdiff1d(np.arange(1500), gone)
    assert overlap_recall(nbrs, stored_truth(index, keep, Q)) >= 0.9
    # Re-add the removed ids with their vectors: the index is whole again.
    index.add(X[gone], gone, threads=2)
    assert len(index) == 1500
    _, nbrs = index.query(Q, k=10)
    assert overlap_recall(nbrs, stored_truth(index, np.arange(1500), Q)) >= 0.9
    # Replacing an id's vector: its new position is what queries find.
    target = 123
    new = (Q[0] + 1e-3).astype(np.float32)
    index.add(new[None], [target])
    d, i = index.query(Q[:1], k=1)
    assert i[0, 0] == target
    got = index.get_items([target])[0]
    if index.refine != 0:
        np.testing.assert_array_equal(got, new)
    assert d[0, 0] == pytest.approx(
        float(np.sum((Q[0].astype(np.float64) - got) ** 2)), rel=1e-4, abs=1e-5
    )


def add_while_reading(index, X, reader, done, *, refit=False):
    """Two threads run `reader` while rows 1000.. of X are added in batches of 500 (then a
    refit, if asked); `done` tells the readers to stop, and they are joined before returning."""
    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for start in range(1000, len(X), 500):
            index.add(X[start : start + 500], np.arange(start, start + 500), threads=1)
        if refit:
            index.refit()
    finally:
        done.set()
        for t in threads:
            t.join()


@pytest.mark.parametrize("quantization", QUANTS)
def test_concurrent_queries_while_adding(rng, quantization):
    X = clustered(rng, 4000, 16)
    Q = clustered(rng, 50, 16)
    index = build(X[:1000], "sqeuclidean", quantization, threads=1)
    errors = []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                d, i = index.query(Q, k=5, threads=1)
                assert (((i >= 0) & (i < 4000)) | (i == -1)).all()
                assert ((i == -1) == np.isinf(d)).all()
                finite = np.where(np.isinf(d), np.float32(3e38), d)
                assert (np.diff(finite, axis=1) >= 0).all()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    add_while_reading(index, X, reader, done, refit=True)
    assert not errors, errors[0]
    assert len(index) == 4000
    _, truth = ref_knn(X, Q, 10, "sqeuclidean")
    assert overlap_recall(index.query(Q, k=10)[1], truth) >= 0.95


@pytest.mark.parametrize("refine", [None, 0])
@pytest.mark.parametrize("quantization", QUANTS)
def test_single_thread_builds_are_deterministic(rng, quantization, refine):
    X = clustered(rng, 1200, 20)
    Q = clustered(rng, 30, 20)
    a = build(X, "cosine", quantization, refine, seed=11, threads=1)
    b = build(X, "cosine", quantization, refine, seed=11, threads=1)
    da, ia = a.query(Q, k=10, threads=2)
    db, ib = b.query(Q, k=10, threads=1)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(da, db)
    ma, aa = a._get_state()
    mb, ab = b._get_state()
    assert ma == mb
    for name in aa:
        np.testing.assert_array_equal(aa[name], ab[name], err_msg=name)


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
@pytest.mark.parametrize("refine", [None, 0])
@pytest.mark.parametrize("quantization", QUANTS)
def test_every_isa_builds_and_queries(isa, quantization, refine, metric):
    rng = np.random.default_rng(3)
    X = clustered(rng, 700, 33)  # odd dim: kernel tails
    Q = clustered(rng, 40, 33)
    # threads=1: a deterministic graph, so the recall floor tests the kernels, not a build's
    # thread interleaving (concurrency has its own tests).
    index = build(X, metric, quantization, refine, threads=1)
    dists, nbrs = index.query(Q, k=10)
    assert ((nbrs >= 0) & (nbrs < 700)).all() and (np.diff(dists, axis=1) >= 0).all()
    S = index.get_items(nbrs.ravel()).reshape(40, 10, -1)
    want = stored_dist(index, Q[:, None, :], S)
    np.testing.assert_array_less(np.abs(dists - want), tol(index, Q[:, None, :], S))
    _, truth = ref_knn(X, Q, 10, metric)
    r = overlap_recall(nbrs, truth)
    floor = 0.5 if (quantization == "sq4" and index.refine == 0) else 0.9
    assert r >= floor, (isa, r)


@pytest.mark.parametrize("quantization", [None, "sq8"])
def test_concurrent_queries_while_adding_return_k_results(quantization):
    """With 1000+ live points, k=5 queries must return 5 ids even while another thread adds.

    A query can greedy-descend through an upper-level link to a node whose level-0 list is not
    written yet; the search then seeds level 0 from that node's upper-level neighbours
    (search.hpp, level0_seeds) instead of returning the node alone.
    """
    short = 0
    for trial in range(2):
        rng = np.random.default_rng(trial)
        X = clustered(rng, 4000, 16)
        Q = clustered(rng, 50, 16)
        index = build(X[:1000], "sqeuclidean", quantization, threads=1)
        done = threading.Event()
        counts = []

        def reader(index=index, Q=Q, done=done, counts=counts):
            n = 0
            while not done.is_set():
                _, i = index.query(Q, k=5, threads=1)
                n += int((i == -1).any(axis=1).sum())
            counts.append(n)

        add_while_reading(index, X, reader, done)
        short += sum(counts)
    assert short == 0, f"{short} query rows came back with fewer than k ids"
