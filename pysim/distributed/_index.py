"""ShardedIndex: one pysim index per shard, each pinned to a Dask worker.

Why it is built this way:

* The client keeps only what routing needs: the live ids (sorted int64) and, for each, the
  shard that owns it (int32) - 12 bytes per vector, against the 512 bytes of a 128-d float32
  vector, which stay on the workers. Every bad argument (dimension, metric, k, duplicate or
  present ids, a dask array's dtype or shape) is therefore refused on the client before any
  worker is touched.
* Routing rule: a row with id ``i`` goes to shard ``i % S``, ``S`` being the number of shards
  when it is added (growth adds shards; rows already placed stay where they are, the owner
  table says where). Default ids continue from the largest id ever added, so consecutive
  adds spread evenly.
* A query runs one task per shard (one replica of each), pinned to the shard's worker, and
  a tree of merge tasks on the workers; the client receives the final ``(m, k)`` answer
  only. A dask-array query becomes one lazy task per block of rows that does the same fan-out
  from inside the cluster, so its outputs are lazy arrays chunked like the queries.
* Shards are never Dask data (see ``_worker``): the scheduler cannot copy or move them.
"""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _persist
from .._brute import BruteForceIndex
from .._hnsw import HNSWIndex, _as_ids, _new_ids
from .._index_base import check_result_size, prepare_queries
from .._validation import MAX_K, as_matrix, check_int, check_metric, resolve_metric, to_array
from . import _cluster as C
from . import _io
from . import _worker as W
from ._cluster import ShardFailureError

_KINDS = ("hnsw", "brute")
_MANIFEST = "manifest.pysim"
_MANIFEST_KIND = "sharded-manifest"
_MANIFEST_FORMAT = 1
_INT64_MAX = np.iinfo(np.int64).max
_EMPTY = np.empty(0, np.int64)
#: Row pieces above this size travel by ``client.scatter`` (straight to the shard's worker)
#: instead of inside the task (keeps the scheduler's graphs small).
_INLINE_BYTES = 1 << 16


def _resolve_client(client: Any):
    from distributed import Client, get_client

    if client is not None:
        if not isinstance(client, Client):
            raise TypeError(f"client must be a distributed.Client or None, got {client!r}")
        return client
    try:
        return get_client()
    except ValueError:
        raise ValueError(
            "ShardedIndex needs a running Dask cluster and no client was found: start one "
            "with `from distributed import Client; client = Client()` (a LocalCluster on "
            "this machine) or `Client('scheduler-address:8786')`, then pass client=client "
            "or create the index while it is the current client"
        ) from None


def _is_dask_array(x: Any) -> bool:
    return type(x).__module__.startswith("dask.array") or (
        hasattr(x, "dask") and hasattr(x, "chunks") and hasattr(x, "to_delayed")
    )


def _jsonable_params(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    if out.get("VI") is not None:
        out["VI"] = np.asarray(out["VI"], dtype=np.float64).tolist()
    return out


def _finalize(client, uid: str) -> None:
    """Release the workers' memory of a garbage-collected index (best effort)."""
    try:
        if client.status == "running":
            client.run(W.run_drop, uid, wait=False)
    except Exception:  # noqa: BLE001 - interpreter or cluster shutting down
        pass


class ShardedIndex:
    """A nearest-neighbour index split into shards that live on Dask workers.

    Parameters
    ----------
    dim : int
        Vector dimension.
    metric : {"sqeuclidean", "euclidean", "cosine", "ip", "mahalanobis"}, default="sqeuclidean"
        Distance of every shard.
    kind : {"hnsw", "brute"}, default="hnsw"
        ``"hnsw"``: each shard is an :class:`~pysim.HNSWIndex` built with `index_params`
        (``M``, ``ef_construction``, ``seed``, ``VI``, ``quantization``, ``refine``, ...).
        ``"brute"``: each shard is an exact :class:`~pysim.BruteForceIndex` (`index_params`:
        ``VI`` only), and answers equal a single ``BruteForceIndex`` over the union.
    n_shards : int, optional
        Number of shards. Default: one per worker now, and more as workers join (later
        adds create shards on workers that hold none).
    replicas : {1, 2}, default=1
        Copies of each shard, on distinct workers. With 2, queries fail over to the other
        copy when a worker dies, and the copy is re-made on another worker. With 1, each
        shard's input log (rows and ids added since the last :meth:`save`, on top of that
        save) is kept on another worker, and a lost shard is rebuilt from it. A log is never
        kept on its own shard's worker (it would be lost with it): on a one-worker cluster
        there is none until a second worker joins, and the shard is then snapshotted there.
    client : distributed.Client, optional
        Default: the current client (``distributed.get_client()``).
    **index_params
        Keyword arguments of the shard class.

    Notes
    -----
    Memory. ``replicas=2`` doubles the workers' memory (two full shards). ``replicas=1``
    keeps, besides each shard, the rows added since the last save (``n * dim * 4`` bytes
    for float32, plus 8 per id) on another worker; a save turns each log into a reference
    to the saved file, so saving regularly bounds it. The client holds 12 bytes per vector
    (id and owning shard).

    Workers leaving and joining. A dead worker's shards are restored on the next call that
    needs them (from the other replica, or the input log), on the workers still alive; every
    query returns the same answer as without the failure. Workers that join later receive
    new shards at the next :meth:`add` (only with ``n_shards=None``) and restored copies;
    shards already placed are not moved (there is no rebalancing).

    Threads. Each shard's work runs with the worker's thread count; with one thread per
    worker, adds are deterministic, so a rebuilt shard is identical to the lost one.

    Examples
    --------
    >>> from distributed import Client
    >>> from pysim.distributed import ShardedIndex
    >>> client = Client(n_workers=2, threads_per_worker=1)  # doctest: +SKIP
    >>> index = ShardedIndex(128, "euclidean", M=16)          # doctest: +SKIP
    >>> index.add(X)                                          # doctest: +SKIP
    >>> dist, ids = index.query(Q, k=10)                      # doctest: +SKIP
    """

    def __init__(
        self,
        dim: int,
        metric: str = "sqeuclidean",
        *,
        kind: str = "hnsw",
        n_shards: int | None = None,
        replicas: int = 1,
        client: Any = None,
        **index_params: Any,
    ) -> None:
        dim = check_int(dim, "dim", 1, 1 << 24)
        metric = check_metric(metric)
        if kind not in _KINDS:
            raise ValueError(f"kind must be 'hnsw' or 'brute', got {kind!r}")
        replicas = check_int(replicas, "replicas", 1, 2)
        if n_shards is not None:
            n_shards = check_int(n_shards, "n_shards", 1, 1 << 15)
        params = self._check_params(kind, dim, metric, index_params)
        client = _resolve_client(client)
        workers = sorted(C.alive(client))
        if not workers:
            raise ValueError("the Dask cluster has no workers; start some before creating it")
        if replicas > len(workers):
            raise ValueError(
                f"replicas={replicas} needs at least {replicas} workers, got {len(workers)}"
            )
        uid = uuid.uuid4().hex
        spec = {
            "uid": uid,
            "kind": kind,
            "dim": dim,
            "metric": metric,
            "params": _jsonable_params(params),
            "replicas": replicas,
            "holders": [],
            "version": 0,
        }
        self._init_local(client, spec, grow=n_shards is None, dtype=None)
        self._create_shards(n_shards or len(workers), workers)

    # -- construction helpers ----------------------------------------------------------------

    @staticmethod
    def _check_params(kind: str, dim: int, metric: str, params: dict[str, Any]) -> dict:
        if kind == "hnsw":
            HNSWIndex(dim, metric, **params)  # the shard class's own errors, on the client
            return dict(params)
        unknown = sorted(set(params) - {"VI"})
        if unknown:
            raise TypeError(f"kind='brute' takes only VI as an index parameter, got {unknown}")
        resolve_metric(metric, params.get("VI"), dim)
        return dict(params)

    def _init_local(self, client, spec: dict, *, grow: bool, dtype) -> None:
        self._client = client
        self._spec = spec
        self._uid = spec["uid"]
        self._grow = grow
        self._dtype = None if dtype is None else np.dtype(dtype)
        self._ids = _EMPTY
        self._owner = np.empty(0, np.int32)
        self._next_id = 0
        self._turn = 0
        self._mutex = threading.RLock()
        self._closed = False
        params = dict(spec["params"])
        if spec["kind"] == "hnsw":
            self._probe: Any = HNSWIndex(spec["dim"], spec["metric"], **params)
            self._mapped = self._probe._L is not None
        else:
            self._probe = None
            self._mapped = spec["metric"] == "mahalanobis"
        self._finalizer = weakref.finalize(self, _finalize, client, self._uid)
        client.set_metadata(C.key(self._uid), spec)

    def _create_shards(self, count: int, workers: list[str]) -> None:
        """Add `count` empty shards, placed round-robin from the least loaded workers."""
        spec = self._spec
        start = len(spec["holders"])
        new = C.plan_holders(0, count, workers, spec["replicas"])
        jobs = []
        for j, holders in enumerate(new):
            for addr, role in holders:
                args = (self._uid, start + j, role, spec["kind"], spec["dim"], spec["metric"])
                jobs.append(
                    (C.submit(self._client, W.task_create, *args, spec["params"], addr=addr), addr)
                )
        results = C.outcomes(self._client, jobs)
        bad = [r for r in results if r[0] != "ok"]
        if bad:
            raise (
                bad[0][1]
                if bad[0][0] == "error"
                else RuntimeError("a worker died while the shards were being created; try again")
            )
        spec = dict(spec, holders=list(spec["holders"]) + new, version=spec["version"] + 1)
        self._publish(spec)

    def _publish(self, spec: dict) -> None:
        self._client.set_metadata(C.key(self._uid), spec)
        self._spec = spec

    # -- properties --------------------------------------------------------------------------
    # One-line read-only views of the spec, one per attribute (duplicates pairs them by shape).

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self._spec["dim"])

    @property
    def metric(self) -> str:
        """The metric name."""
        return str(self._spec["metric"])

    @property
    def kind(self) -> str:
        """Shard class: "hnsw" or "brute"."""
        return str(self._spec["kind"])

    @property
    def replicas(self) -> int:
        """Copies of each shard (1 or 2)."""
        return int(self._spec["replicas"])

    @property
    def n_shards(self) -> int:
        """Number of shards."""
        return len(self._spec["holders"])

    @property
    def client(self):
        """The Dask client the index uses."""
        return self._client

    @property
    def ids(self) -> np.ndarray:
        """Live ids, ascending, int64 of shape (len(index),)."""
        return self._ids.copy()

    @property
    def shard_sizes(self) -> dict[int, int]:
        """Live points per shard: ``{shard: count}`` for every shard."""
        counts = np.bincount(self._owner, minlength=self.n_shards)
        return {s: int(c) for s, c in enumerate(counts)}

    @property
    def placement(self) -> dict[int, list[tuple[str, str]]]:
        """Where each shard lives: ``{shard: [(worker address, "index" | "log"), ...]}``."""
        self._spec = self._client.get_metadata(C.key(self._uid))
        return {s: [tuple(h) for h in hs] for s, hs in enumerate(self._spec["holders"])}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: Any) -> bool:
        if isinstance(id, bool) or not isinstance(id, (int, np.integer)):
            return False
        pos = np.searchsorted(self._ids, int(id)) if 0 <= int(id) <= _INT64_MAX else len(self)
        return bool(pos < len(self._ids) and self._ids[pos] == int(id))

    def __repr__(self) -> str:
        return (
            f"ShardedIndex(dim={self.dim}, metric={self.metric!r}, kind={self.kind!r}, "
            f"n_shards={self.n_shards}, replicas={self.replicas}, n={len(self)})"
        )

    # -- locking and healing -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the ShardedIndex is closed")

    def _begin(self) -> dict:
        """The current spec, healed (called under the index's lock)."""
        spec = self._client.get_metadata(C.key(self._uid))
        spec = C.heal_locked(self._client, spec)
        self._spec = spec
        return spec

    def _grow_shards(self) -> None:
        live = C.alive(self._client)
        used = {a for hs in self._spec["holders"] for a, r in hs if r == "index"}
        fresh = sorted(live - used)
        if fresh:
            self._create_shards(len(fresh), fresh + sorted(used & live))

    # -- validation --------------------------------------------------------------------------

    def _rows(self, X: Any) -> np.ndarray:
        """Rows as they are sent to the shards, checked on the client."""
        arr = to_array(X, "X")
        if self.kind == "hnsw":
            rows = as_matrix(
                arr, "X", np.float64 if self._mapped else np.float32, check_finite=False
            )
            self._check_columns(rows.shape[1], "X")
            self._probe._rows(rows, "X", added=True)  # NaN, magnitude: HNSWIndex's own checks
            return rows
        dtype = self._dtype or (np.float32 if arr.dtype == np.float32 else np.float64)
        rows = as_matrix(arr, "X", dtype)
        self._check_columns(rows.shape[1], "X")
        BruteForceIndex(rows, self.metric, VI=self._spec["params"].get("VI"))  # value checks
        return rows

    def _new_ids(self, ids: Any, n: int) -> np.ndarray:
        if ids is None:
            if self._next_id + n - 1 > _INT64_MAX:
                raise ValueError("default ids would exceed the int64 range; pass ids")
            return np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        if _is_dask_array(ids):
            ids = ids.compute()
        arr, uniq = _new_ids(ids, n)
        present = uniq[self._has(uniq)]
        if present.size:
            raise ValueError(
                f"ids already in the index: {present[:5].tolist()}"
                + (" ..." if present.size > 5 else "")
                + " (remove them first)"
            )
        return arr

    def _check_columns(self, cols: int, name: str) -> None:
        if cols != self.dim:
            raise ValueError(
                f"{name} must have {self.dim} columns (the index dimension), got {cols}"
            )

    def _owners(self, ids: np.ndarray) -> np.ndarray:
        """The shard owning each of `ids` (all present in the index), int32."""
        if not len(ids):
            return np.empty(0, np.int32)
        return self._owner[np.searchsorted(self._ids, ids)]

    def _has(self, ids: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self._ids, ids), max(len(self._ids) - 1, 0))
        return (self._ids[pos] == ids) if len(self._ids) else np.zeros(len(ids), bool)

    # -- mutation ----------------------------------------------------------------------------

    def add(self, X: Any, ids: Any = None) -> None:
        """Add rows; each goes to shard ``id % n_shards``.

        Parameters
        ----------
        X : ndarray or dask.array.Array, shape (n, dim) or (dim,)
            Vectors. A dask array is never gathered on the client: each block is validated
            and split by shard on a worker, and the pieces travel to their shards' workers.
        ids : array-like of int of shape (n,), optional
            Ids (int64 >= 0, distinct, not in the index). Default: consecutive ids from one
            above the largest id ever added.

        Raises
        ------
        ValueError, TypeError
            Wrong shape or dtype, NaN or infinity, bad or present ids: nothing is added.
        ShardFailureError
            A worker died during the add: the shards it lists (``.shards``) did not take
            their rows (``.ids``); every other shard did. Failed shards are restored first.

        Notes
        -----
        All or nothing per shard: a shard takes all of its rows of this call in one
        ``add``, or none.
        """
        self._check_open()
        if _is_dask_array(X):
            self._add_dask(X, ids)
            return
        rows = self._rows(X)
        id_arr = self._new_ids(ids, rows.shape[0])
        if not len(id_arr):
            return
        with self._mutex, C.lock(self._client, self._uid):
            self._begin()
            if self._grow:
                self._grow_shards()
            S = self.n_shards
            owner = (id_arr % S).astype(np.int32)
            pieces = {}
            for s, piece in W.split_rows(rows, id_arr, S).items():
                if piece[0].nbytes > _INLINE_BYTES:
                    addr = C.index_holders(self._spec, s)[0]
                    [piece] = self._client.scatter([piece], workers=[addr], hash=False)
                pieces[s] = [piece]
            self._apply_add(pieces, id_arr, owner)
        if self.kind == "brute" and self._dtype is None:
            self._dtype = rows.dtype

    def _apply_add(self, pieces: dict[int, list], id_arr: np.ndarray, owner: np.ndarray) -> None:
        token = uuid.uuid4().hex
        jobs, where = [], []
        for s, plist in pieces.items():
            for addr, role in self._spec["holders"][s]:
                fn = W.task_add if role == "index" else W.task_log_add
                jobs.append(
                    (C.submit(self._client, fn, self._uid, s, token, plist, None, addr=addr), addr)
                )
                where.append((s, role, addr))
        failed = self._settle(jobs, where, token)
        ok = ~np.isin(owner, failed)
        self._ids, self._owner = self._merge_ids(id_arr[ok], owner[ok])
        self._next_id = max(self._next_id, int(id_arr.max()) + 1)
        if failed:
            raise self._failure("add", failed, id_arr[~ok])

    def _settle(self, jobs, where, token: str) -> list[int]:
        """Wait for a mutation's tasks; per shard all or nothing. Returns the failed shards."""
        results = C.outcomes(self._client, jobs)
        by_shard: dict[int, list] = {}
        for (s, role, addr), res in zip(where, results, strict=True):
            by_shard.setdefault(s, []).append((role, addr, res))
        failed, errors = [], []
        for s, items in by_shard.items():
            if any(role == "index" and res[0] == "ok" for role, _, res in items):
                continue
            failed.append(s)
            errors += [res[1] for _, _, res in items if res[0] == "error"]
            for role, addr, res in items:
                if role == "log" and res[0] == "ok":
                    C.outcomes(
                        self._client,
                        [
                            (
                                C.submit(
                                    self._client, W.task_log_pop, self._uid, s, token, addr=addr
                                ),
                                addr,
                            )
                        ],
                    )
        if failed:
            self._errors = errors
            try:
                self._spec = C.heal_locked(
                    self._client, self._client.get_metadata(C.key(self._uid))
                )
            except ShardFailureError:
                pass
        return sorted(failed)

    def _failure(self, what: str, failed: list[int], ids: np.ndarray) -> ShardFailureError:
        errors, self._errors = getattr(self, "_errors", []), []
        why = f"failed there ({errors[0]!r})" if errors else "their workers died during the call"
        exc = ShardFailureError(
            f"{what} did not reach shards {failed}: {why}; {len(ids)} ids (in .ids) did not "
            "take effect, the other shards did. The shards were restored; repeat the call "
            "for those ids.",
            failed,
            ids,
        )
        exc.__cause__ = errors[0] if errors else None
        return exc

    def _merge_ids(self, new: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.concatenate([self._ids, new])
        own = np.concatenate([self._owner, owner.astype(np.int32)])
        order = np.argsort(ids, kind="stable")
        return ids[order], own[order]

    def _add_dask(self, X: Any, ids: Any) -> None:
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2:
            raise ValueError(f"X must be a 1-D or 2-D array, got an array of shape {X.shape}")
        if any(np.isnan(c) for c in X.shape):
            raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first")
        self._check_columns(X.shape[1], "X")
        n = int(X.shape[0])
        id_arr = self._new_ids(ids, n)
        if not n:
            return
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        if self.kind == "hnsw":
            dtype = np.dtype(np.float64 if self._mapped else np.float32)
        else:
            dtype = self._dtype or np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
        bounds = np.cumsum((0,) + X.chunks[0])
        with self._mutex, C.lock(self._client, self._uid):
            self._begin()
            if self._grow:
                self._grow_shards()
            S = self.n_shards
            owner = (id_arr % S).astype(np.int32)
            blocks = self._client.compute(list(X.to_delayed().ravel()))
            ctx = {
                "kind": self.kind,
                "dim": self.dim,
                "metric": self.metric,
                "params": self._spec["params"],
                "dtype": dtype.str,
                "S": S,
            }
            routes = [
                self._client.submit(
                    W.task_route, blk, id_arr[bounds[j] : bounds[j + 1]], ctx, pure=False
                )
                for j, blk in enumerate(blocks)
            ]
            # Validation happens in the routing tasks: wait for all of them before any shard
            # is touched, so bad values (NaN, magnitude) leave the index unchanged.
            results = C.outcomes(self._client, [(r, "") for r in routes], fetch=False)
            for res in results:
                if res[0] == "error":
                    raise res[1]
            if any(res[0] != "ok" for res in results):
                raise RuntimeError(
                    "a worker died while the dask array was being split; nothing was added"
                )
            pieces: dict[int, list] = {}
            for j, route in enumerate(routes):
                for s in np.unique(owner[bounds[j] : bounds[j + 1]]).tolist():
                    pieces.setdefault(s, []).append(route)
            pieces = {
                s: [self._client.submit(W.pick_piece, r, s, pure=False) for r in rs]
                for s, rs in pieces.items()
            }
            self._apply_add(pieces, id_arr, owner)
            del blocks, routes
        if self.kind == "brute" and self._dtype is None:
            self._dtype = dtype

    def remove(self, ids: Any) -> None:
        """Remove points by id (routed to the shards that own them).

        Parameters
        ----------
        ids : int or array-like of int

        Raises
        ------
        KeyError
            An id is not in the index; nothing is removed then.
        ShardFailureError
            A worker died during the call; the listed shards did not remove their ids.
        """
        self._check_open()
        arr = np.unique(_as_ids(ids, "ids", lookup=True))
        if not len(arr):
            return
        missing = arr[~self._has(arr)]
        if missing.size:
            raise KeyError(f"id {int(missing[0])} is not in the index")
        with self._mutex, C.lock(self._client, self._uid):
            self._begin()
            owner = self._owners(arr)
            token = uuid.uuid4().hex
            jobs, where = [], []
            for s, sel in W.by_shard(owner).items():
                part = arr[sel]
                for addr, role in self._spec["holders"][s]:
                    if role == "index":
                        fut = C.submit(self._client, W.task_remove, self._uid, s, part, addr=addr)
                    else:
                        fut = C.submit(
                            self._client, W.task_log_remove, self._uid, s, token, part, addr=addr
                        )
                    jobs.append((fut, addr))
                    where.append((s, role, addr))
            failed = self._settle(jobs, where, token)
            done = ~np.isin(owner, failed)
            keep = ~np.isin(self._ids, arr[done])
            self._ids, self._owner = self._ids[keep], self._owner[keep]
            if failed:
                raise self._failure("remove", failed, arr[~done])

    # -- search ------------------------------------------------------------------------------

    def _result_dtype(self, Q: Any) -> np.dtype:
        if self.kind == "hnsw":
            return np.dtype(np.float32)
        if self._dtype is not None:
            return self._dtype
        return np.dtype(np.float32 if np.asarray(Q).dtype == np.float32 else np.float64)

    def _query_dtype(self, Q: Any) -> np.dtype:
        if self.kind == "hnsw":
            return np.dtype(np.float64 if self._mapped else np.float32)
        return self._result_dtype(Q)

    def _allowed(self, filter: Any) -> dict[int, np.ndarray] | None:
        """Allowed ids split by owning shard (ids not in the index are ignored)."""
        if filter is None:
            return None
        if callable(filter):
            ids = self._ids
            keep = np.fromiter((bool(filter(int(i))) for i in ids), dtype=bool, count=len(ids))
            arr = ids[keep]
        else:
            if isinstance(filter, (set, frozenset)):
                filter = np.fromiter(filter, dtype=np.int64, count=len(filter))
            arr = to_array(filter, "filter")
            if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                raise TypeError(
                    "filter must be a callable id -> bool or a 1-D array of allowed ids"
                )
            if arr.size and arr.dtype.kind == "u":
                arr = arr[arr <= _INT64_MAX]
            arr = np.unique(arr.astype(np.int64))
            arr = arr[self._has(arr)]
        return {s: arr[sel] for s, sel in W.by_shard(self._owners(arr)).items()}

    def query(
        self,
        Q: Any,
        k: int = 1,
        *,
        ef: int | None = None,
        filter: Callable[[int], bool] | Any = None,
    ):
        """The k nearest neighbours over every shard.

        Parameters
        ----------
        Q : ndarray or dask.array.Array, shape (m, dim) or (dim,)
            Queries.
        k : int, default=1
            Neighbours per query.
        ef : int, optional
            Beam width of each HNSW shard (default: the shard's ``ef``, ``max(k, 64)``).
        filter : array-like of int, set of int, or callable, optional
            Allowed ids; each shard receives only the ids it owns (a callable ``id -> bool``
            is evaluated on the client over :attr:`ids`).

        Returns
        -------
        distances : ndarray (or dask array), shape (m, k)
            Ascending, float32 for HNSW (the storage dtype for "brute"); ``inf`` padding.
        ids : ndarray (or dask array) of int64, shape (m, k)
            Ties broken by the smaller id; ``-1`` padding. For a dask ``Q`` both are lazy
            dask arrays chunked like ``Q``'s rows.
        """
        self._check_open()
        k = check_int(k, "k", 1, 2**63 - 1)
        if ef is not None:
            ef = check_int(ef, "ef", 1, MAX_K)
        if _is_dask_array(Q):
            return self._query_dask(Q, k, ef, filter)
        rows = prepare_queries(Q, self.dim, self._query_dtype(Q))
        if self._probe is not None:
            self._probe._rows(rows, "Q")
        dtype = self._result_dtype(Q)
        check_result_size(rows.shape[0], k, dtype)
        if k > MAX_K:
            raise ValueError(f"k must be <= {MAX_K}, got {k}")
        allowed = self._allowed(filter)
        if len(rows) == 0 or not len(self._ids):
            from ._merge import pad_result

            return pad_result(len(rows), k, dtype)
        self._turn += 1
        result, self._spec = C.search(
            self._client, self._uid, self._spec, rows, k, ef, allowed, dtype, self._turn
        )
        return result

    def _query_dask(self, Q: Any, k: int, ef, filter):
        import dask
        import dask.array as da

        if Q.dtype.kind not in "biuf":
            raise TypeError(f"Q must hold real numbers, got dtype {Q.dtype}")
        if Q.ndim == 1:
            Q = Q.reshape(1, -1)
        if Q.ndim != 2:
            raise ValueError(f"Q must be a 1-D or 2-D array, got an array of shape {Q.shape}")
        self._check_columns(Q.shape[1], "Q")
        if any(np.isnan(c) for c in Q.chunks[0]):
            raise ValueError("Q has unknown chunk sizes; call Q.compute_chunk_sizes() first")
        if k > MAX_K:
            raise ValueError(f"k must be <= {MAX_K}, got {k}")
        if len(Q.chunks[1]) > 1:
            Q = Q.rechunk({1: -1})
        dtype = self._result_dtype(np.empty(0, Q.dtype))
        ctx = {
            "dim": self.dim,
            "k": k,
            "ef": ef,
            "allowed": self._allowed(filter),
            "dtype": dtype.str,
            "qdtype": self._query_dtype(np.empty(0, Q.dtype)).str,
        }
        dists, idss = [], []
        for block, m in zip(Q.to_delayed()[:, 0], Q.chunks[0], strict=True):
            res = dask.delayed(C.query_block, pure=False)(block, self._uid, ctx)
            dists.append(da.from_delayed(res[0], (m, k), dtype=dtype))
            idss.append(da.from_delayed(res[1], (m, k), dtype=np.int64))
        return da.concatenate(dists, axis=0), da.concatenate(idss, axis=0)

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to the directory `path`: one file per shard, then the manifest.

        Parameters
        ----------
        path : str or os.PathLike
            A directory every worker can write (local on one machine, shared storage on a
            cluster) or an fsspec URL. Each shard is written by its worker, atomically, in
            its class's checksummed format (an HNSW shard file loads with
            ``pysim.HNSWIndex.load``); ``manifest.pysim`` is written last.

        Notes
        -----
        With ``replicas=1`` the input logs restart from the saved files afterwards (their
        rows are dropped from memory), so the directory must stay in place while the index
        is in use.
        """
        self._check_open()
        path = os.fspath(path)
        _io.makedirs(path)
        with self._mutex, C.lock(self._client, self._uid):
            spec = self._begin()
            files: list[dict | None] = [None] * self.n_shards
            for _ in range(C.RETRIES):
                todo = [s for s in range(self.n_shards) if files[s] is None]
                if not todo:
                    break
                jobs = []
                for s in todo:
                    addr = C.index_holders(spec, s)[0]
                    name = f"shard-{s:05d}.{self.kind}.pysim"
                    fut = C.submit(
                        self._client, W.task_save, self._uid, s, _io.join(path, name), addr=addr
                    )
                    jobs.append((fut, addr))
                for s, res in zip(todo, C.outcomes(self._client, jobs), strict=True):
                    if res[0] == "error":
                        raise res[1]
                    if res[0] == "ok":
                        files[s] = dict(res[1], file=f"shard-{s:05d}.{self.kind}.pysim")
                spec = self._begin()
            if any(f is None for f in files):
                raise RuntimeError("workers kept dying while the index was saved")
            sizes = self.shard_sizes
            meta = {
                "format": _MANIFEST_FORMAT,
                "kind": self.kind,
                "dim": self.dim,
                "metric": self.metric,
                "params": spec["params"],
                "replicas": self.replicas,
                "grow": self._grow,
                "next_id": self._next_id,
                "dtype": None if self._dtype is None else self._dtype.str,
                "shards": [dict(f, n=sizes[s]) for s, f in enumerate(files)],
            }
            _io.write_bytes(_io.join(path, _MANIFEST), _persist.dumps(_MANIFEST_KIND, meta, {}))
            if self.replicas == 1:
                token = uuid.uuid4().hex
                jobs = []
                base = path if _io.is_url(path) else os.path.abspath(_io.local(path))
                for s, f in enumerate(files):
                    full = _io.join(base, f["file"])
                    for addr, role in spec["holders"][s]:
                        if role == "log":
                            fut = C.submit(
                                self._client,
                                W.task_log_base,
                                self._uid,
                                s,
                                token,
                                full,
                                f["crc32"],
                                addr=addr,
                            )
                            jobs.append((fut, addr))
                C.outcomes(self._client, jobs)

    @classmethod
    def load(cls, path: str | os.PathLike, *, client: Any = None) -> ShardedIndex:
        """Load an index written by :meth:`save`; the shards are read by the workers.

        Parameters
        ----------
        path : str or os.PathLike
            The directory (or fsspec URL) given to :meth:`save`.
        client : distributed.Client, optional
            Default: the current client.

        Raises
        ------
        ValueError
            The manifest or a shard file is missing or corrupt (the message names it).
        """
        path = os.fspath(path)
        mpath = _io.join(path, _MANIFEST)
        try:
            blob = _io.read_bytes(mpath)
        except ValueError:
            raise ValueError(f"{mpath!r}: missing; not a saved ShardedIndex directory") from None
        meta, _ = _persist.loads(blob, _MANIFEST_KIND, repr(mpath))
        try:
            if meta.get("format") != _MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {meta.get('format')!r}")
            kind, dim, metric = meta["kind"], int(meta["dim"]), check_metric(meta["metric"])
            if kind not in _KINDS:
                raise ValueError(f"unknown kind {kind!r}")
            shards = meta["shards"]
            replicas = check_int(meta["replicas"], "replicas", 1, 2)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{mpath!r}: not a valid ShardedIndex manifest ({exc})") from None
        for f in shards:
            fpath = _io.join(path, f["file"])
            if not _io.exists(fpath):
                raise ValueError(f"{fpath!r}: shard file of the sharded index is missing")
        client = _resolve_client(client)
        workers = sorted(C.alive(client))
        if replicas > len(workers):
            raise ValueError(
                f"the index has replicas={replicas}; the cluster has {len(workers)} workers"
            )
        obj = cls.__new__(cls)
        uid = uuid.uuid4().hex
        spec = {
            "uid": uid,
            "kind": kind,
            "dim": dim,
            "metric": metric,
            "params": meta["params"],
            "replicas": replicas,
            "holders": [],
            "version": 0,
        }
        obj._init_local(client, spec, grow=bool(meta.get("grow")), dtype=meta.get("dtype"))
        holders = C.plan_holders(0, len(shards), workers, replicas)
        jobs, where = [], []
        full_base = path if _io.is_url(path) else os.path.abspath(_io.local(path))
        for s, (f, hs) in enumerate(zip(shards, holders, strict=True)):
            fpath = _io.join(full_base, f["file"])
            for addr, role in hs:
                if role == "index":
                    fut = C.submit(client, W.task_load, uid, s, kind, fpath, f["crc32"], addr=addr)
                else:
                    fut = C.submit(client, W.task_load_log, uid, s, fpath, f["crc32"], addr=addr)
                jobs.append((fut, addr))
                where.append((s, role))
        results = C.outcomes(client, jobs)
        ids_parts, owners = [], []
        for (s, role), res in zip(where, results, strict=True):
            if res[0] == "error":
                client.run(W.run_drop, uid)
                raise res[1]
            if res[0] != "ok":
                client.run(W.run_drop, uid)
                raise RuntimeError("a worker died while the index was loaded; try again")
            if role == "index" and not any(o == s for o in owners):
                ids_parts.append(res[1])
                owners.append(s)
        ids = np.concatenate(ids_parts) if ids_parts else _EMPTY
        own = (
            np.concatenate(
                [np.full(len(p), s, np.int32) for p, s in zip(ids_parts, owners, strict=True)]
            )
            if ids_parts
            else np.empty(0, np.int32)
        )
        order = np.argsort(ids, kind="stable")
        obj._ids, obj._owner = ids[order], own[order]
        obj._next_id = max(int(meta.get("next_id", 0)), int(ids.max()) + 1 if len(ids) else 0)
        obj._publish(dict(spec, holders=holders, version=1))
        return obj

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the shards' memory on every worker (also done on garbage collection)."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        try:
            self._client.run(W.run_drop, self._uid)
            self._client.set_metadata(C.key(self._uid), None)
        except Exception:  # noqa: BLE001 - the cluster may already be gone
            pass

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        raise TypeError(
            "a ShardedIndex cannot be pickled (its shards live on the workers); use save/load"
        )
