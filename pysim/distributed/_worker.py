"""What lives on a Dask worker: the shards, their input logs, and the tasks that touch them.

Why worker-local state instead of Dask data (or actors): a shard is never a Dask key, so the
scheduler cannot copy it to another worker, spill it, or recompute it behind our back; it
lives in a table attached to the ``Worker`` object (keyed by index uid, shard number and role)
and every task that touches it is submitted with a strict ``workers=[address]`` restriction.
Only small things travel as Dask data: query blocks, per-shard top-k answers, row pieces on
their way to a shard, and serialized shards while a replica is cloned. ``dask.sizeof`` is
registered for the shard classes anyway, so that if a user ever does hold one as a Dask
result, the scheduler sees its real size.

Roles: ``"index"`` is a searchable shard (one per replica); ``"log"`` is the input log that
lets a ``replicas=1`` shard be rebuilt elsewhere: every add (rows and ids as sent, and the
thread count used) and remove since the last save, on top of a reference to the saved file
(or a serialized snapshot, when the log itself had to be recreated). Replaying a log with one
thread per add rebuilds the very same graph.
"""

from __future__ import annotations

import threading
import weakref
import zlib
from typing import Any

import numpy as np
from dask.sizeof import sizeof

from .. import _persist
from .._brute import BruteForceIndex
from .._hnsw import HNSWIndex
from . import _io
from ._merge import merge_pair, pad_result  # noqa: F401 - merge_pair is shipped as a task

_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TABLE_LOCK = threading.Lock()
BRUTE_KIND = "sharded-brute"
_BRUTE_FORMAT = 1


class ShardMissingError(LookupError):
    """The shard a task was sent to is not on this worker (it restarted, or the shard moved)."""


# ------------------------------------------------------------------------------ shard classes


class HnswShard:
    """One HNSW shard: an :class:`~pysim.HNSWIndex` with the caller's ids."""

    kind = "hnsw"

    def __init__(self, dim: int, metric: str, params: dict[str, Any]) -> None:
        self.index = HNSWIndex(dim, metric, **params)

    def add(self, rows: np.ndarray, ids: np.ndarray, threads: int) -> None:
        self.index.add(rows, ids, threads=threads)

    def remove(self, ids: np.ndarray) -> None:
        self.index.remove(ids)

    def query(self, Q, k, ef, allowed, threads):
        return self.index.query(Q, k, ef=ef, threads=threads, filter=allowed)

    def ids(self) -> np.ndarray:
        return self.index.ids

    def __len__(self) -> int:
        return len(self.index)

    def memory_bytes(self) -> int:
        return int(self.index.memory_bytes())

    def state(self) -> tuple[str, dict, dict]:
        meta, arrays = self.index._get_state()
        return "hnsw", meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict) -> HnswShard:
        obj = cls.__new__(cls)
        obj.index = HNSWIndex._from_state(meta, arrays)
        return obj


class BruteShard:
    """One exact shard: a :class:`~pysim.BruteForceIndex` whose rows are kept sorted by id.

    Sorted rows make the index's tie rule (smaller row first) the contract's (smaller id
    first), so the merged answer is exactly the one a single index over the union gives.
    Appending ids above the current largest is an amortised append; anything else rebuilds
    the (already mapped) rows in id order.
    """

    kind = "brute"

    def __init__(self, dim: int, metric: str, params: dict[str, Any]) -> None:
        self.dim, self.metric = dim, metric
        self.VI = params.get("VI")
        self._lock = threading.Lock()
        self._state: tuple[BruteForceIndex | None, np.ndarray] = (None, np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self._state[1])

    def ids(self) -> np.ndarray:
        return self._state[1].copy()

    def memory_bytes(self) -> int:
        index, ids = self._state
        data = 0 if index is None else index._state[0].nbytes + index._state[1].nbytes
        return int(data + ids.nbytes)

    def _rebuilt(self, data: np.ndarray, ids: np.ndarray) -> BruteForceIndex:
        index = self._state[0]
        meta, arrays = index._get_state()
        arrays = dict(arrays, data=np.ascontiguousarray(data))
        meta = dict(meta, n=len(data))
        return BruteForceIndex._from_state(meta, arrays)

    def add(self, rows: np.ndarray, ids: np.ndarray, threads: int) -> None:
        order = np.argsort(ids, kind="stable")
        rows, ids = np.ascontiguousarray(rows[order]), ids[order]
        with self._lock:
            index, cur = self._state
            if index is None:
                self._state = (BruteForceIndex(rows, self.metric, VI=self.VI), ids)
                return
            if not len(cur) or ids[0] > cur[-1]:
                index.add(rows)  # strong guarantee; queries keep the arrays they started with
                self._state = (index, np.concatenate([cur, ids]))
                return
            mapped = BruteForceIndex(rows, self.metric, VI=self.VI)._state[0]
            data = np.concatenate([index._state[0], mapped.astype(index.dtype, copy=False)])
            all_ids = np.concatenate([cur, ids])
            order = np.argsort(all_ids, kind="stable")
            self._state = (self._rebuilt(data[order], all_ids[order]), all_ids[order])

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            index, cur = self._state
            keep = ~np.isin(cur, ids)
            self._state = (self._rebuilt(index._state[0][keep], cur[keep]), cur[keep])

    def query(self, Q, k, ef, allowed, threads):
        index, ids = self._state
        if index is None or not len(ids):
            return pad_result(len(Q), k, Q.dtype)
        if allowed is not None:
            rows = np.flatnonzero(np.isin(ids, allowed))
            if not len(rows):
                return pad_result(len(Q), k, index.dtype)
            sub = index if len(rows) == len(ids) else self._subset(index, rows)
        else:
            rows, sub = None, index
        dist, found = sub.query(Q, k, threads=threads)
        if rows is not None and sub is not index:
            found = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
        return dist, np.where(found >= 0, ids[np.maximum(found, 0)], -1)

    def _subset(self, index: BruteForceIndex, rows: np.ndarray) -> BruteForceIndex:
        meta, arrays = index._get_state()
        arrays = dict(arrays, data=np.ascontiguousarray(arrays["data"][rows]))
        return BruteForceIndex._from_state(dict(meta, n=len(rows)), arrays)

    def state(self) -> tuple[str, dict, dict]:
        index, ids = self._state
        meta = {"format": _BRUTE_FORMAT, "dim": self.dim, "metric": self.metric, "n": len(ids)}
        arrays: dict[str, np.ndarray] = {"ids": ids}
        if self.VI is not None:
            arrays["shard_VI"] = np.asarray(self.VI, dtype=np.float64)
        if index is not None:
            bmeta, barrays = index._get_state()
            meta["brute"] = bmeta
            arrays.update({"b_" + k: v for k, v in barrays.items()})
        return BRUTE_KIND, meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict) -> BruteShard:
        if meta.get("format") != _BRUTE_FORMAT:
            raise ValueError(f"unknown sharded brute-force format {meta.get('format')!r}")
        VI = arrays.get("shard_VI")
        obj = cls(int(meta["dim"]), str(meta["metric"]), {"VI": VI})
        ids = np.ascontiguousarray(arrays["ids"], dtype=np.int64)
        if ids.ndim != 1 or len(ids) != meta["n"] or (len(ids) > 1 and (np.diff(ids) <= 0).any()):
            raise ValueError("ids are not a sorted 1-D array of the header's length")
        if "brute" in meta:
            barrays = {k[2:]: v for k, v in arrays.items() if k.startswith("b_")}
            index = BruteForceIndex._from_state(meta["brute"], barrays)
            if len(index) != len(ids):
                raise ValueError("row count does not match the ids")
            obj._state = (index, ids)
        elif len(ids):
            raise ValueError("ids without rows")
        return obj


SHARD_CLASSES = {"hnsw": HnswShard, "brute": BruteShard}
_FILE_KINDS = {"hnsw": "hnsw", "brute": BRUTE_KIND}


def new_shard(kind: str, dim: int, metric: str, params: dict[str, Any]):
    """An empty shard of `kind`."""
    return SHARD_CLASSES[kind](dim, metric, params)


def shard_from_bytes(kind: str, blob: bytes, source: str):
    """A shard from its container bytes (its class's file format); ValueError naming `source`."""
    meta, arrays = _persist.loads(blob, _FILE_KINDS[kind], source)
    try:
        return SHARD_CLASSES[kind].from_state(meta, arrays)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OverflowError) as exc:
        raise ValueError(f"{source}: not a valid pysim {kind} shard ({exc})") from None


def shard_to_bytes(shard) -> bytes:
    kind, meta, arrays = shard.state()
    return _persist.dumps(kind, meta, arrays)


class InputLog:
    """Everything needed to rebuild one shard: a base (saved file or snapshot) and the adds
    and removes since, in order. Entries are tagged with the operation's token so a failed
    operation can be taken back out."""

    kind = "log"

    def __init__(self) -> None:
        self.entries: list[tuple] = []
        self._lock = threading.Lock()

    def append(self, token: str, entry: tuple) -> None:
        with self._lock:
            self.entries.append((token, entry))

    def pop(self, token: str) -> None:
        with self._lock:
            self.entries = [e for e in self.entries if e[0] != token]

    def reset(self, token: str, entry: tuple) -> None:
        with self._lock:
            self.entries = [(token, entry)]

    def snapshot(self) -> list[tuple]:
        with self._lock:
            return [e for _, e in self.entries]

    def memory_bytes(self) -> int:
        total = 0
        for _, entry in self.entries:
            total += sum(x.nbytes if isinstance(x, np.ndarray) else 64 for x in entry)
        return total


for _cls in (HnswShard, BruteShard, InputLog):
    sizeof.register(_cls)(lambda obj: obj.memory_bytes())
sizeof.register(HNSWIndex)(lambda obj: int(obj.memory_bytes()))
sizeof.register(BruteForceIndex)(lambda obj: int(obj._state[0].nbytes + obj._state[1].nbytes))


# ------------------------------------------------------------------------------ worker table


def _worker():
    from distributed import get_worker

    return get_worker()


def _table() -> dict:
    w = _worker()
    with _TABLE_LOCK:
        table = _TABLES.get(w)
        if table is None:
            table = _TABLES[w] = {}
        return table


def _threads() -> int:
    w = _worker()
    n = getattr(w, "nthreads", None) or getattr(getattr(w, "state", None), "nthreads", 1)
    return max(1, int(n))


def _get(uid: str, shard: int, role: str):
    obj = _table().get((uid, shard, role))
    if obj is None:
        raise ShardMissingError(
            f"shard {shard} ({role}) of index {uid} is not on {_worker().address}"
        )
    return obj


# ------------------------------------------------------------------------------ tasks


def task_create(uid: str, shard: int, role: str, kind: str, dim: int, metric: str, params: dict):
    """Create an empty shard (role "index") or an empty input log (role "log")."""
    obj = new_shard(kind, dim, metric, params) if role == "index" else InputLog()
    _table()[(uid, shard, role)] = obj
    return True


def _concat(pieces: list) -> tuple[np.ndarray, np.ndarray]:
    pieces = [p for p in pieces if p is not None and len(p[1])]
    if len(pieces) == 1:
        return pieces[0]
    return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])


def task_add(uid: str, shard: int, token: str, pieces: list, threads: int | None):
    """Add the rows of every piece, in one call (all or nothing for this shard)."""
    obj = _get(uid, shard, "index")
    rows, ids = _concat(pieces)
    if len(ids):
        obj.add(rows, ids, threads or _threads())
    return len(ids)


def task_log_add(uid: str, shard: int, token: str, pieces: list, threads: int | None):
    """Record an add in the input log (the rows as sent, and the thread count used)."""
    rows, ids = _concat(pieces)
    if len(ids):
        _get(uid, shard, "log").append(token, ("add", rows, ids, threads))
    return len(ids)


def task_remove(uid: str, shard: int, ids: np.ndarray):
    _get(uid, shard, "index").remove(ids)
    return len(ids)


def task_log_remove(uid: str, shard: int, token: str, ids: np.ndarray):
    _get(uid, shard, "log").append(token, ("remove", ids))
    return len(ids)


def task_log_pop(uid: str, shard: int, token: str):
    """Take a failed operation back out of the log."""
    _get(uid, shard, "log").pop(token)
    return True


def task_query(uid: str, shard: int, Q: np.ndarray, k: int, ef, allowed):
    """This shard's top k for every query row."""
    return _get(uid, shard, "index").query(Q, k, ef, allowed, _threads())


def task_export(uid: str, shard: int) -> bytes:
    """The shard serialized (its file format), to clone a replica or snapshot a log."""
    return shard_to_bytes(_get(uid, shard, "index"))


def task_install(uid: str, shard: int, kind: str, blob: bytes, as_log: bool):
    """Install a serialized shard as a replica, or as the base of a new input log."""
    if as_log:
        log = InputLog()
        log.reset("snapshot", ("blob", blob))
        _table()[(uid, shard, "log")] = log
    else:
        _table()[(uid, shard, "index")] = shard_from_bytes(kind, blob, f"replica of shard {shard}")
    return True


def task_log_entries(uid: str, shard: int) -> list[tuple]:
    """The input log's entries (travel to the worker that rebuilds the shard)."""
    return _get(uid, shard, "log").snapshot()


def task_rebuild(uid: str, shard: int, kind: str, dim: int, metric: str, params: dict, entries):
    """Rebuild a lost shard from its input log: base (file or snapshot), then adds/removes."""
    obj = new_shard(kind, dim, metric, params)
    for entry in entries:
        if entry[0] == "file":
            obj = _load_file(kind, entry[1], entry[2])
        elif entry[0] == "blob":
            obj = shard_from_bytes(kind, entry[1], f"snapshot of shard {shard}")
        elif entry[0] == "add":
            obj.add(entry[1], entry[2], entry[3] or _threads())
        else:
            obj.remove(entry[1])
    _table()[(uid, shard, "index")] = obj
    return len(obj)


def _load_file(kind: str, path: str, crc: int | None):
    blob = _io.read_bytes(path)
    if crc is not None and zlib.crc32(blob) != crc:
        raise ValueError(f"{path!r}: shard file does not match the manifest (checksum)")
    return shard_from_bytes(kind, blob, repr(path))


def task_save(uid: str, shard: int, path: str) -> dict:
    """Write this shard to `path` (atomic; the container is checksummed)."""
    blob = shard_to_bytes(_get(uid, shard, "index"))
    _io.write_bytes(path, blob)
    return {"size": len(blob), "crc32": zlib.crc32(blob)}


def task_load(uid: str, shard: int, kind: str, path: str, crc: int | None) -> np.ndarray:
    """Load a saved shard as this worker's replica; returns its ids."""
    obj = _load_file(kind, path, crc)
    _table()[(uid, shard, "index")] = obj
    return obj.ids()


def task_log_base(uid: str, shard: int, token: str, path: str, crc: int) -> bool:
    """After a save: the log restarts from the saved file (its rows are no longer kept)."""
    _get(uid, shard, "log").reset(token, ("file", path, crc))
    return True


def task_drop(uid: str, shard: int, role: str) -> bool:
    """Forget one shard or log of index `uid` on this worker (it was replaced elsewhere)."""
    return _table().pop((uid, shard, role), None) is not None


def task_ids(uid: str, shard: int) -> np.ndarray:
    return _get(uid, shard, "index").ids()


# ------------------------------------------------------------------ client.run helpers


def run_drop(uid: str, dask_worker=None) -> int:
    """Forget every shard and log of index `uid` on this worker (client.run)."""
    table = _TABLES.get(dask_worker, {})
    keys = [key for key in list(table) if key[0] == uid]
    for key in keys:
        table.pop(key, None)
    return len(keys)


def run_inventory(dask_worker=None) -> list[tuple[str, int, str, int, int]]:
    """(uid, shard, role, rows, bytes) of every shard and log on this worker (client.run)."""
    out = []
    for (uid, shard, role), obj in list(_TABLES.get(dask_worker, {}).items()):
        rows = len(obj) if role == "index" else len(obj.entries)
        out.append((uid, shard, role, rows, int(obj.memory_bytes())))
    return out


def run_shards_in_dask_data(dask_worker=None) -> int:
    """How many values in the worker's Dask data store are shard objects (should be 0)."""
    kinds = (HnswShard, BruteShard, InputLog, HNSWIndex, BruteForceIndex)
    return sum(isinstance(v, kinds) for v in list(dask_worker.data.values()))


def task_route(block: np.ndarray, ids: np.ndarray, ctx: dict) -> dict[int, tuple]:
    """Validate one block of a dask array and split it by shard (``id % S``)."""
    dtype = np.dtype(ctx["dtype"])
    rows = np.asarray(block)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    from .._validation import as_matrix, to_array

    rows = as_matrix(to_array(rows, "X"), "X", dtype, check_finite=ctx["kind"] != "hnsw")
    if ctx["kind"] == "hnsw":
        HNSWIndex(ctx["dim"], ctx["metric"], **ctx["params"])._rows(rows, "X", added=True)
    else:
        BruteForceIndex(rows, ctx["metric"], VI=ctx["params"].get("VI"))
    return split_rows(rows, ids, ctx["S"])


def by_shard(owner: np.ndarray) -> dict[int, np.ndarray]:
    """``{shard: positions}``: where each shard of `owner` (one shard number per item) is."""
    return {s: np.flatnonzero(owner == s) for s in np.unique(owner).tolist()}


def split_rows(rows: np.ndarray, ids: np.ndarray, n_shards: int) -> dict[int, tuple]:
    """The routing rule: ``{shard: (rows, ids)}`` with the row of id ``i`` in shard ``i % S``."""
    return {
        s: (np.ascontiguousarray(rows[sel]), ids[sel])
        for s, sel in by_shard(ids % n_shards).items()
    }


def pick_piece(routed: dict, shard: int):
    """One shard's piece of a routed block (None when the block has no rows for it)."""
    return routed.get(shard)


def task_load_log(uid: str, shard: int, path: str, crc: int) -> bool:
    """A new input log whose base is a saved shard file (checked to exist and match)."""
    blob = _io.read_bytes(path)
    if zlib.crc32(blob) != crc:
        raise ValueError(f"{path!r}: shard file does not match the manifest (checksum)")
    log = InputLog()
    log.reset("load", ("file", path, crc))
    _table()[(uid, shard, "log")] = log
    return True
