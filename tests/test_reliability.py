"""Regression tests for the adversarial review (issue 19): each failed before its fix.

Grouped as the issue is: data loss and crashes, silent wrong answers, clear errors. The
concurrency scenarios (adds crossing the renumbering threshold, saves during adds) are in
test_concurrency_stress.py; this file holds the deterministic ones and one quick concurrent
save check.
"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import pysim

INT64_MAX = 2**63 - 1


# --- data loss and crashes -------------------------------------------------------------------


def test_default_id_overflow_is_refused_and_state_stays_loadable():
    X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    index = pysim.HNSWIndex(4)
    index.add(X[:2], ids=[0, INT64_MAX])
    with pytest.raises(ValueError, match="default ids"):
        index.add(X[2:3])
    assert sorted(index.ids.tolist()) == [0, INT64_MAX]
    np.testing.assert_array_equal(index.get_items([0])[0], X[0])  # id 0 not overwritten
    copy = pickle.loads(pickle.dumps(index))
    assert sorted(copy.ids.tolist()) == [0, INT64_MAX]
    index.add(X[2:3], ids=[5])  # explicit ids still work
    assert 5 in index


def test_default_ids_up_to_the_last_one():
    X = np.ones((2, 3), np.float32)
    index = pysim.HNSWIndex(3)
    index.add(X[:1], ids=[INT64_MAX - 1])
    index.add(X[1:])  # gets 2**63 - 1, the last id
    assert INT64_MAX in index
    with pytest.raises(ValueError, match="default ids"):
        index.add(X[:1])


@pytest.mark.parametrize("quantization", [None, "sq8"])
def test_save_and_pickle_during_add_always_load(tmp_path, quantization):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6000, 8)).astype(np.float32)
    index = pysim.HNSWIndex(8, M=8, ef_construction=32, quantization=quantization)
    index.add(X[:500], threads=1)
    blobs: list[bytes] = []
    done = threading.Event()

    def snapshots():
        j = 0
        while not done.is_set():
            index.save(tmp_path / f"s{j % 4}.pysim")
            pysim.HNSWIndex.load(tmp_path / f"s{j % 4}.pysim")
            blobs.append(pickle.dumps(index))
            j += 1

    t = threading.Thread(target=snapshots)
    t.start()
    try:
        for s in range(500, 6000, 250):  # levels rise while snapshots are taken
            index.add(X[s : s + 250], threads=2)
    finally:
        done.set()
        t.join()
    assert blobs
    for blob in blobs:
        copy = pickle.loads(blob)
        _, ids = copy.query(X[:3], k=1)
        assert (ids >= 0).all()
