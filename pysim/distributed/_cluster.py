"""Talking to the cluster: submitting pinned tasks, noticing dead workers, fan-out, healing.

Why these live apart from the class: they take a Dask client and the index's *spec* (kind,
dimension, metric, parameters, and which worker holds which shard in which role), not the
``ShardedIndex`` object, so the very same code runs on the user's client and inside a worker
task (``worker_client``) while a lazy dask-array query executes. The spec's source of truth
is the scheduler's metadata (``client.set_metadata``); every change of placement happens under
a ``distributed.Lock`` named after the index, so a client and a worker never heal the same
shard twice.

Dead workers. A task restricted to a worker that died waits forever in Dask ("no-worker"),
so every wait here polls: when a worker the operation depends on has left the scheduler, the
operation raises ``_Lost`` and the caller heals the index and retries (queries are
idempotent; adds and removes report, per shard, whether they took effect).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from . import _worker as W
from ._merge import merge_pair, pad_result

META = "pysim-sharded-index"
#: Seconds between liveness checks while an operation waits.
POLL = 0.2
#: Attempts (heal, then retry) before a query gives up.
RETRIES = 6


class ShardFailureError(RuntimeError):
    """Some shards did not take an operation (their workers died during it).

    Parameters
    ----------
    message : str
        What failed, for the exception text.
    shards : iterable of int
        The shards that failed.
    ids : ndarray of int64, optional
        The ids that did not take effect (default: none).

    Attributes
    ----------
    shards : tuple of int
        The shards that failed; the other shards completed the operation.
    ids : ndarray of int64
        The ids of the rows (add) or removals (remove) that did not take effect.
    """

    def __init__(self, message: str, shards, ids: np.ndarray | None = None) -> None:
        super().__init__(message)
        self.shards = tuple(int(s) for s in shards)
        self.ids = np.empty(0, np.int64) if ids is None else ids


class _Lost(Exception):
    """A worker an operation depended on died (carries the dead addresses)."""


def key(uid: str) -> list[str]:
    return [META, uid]


def alive(client) -> set[str]:
    """Addresses of the workers the scheduler knows now.

    Asked of the scheduler directly: ``client.scheduler_info()`` returns a cache that the
    client's own periodic refresh (which asks for no per-worker details) can overwrite in
    between, so it may list no workers at all."""
    info = client.sync(client.scheduler.identity, n_workers=-1)
    return set(info["workers"])


def submit(client, fn, *args, addr: str):
    """Run `fn` on the worker `addr` only (a strict restriction: the shard lives there)."""
    return client.submit(fn, *args, workers=[addr], allow_other_workers=False, pure=False)


def _is_lost_error(exc: BaseException) -> bool:
    if isinstance(exc, W.ShardMissingError):
        return True
    name = type(exc).__name__
    return name in {"KilledWorker", "CommClosedError", "FutureCancelledError", "CancelledError"}


def outcomes(client, jobs: list[tuple[Any, str]], *, fetch: bool = True) -> list[tuple[str, Any]]:
    """Wait for every ``(future, address)``; per job ``("ok", value)``, ``("lost", None)``
    (its worker died or lost the shard) or ``("error", exception)``. With ``fetch=False``
    the value is not brought to the caller (it stays on the worker)."""
    from distributed import wait

    result: list[tuple[str, Any] | None] = [None] * len(jobs)
    while True:
        pending = [i for i, r in enumerate(result) if r is None]
        for i in pending:
            fut, _ = jobs[i]
            if fut.status == "finished":
                result[i] = ("ok", fut.result() if fetch else None)
            elif fut.status in ("error", "cancelled"):
                exc = fut.exception() if fut.status == "error" else None
                result[i] = ("lost", None) if exc is None or _is_lost_error(exc) else ("error", exc)
        pending = [i for i in pending if result[i] is None]
        if not pending:
            return result  # type: ignore[return-value]
        try:
            wait([jobs[i][0] for i in pending], timeout=POLL)
            continue
        except TimeoutError:
            pass
        live = alive(client)
        for i in pending:
            fut, addr = jobs[i]
            if addr and addr not in live and fut.status == "pending":
                fut.cancel()
                result[i] = ("lost", None)


def gather_one(client, fut, addrs: list[str]):
    """The result of `fut`, which depends on tasks pinned to `addrs`; ``_Lost`` if one of
    those workers dies first (or a shard was missing there)."""
    from distributed import wait

    while True:
        try:
            # wait() then result(), not result(timeout=...): the latter fails with an
            # UnboundLocalError inside distributed when it times out in a worker_client.
            wait([fut], timeout=POLL)
        except TimeoutError:
            live = alive(client)
            dead = [a for a in addrs if a not in live]
            if dead:
                fut.cancel()
                raise _Lost(dead) from None
            continue
        if fut.status == "finished":
            return fut.result()
        exc = fut.exception() if fut.status == "error" else None
        if exc is None or _is_lost_error(exc):
            raise _Lost(addrs)
        raise exc


def index_holders(spec: dict, shard: int) -> list[str]:
    return [a for a, role in spec["holders"][shard] if role == "index"]


def fanout(client, spec: dict, Q, k: int, ef, allowed: dict | None, dtype, turn: int):
    """Submit one query task per shard (one replica each) and a tree of merges.

    Returns ``(future, addresses)``, or ``(None, [])`` when no shard can contribute.
    """
    uid = spec["uid"]
    picks = []
    for s in range(len(spec["holders"])):
        if allowed is not None and s not in allowed:
            continue
        holders = index_holders(spec, s)
        picks.append((s, holders[(turn + s) % len(holders)]))
    addrs = [addr for _, addr in picks]
    if hasattr(Q, "nbytes") and Q.nbytes > 1 << 16 and picks:
        # Scattered once, to any live worker; the shards' tasks fetch it from there. (Not a
        # broadcast to the shards' workers: a scatter naming a worker that is being killed
        # can wait forever inside the scheduler, where a task's fetch fails over.)
        [Q] = client.scatter([Q], hash=False)
    parts = [
        submit(client, W.task_query, uid, s, Q, k, ef, allowed and allowed[s], addr=addr)
        for s, addr in picks
    ]
    if not parts:
        return None, []
    while len(parts) > 1:
        merged = [
            client.submit(merge_pair, parts[i], parts[i + 1], k, pure=False)
            for i in range(0, len(parts) - 1, 2)
        ]
        parts = merged + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0], addrs


def search(client, uid: str, spec: dict | None, Q, k, ef, allowed, dtype, turn: int):
    """Fan out, merge on the workers, fetch the merged answer; heal and retry on a loss."""
    spec = spec if spec is not None else client.get_metadata(key(uid))
    for attempt in range(RETRIES):
        try:
            fut, addrs = fanout(client, spec, Q, k, ef, allowed, dtype, turn + attempt)
            if fut is None:
                return pad_result(len(Q), k, dtype), spec
            return gather_one(client, fut, addrs), spec
        except _Lost:
            spec = heal(client, uid)
    raise RuntimeError(f"query failed {RETRIES} times: workers keep leaving the cluster")


def query_block(block, uid: str, ctx: dict):
    """One chunk of a lazy dask-array query (runs in a worker task)."""
    from distributed import worker_client

    from .._index_base import prepare_queries

    Q = prepare_queries(block, ctx["dim"], np.dtype(ctx["qdtype"]))
    if len(Q) == 0:
        return pad_result(0, ctx["k"], np.dtype(ctx["dtype"]))
    with worker_client() as client:
        res, _ = search(
            client, uid, None, Q, ctx["k"], ctx["ef"], ctx["allowed"], np.dtype(ctx["dtype"]), 0
        )
    return res


# ------------------------------------------------------------------------------ healing


def _pick(live: set[str], load: Counter, exclude: set[str]) -> str:
    candidates = sorted(live - exclude) or sorted(live)
    return min(candidates, key=lambda a: (load[a], a))


def _copy(client, spec: dict, shard: int, source: str, target: str, *, as_log: bool):
    """Serialize `shard` on `source` and install it on `target` (a replica, or a log's base)."""
    uid = spec["uid"]
    blob = submit(client, W.task_export, uid, shard, addr=source)
    return submit(client, W.task_install, uid, shard, spec["kind"], blob, as_log, addr=target)


def lock(client, uid: str):
    """The index's placement lock (a ``distributed.Lock``)."""
    from distributed import Lock

    return Lock(f"{META}-{uid}", scheduler_rpc=client.scheduler, loop=client.loop)


def heal(client, uid: str) -> dict:
    """Restore every shard whose workers died, under the index's lock; return the spec."""
    with lock(client, uid):
        return heal_locked(client, client.get_metadata(key(uid)))


def heal_locked(client, spec: dict) -> dict:
    """Drop holders on dead workers; rebuild, re-replicate or re-log shards as needed.

    ``replicas=2``: a shard that lost one copy is cloned from the other onto another worker.
    ``replicas=1``: a shard that lost its index is rebuilt from its input log on a worker
    other than the log's; a shard that lost its log, or whose log shares its worker, gets a
    new one on another worker (a snapshot of the shard), when there is another worker.
    Raises :class:`ShardFailureError` for shards with nothing left to rebuild from.
    """
    uid = spec["uid"]
    for _ in range(RETRIES):
        live = alive(client)
        if not live:
            client.wait_for_workers(1, timeout=120)
            continue
        holders = [[tuple(h) for h in hs] for hs in spec["holders"]]
        if all(a in live for hs in holders for a, _ in hs) and not _degraded(spec, live):
            return spec
        load = Counter(a for hs in holders for a, _ in hs if a in live)
        jobs, lost, drops = [], [], []
        for s, hs in enumerate(holders):
            kept = [(a, r) for a, r in hs if a in live]
            idx = [a for a, r in kept if r == "index"]
            logs = [a for a, r in kept if r == "log"]
            if not idx:
                if not logs:
                    lost.append(s)
                    holders[s] = kept
                    continue
                target = _pick(live, load, set(logs))
                entries = submit(client, W.task_log_entries, uid, s, addr=logs[0])
                args = (spec["kind"], spec["dim"], spec["metric"], spec["params"], entries)
                jobs.append((submit(client, W.task_rebuild, uid, s, *args, addr=target), target))
                kept.append((target, "index"))
                load[target] += 1
                idx = [target]
            if spec["replicas"] == 2 and len(idx) < 2 and len(live) > 1:
                target = _pick(live, load, set(idx))
                jobs.append((_copy(client, spec, s, idx[0], target, as_log=False), target))
                kept.append((target, "index"))
                load[target] += 1
            others = live - set(idx)
            if spec["replicas"] == 1 and others and not _safe_logs(kept, set(idx)):
                # No log, or only one on the shard's own worker: a snapshot on another worker.
                target = _pick(others, load, set())
                drops += [(s, a) for a, r in kept if r == "log"]
                kept = [h for h in kept if h[1] != "log"] + [(target, "log")]
                jobs.append((_copy(client, spec, s, idx[0], target, as_log=True), target))
                load[target] += 1
            holders[s] = kept
        results = outcomes(client, jobs)
        errors = [r[1] for r in results if r[0] == "error"]
        if errors:
            raise errors[0]
        if any(r[0] == "lost" for r in results):
            time.sleep(POLL)
            continue
        spec = dict(spec, holders=[[list(h) for h in hs] for hs in holders])
        spec["version"] = spec.get("version", 0) + 1
        client.set_metadata(key(uid), spec)
        # Logs replaced by one on another worker are freed once the new spec is published.
        freed = [(submit(client, W.task_drop, uid, j, "log", addr=a), a) for j, a in drops]
        outcomes(client, freed)
        if lost:
            raise ShardFailureError(
                f"shards {lost} of the index were lost with their workers and nothing is left "
                "to rebuild them from (replicas=1 and the input log's worker died too)",
                lost,
            )
        return spec
    raise RuntimeError("could not restore the index: workers keep leaving the cluster")


def _degraded(spec: dict, live: set[str]) -> bool:
    """Whether some shard has fewer holders than its replication asks (and could have more).

    A ``replicas=1`` shard wants an input log on a worker other than its own (a log on the
    shard's worker dies with it); with no other live worker it goes without one."""
    for hs in spec["holders"]:
        idx = {a for a, r in hs if r == "index"}
        if spec["replicas"] == 2 and len(idx) < 2 and len(live) > 1:
            return True
        if spec["replicas"] == 1 and (not idx or (not _safe_logs(hs, idx) and live - idx)):
            return True
    return False


def _safe_logs(holders, idx) -> list[str]:
    """The input logs of a shard that live on a worker not holding the shard itself."""
    return [a for a, r in holders if r == "log" and a not in idx]


def plan_holders(first: int, count: int, workers: list[str], replicas: int) -> list[list]:
    """Holders of `count` shards numbered from `first`, round-robin over `workers`.

    Shard ``s`` lives on ``workers[s % W]``; its second copy (``replicas=2``) or its input log
    (``replicas=1``) on the next worker. A log is never put on its own shard's worker (it
    would protect nothing and cost one more copy of the rows there): with a single worker a
    ``replicas=1`` shard has no log until a second worker joins (:func:`heal_locked` then
    makes one from a snapshot of the shard).
    """
    out = []
    for s in range(first, first + count):
        holders = [[workers[s % len(workers)], "index"]]
        if len(workers) > 1:
            role = "index" if replicas == 2 else "log"
            holders.append([workers[(s + 1) % len(workers)], role])
        out.append(holders)
    return out
