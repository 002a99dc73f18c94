"""Fuzzed loaders: the checked container of pysim._persist, and the PersistMixin built on it.

Every damaged input must end in ValueError (naming the path for files, "corrupt pysim pickle"
for pickles), never in another exception or a crash, and never allocate more than a small
multiple of its own size. Two kinds of damage are fed:

- a deterministic sweep (every truncation length, three XOR patterns on every byte of the
  framing and JSON header, a sample of payload bytes), so each header field is hit every run;
- Hypothesis cases (hardening_tools.corruptions): random flips, wrong magic/version/lengths,
  absurd shapes (2^62 elements and beyond) and rewritten header fields with a *recomputed*
  checksum, so the field checks behind the CRC are exercised too, plus random bytes.

The same helpers run against every index's load / unpickling in tests for those indexes; here
a small PersistMixin subclass stands in for an index, so the mixin's own paths are covered.
"""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
from hardening_tools import (
    AllocationMeter,
    address_space_cap,
    check_blob_rejected,
    check_file_rejected,
    corruptions,
    exhaustive_corruptions,
    report,
    seal,
    split_container,
    unpickler_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysim import _persist
from pysim._index_base import PersistMixin

KIND = "fuzz"
FUZZ_EXAMPLES = int(os.environ.get("PYSIM_FUZZ_EXAMPLES", "1000"))
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def make_valid() -> bytes:
    """A small but representative container: several dtypes, 2-D, 1-D, 0-d and empty arrays."""
    rng = np.random.default_rng(2024)
    arrays = {
        "data": rng.standard_normal((7, 5)).astype(np.float32),
        "ids": np.arange(7, dtype=np.int64),
        "norms": rng.random(7),
        "empty": np.zeros((0, 5), dtype=np.float32),
        "scalar": np.array(3, dtype=np.int32),
        "codes": rng.integers(0, 255, (3, 4), dtype=np.uint8),
    }
    meta = {"dim": 5, "metric": "euclidean", "n": 7, "params": {"M": 16, "ef": 64}}
    return _persist.dumps(KIND, meta, arrays)


VALID = make_valid()


def loads_file(path: str):
    return _persist.load(path, KIND)


def loads_pickle(blob: bytes):
    return _persist.loads_pickle(blob, KIND)


def test_valid_container_round_trips(tmp_path):
    meta, arrays = _persist.loads(VALID, KIND, "test")
    assert meta["n"] == 7 and arrays["data"].shape == (7, 5) and arrays["scalar"].shape == ()
    path = tmp_path / "ok.idx"
    _persist.save(path, KIND, meta, arrays)
    meta2, arrays2 = _persist.load(path, KIND)
    assert meta2 == meta
    for name, arr in arrays.items():
        np.testing.assert_array_equal(arrays2[name], arr)
        assert arrays2[name].dtype == arr.dtype
    header, payload = split_container(VALID)
    assert seal(json.dumps(header, sort_keys=True).encode(), payload) == VALID


def test_every_truncation_and_header_byte_flip(tmp_path, request):
    path = str(tmp_path / "damaged.idx")
    cases = 0
    with AllocationMeter() as meter:
        for what, data in exhaustive_corruptions(VALID):
            check_file_rejected(loads_file, data, path, meter, what)
            check_blob_rejected(loads_pickle, data, meter, what)
            cases += 2
    report(
        request.config,
        f"fuzz persist (sweep): {cases} damaged inputs, all ValueError; {meter.summary()}",
    )


@pytest.mark.parametrize("target", ["file", "pickle"])
def test_fuzzed_containers(tmp_path, request, target):
    path = str(tmp_path / "fuzzed.idx")
    counts = {"rejected": 0, "loaded": 0}

    with AllocationMeter() as meter:

        @FUZZ_SETTINGS
        @given(corruptions(VALID))
        def run(case):
            what, data, may_succeed = case
            if target == "file":
                ok = check_file_rejected(
                    loads_file, data, path, meter, what, may_succeed=may_succeed
                )
            else:
                ok = check_blob_rejected(loads_pickle, data, meter, what, may_succeed=may_succeed)
            if ok:
                # A consistent-after-damage file: what it returns must be self-consistent.
                meta, arrays = loads_pickle(data) if target == "pickle" else loads_file(path)
                assert isinstance(meta, dict)
                assert all(isinstance(a, np.ndarray) for a in arrays.values())
            counts["loaded" if ok else "rejected"] += 1

        run()
    report(
        request.config,
        f"fuzz persist ({target}, hypothesis): {sum(counts.values())} cases, "
        f"{counts['rejected']} ValueError, {counts['loaded']} still-valid after resealing, "
        f"0 other exceptions; {meter.summary()}",
    )


@pytest.mark.parametrize(
    "dims",
    [[2**62], [2**62 - 1, 2], [2**31, 2**31, 2**31], [2**63], [2**64 + 7], [-1], [True, 5]],
)
def test_absurd_claimed_sizes_are_rejected_without_allocating(tmp_path, dims):
    header, payload = split_container(VALID)
    header["arrays"][0]["shape"] = dims
    data = seal(json.dumps(header).encode(), payload)
    with AllocationMeter() as meter:
        check_file_rejected(loads_file, data, str(tmp_path / "big.idx"), meter, f"shape {dims}")
        check_blob_rejected(loads_pickle, data, meter, f"shape {dims}")
    assert meter.worst_bytes < 1 << 20


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"PYSIMIDX",
        None,
        42,
        "PYSIMIDX",
        memoryview(np.arange(64, dtype=np.uint8)[::2]),  # non-contiguous buffer
        memoryview(VALID)[::-1],
    ],
    ids=["empty", "magic-only", "none", "int", "str", "strided", "reversed"],
)
def test_pickle_loader_rejects_non_containers(blob):
    with pytest.raises(ValueError, match="corrupt pysim pickle"):
        _persist.loads_pickle(blob, KIND)


def test_wrong_kind_names_both(tmp_path):
    path = tmp_path / "other.idx"
    path.write_bytes(_persist.dumps("hnsw", {}, {}))
    with pytest.raises(ValueError, match="'hnsw'") as err:
        _persist.load(path, KIND)
    assert str(path) in str(err.value)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_device_and_fifo_are_not_read_unbounded(tmp_path):
    # Capped, so that a regression fails with MemoryError instead of exhausting the machine.
    with address_space_cap(256 << 20), pytest.raises(ValueError, match="regular file") as err:
        _persist.load("/dev/zero", KIND)
    assert "/dev/zero" in str(err.value)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer, so open() does not block
        try:
            with pytest.raises(ValueError, match="regular file"):
                _persist.load(fifo, KIND)
        finally:
            os.close(fd)


def test_missing_file_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        _persist.load(tmp_path / "absent.idx", KIND)


# --------------------------------------------------------------------------------------------
# Atomic save


class _Boom(Exception):
    pass


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "index.idx"
    _persist.save(path, KIND, {"v": 1}, {"a": np.arange(3.0)})
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise _Boom

    for attr in ("fsync", "replace"):
        with monkeypatch.context() as m:
            m.setattr(_persist.os, attr, fail)
            with pytest.raises(_Boom):
                _persist.save(path, KIND, {"v": 2}, {"a": np.arange(1000.0)})
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["index.idx"]


def test_interrupted_save_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "index.idx"
    real_write = io.BufferedWriter.write
    calls = {"n": 0}

    class Writer(io.BufferedWriter):
        def write(self, b):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            return real_write(self, b)

    real_fdopen = os.fdopen
    monkeypatch.setattr(
        _persist.os, "fdopen", lambda fd, mode: Writer(real_fdopen(fd, mode, buffering=0))
    )
    with pytest.raises(KeyboardInterrupt):
        _persist.save(path, KIND, {}, {"a": np.arange(10.0), "b": np.arange(5)})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# The PersistMixin paths (save / load / pickle) with a stand-in index


class ToyIndex(PersistMixin):
    """The smallest index: rows and ids. Its _from_state checks meta against the arrays the way
    a real index must (sizes from the header are never trusted on their own)."""

    _KIND = "toy"

    def __init__(self, data: np.ndarray, ids: np.ndarray):
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)

    def query(self) -> np.ndarray:
        """What a loaded index is used for: rows looked up by id."""
        return self.data[np.argsort(self.ids)]

    def _get_state(self):
        return {"n": len(self.ids), "dim": self.data.shape[1]}, {"data": self.data, "ids": self.ids}

    @classmethod
    def _from_state(cls, meta, arrays):
        n, dim = meta["n"], meta["dim"]
        if type(n) is not int or type(dim) is not int or n < 0 or dim < 1:
            raise ValueError("bad n or dim")
        data, ids = arrays["data"], arrays["ids"]
        if data.dtype != np.float32 or data.shape != (n, dim):
            raise ValueError(f"data has shape {data.shape}, expected ({n}, {dim})")
        if ids.dtype != np.int64 or ids.shape != (n,):
            raise ValueError("ids do not match n")
        return cls(data.copy(), ids.copy())


def _toy() -> ToyIndex:
    rng = np.random.default_rng(7)
    return ToyIndex(rng.standard_normal((6, 3)), np.arange(10, 16))


TOY_BLOB = _toy().__reduce__()[1][1]
toy_unpickle = unpickler_for(_toy())


def test_toy_index_save_load_pickle(tmp_path):
    toy = _toy()
    toy.save(tmp_path / "toy.idx")
    for back in (ToyIndex.load(tmp_path / "toy.idx"), pickle.loads(pickle.dumps(toy))):
        np.testing.assert_array_equal(back.data, toy.data)
        np.testing.assert_array_equal(back.ids, toy.ids)


# The same fuzzing harness as test_fuzzed_containers over another payload (a toy index's state):
# kept as two readable tests rather than one parametrised over generators, so a failure names its
# layer (duplicates pairs them).
@pytest.mark.parametrize("target", ["file", "pickle"])
def test_fuzzed_index_state(tmp_path, request, target):
    path = str(tmp_path / "toy.idx")
    counts = {"rejected": 0, "loaded": 0}
    with AllocationMeter() as meter:

        @FUZZ_SETTINGS
        @given(corruptions(TOY_BLOB))
        def run(case):
            what, data, may_succeed = case
            kwargs = {"may_succeed": may_succeed, "exercise": ToyIndex.query}
            if target == "file":
                ok = check_file_rejected(ToyIndex.load, data, path, meter, what, **kwargs)
            else:
                ok = check_blob_rejected(toy_unpickle, data, meter, what, **kwargs)
            counts["loaded" if ok else "rejected"] += 1

        run()
    report(
        request.config,
        f"fuzz PersistMixin ({target}, hypothesis): {sum(counts.values())} cases, "
        f"{counts['rejected']} ValueError, {counts['loaded']} still-valid; {meter.summary()}",
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_unpickle(blob):
    with pytest.raises(ValueError, match="corrupt pysim pickle"):
        toy_unpickle(blob)


# --------------------------------------------------------------------------------------------
# The same deterministic sweep over a real quantised HNSW file (the q_* arrays: ranges, codes,
# observed ranges, drift counters, float32 copy) through HNSWIndex.load and unpickling.


def _quantized_hnsw_blob(quantization: str, refine: int | None) -> bytes:
    import pysim

    rng = np.random.default_rng(11)
    index = pysim.HNSWIndex(
        5, "sqeuclidean", M=3, ef_construction=12, seed=2, quantization=quantization, refine=refine
    )
    index.add(rng.standard_normal((24, 5)).astype(np.float32), threads=1)
    index.add(3 * rng.standard_normal((6, 5)).astype(np.float32), threads=1)  # some clipped
    index.remove([2, 7])
    return index.__reduce__()[1][1]


@pytest.mark.parametrize("quantization, refine", [("sq8", None), ("sq4", 0), ("f16", 0)])
def test_quantized_hnsw_truncation_and_flip_sweep(tmp_path, request, quantization, refine):
    import pysim
    from pysim._index_base import _rebuild

    blob = _quantized_hnsw_blob(quantization, refine)
    path = str(tmp_path / "q.idx")
    cases = 0
    with AllocationMeter() as meter:
        for what, data in exhaustive_corruptions(blob):
            check_file_rejected(pysim.HNSWIndex.load, data, path, meter, what)
            check_blob_rejected(lambda b: _rebuild(pysim.HNSWIndex, b), data, meter, what)
            cases += 2
    report(
        request.config,
        f"fuzz persist (quantised HNSW {quantization}, sweep): {cases} damaged inputs, all "
        f"ValueError; {meter.summary()}",
    )
