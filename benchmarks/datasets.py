"""Benchmark datasets: file loaders, the embedded default sets, exact ground truth, recall.

Users judge pysim on their own data, so ``run.py --dataset PATH`` accepts the formats ANN
people already have on disk: texmex ``.fvecs``/``.ivecs``/``.bvecs`` (SIFT, GIST),
ann-benchmarks ``.hdf5`` (train/test/neighbors/distances), ``.npy`` files (base/queries[/gt],
or one matrix split into base and queries), MNIST-style IDX (gzipped or not), and folders laid
out like the shared data (``mnist/``, ``minilm-dev/``), whose README says the metric.

Everything comes back as one plain dict (:func:`load_path`, :func:`load_dataset`) so every
benchmark module consumes every source the same way:
``{"name", "base", "queries", "gt", "metric", "source", "gt_source"[, "y_base", "y_queries"]}``
with float32 C-contiguous ``base``/``queries`` and int64 ``gt`` (nearest first).

Ground truth shipped with the data is used as is, unless ``--metric`` asks for a different
metric than the one it was computed for. Otherwise it is computed exactly in float64, in blocks
over queries *and* base (so GIST-sized sets fit in memory), ties broken by the smaller index,
and cached under ``benchmarks/results/cache`` keyed by the files' identity and the metric, so
the second run starts at once.

Only numpy is needed; h5py (``pip install "pysim[hdf5]"``) only for ``.hdf5``; scikit-learn
only for the bundled digits.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

#: Metric spellings found in data files and READMEs -> pysim's metric names.
METRIC_ALIASES: dict[str, str] = {
    "sqeuclidean": "sqeuclidean",
    "euclidean": "euclidean",
    "l2": "euclidean",
    "cosine": "cosine",
    "angular": "cosine",
    "ip": "ip",
    "dot": "ip",
    "inner_product": "ip",
    "inner product": "ip",
    "mips": "ip",
}

#: Queries split off the end of a single matrix when a source has no separate query set.
DEFAULT_QUERIES = 1000

#: Neighbours kept in computed ground truth.
GT_K = 100

#: float64 elements in one score block of :func:`exact_knn` (64 MB).
BLOCK_ELEMENTS = 8 << 20


# --------------------------------------------------------------------------------------------
# Format readers
# --------------------------------------------------------------------------------------------


def _vecs(path: str | os.PathLike, item: np.dtype, count: int | None) -> np.ndarray:
    """Texmex layout: every row is an int32 dimension followed by that many items."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return np.empty((0, 0), item)
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) < 4:
        raise ValueError(f"{path}: too short for a texmex vector file")
    d = int(np.frombuffer(head, "<i4")[0])
    row = 4 + d * item.itemsize
    if d <= 0 or size % row:
        raise ValueError(
            f"{path}: not a texmex {item.name} vector file (dimension {d} from the first "
            f"4 bytes does not divide the file size {size})"
        )
    n = size // row
    if count is not None:
        n = min(n, int(count))
    raw = np.memmap(path, np.uint8, "r", shape=(n, row))
    dims = raw[:, :4].copy().view("<i4").ravel()
    if not (dims == d).all():
        bad = int(np.argmax(dims != d))
        raise ValueError(f"{path}: row {bad} has dimension {dims[bad]}, row 0 has {d}")
    out = np.ascontiguousarray(raw[:, 4:]).view(item.newbyteorder("<")).astype(item, copy=False)
    del raw
    return out.reshape(n, d)


def read_fvecs(path: str | os.PathLike, count: int | None = None) -> np.ndarray:
    """Read a texmex ``.fvecs`` file (SIFT, GIST base/query/learn).

    Parameters
    ----------
    path : path-like
        The file. Each row is ``int32 d`` then ``d`` little-endian float32.
    count : int, optional
        Read only the first ``count`` rows.

    Returns
    -------
    ndarray of shape (n, d), float32
    """
    return _vecs(path, np.dtype(np.float32), count)


def read_ivecs(path: str | os.PathLike, count: int | None = None) -> np.ndarray:
    """Read a texmex ``.ivecs`` file (ground-truth neighbour ids), shape (n, k), int32."""
    return _vecs(path, np.dtype(np.int32), count)


def read_bvecs(path: str | os.PathLike, count: int | None = None) -> np.ndarray:
    """Read a texmex ``.bvecs`` file (SIFT1B), shape (n, d), uint8."""
    return _vecs(path, np.dtype(np.uint8), count)


def write_vecs(path: str | os.PathLike, X: np.ndarray) -> None:
    """Write a 2-D array as ``.fvecs`` (float32), ``.ivecs`` (int32) or ``.bvecs`` (uint8)."""
    kind = {".fvecs": "<f4", ".ivecs": "<i4", ".bvecs": "u1"}[Path(path).suffix]
    X = np.asarray(X).astype(kind)
    n, d = X.shape
    rows = np.empty((n, 4 + d * X.itemsize), np.uint8)
    rows[:, :4] = np.full((n, 1), d, "<i4").view(np.uint8)
    rows[:, 4:] = np.ascontiguousarray(X).view(np.uint8).reshape(n, -1)
    Path(path).write_bytes(rows.tobytes())


_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an MNIST-style IDX file, gzipped (``.gz``) or not.

    Header: two zero bytes, a type code (0x08 uint8 ... 0x0E float64), the number of
    dimensions, then one big-endian uint32 per dimension.

    Returns
    -------
    ndarray with the shape of the header (uint8 for MNIST images and labels)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic {raw[:4].hex()})")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    shape = tuple(int(x) for x in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header says {expected} bytes, file has {len(raw)}")
    data = np.frombuffer(raw, dtype, offset=offset).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | os.PathLike, X: np.ndarray) -> None:
    """Write an array as an IDX file (gzipped when the name ends in ``.gz``)."""
    X = np.asarray(X)
    code = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}[X.dtype]
    body = X.astype(_IDX_TYPES[code]).tobytes()
    header = bytes([0, 0, code, X.ndim]) + np.asarray(X.shape, ">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + body)


def read_hdf5(path: str | os.PathLike) -> dict[str, Any]:
    """Read an ann-benchmarks ``.hdf5`` file (``train``, ``test``, ``neighbors``, ``distances``).

    The metric comes from the file's ``distance`` attribute (``angular`` means cosine).
    Needs h5py: ``pip install "pysim[hdf5]"``.
    """
    try:
        import h5py
    except ImportError as exc:
        raise ImportError(
            f"reading {path} needs h5py, which is not installed: "
            'pip install "pysim[hdf5]" (or pip install h5py)'
        ) from exc
    with h5py.File(path, "r") as f:
        for key in ("train", "test"):
            if key not in f:
                raise ValueError(f"{path}: no {key!r} dataset (ann-benchmarks layout expected)")
        out: dict[str, Any] = {"base": f["train"][:], "queries": f["test"][:]}
        out["gt"] = f["neighbors"][:] if "neighbors" in f else None
        dist = f.attrs.get("distance")
        if isinstance(dist, bytes):
            dist = dist.decode()
        out["metric"] = normalise_metric(dist) if dist else None
    return out


def normalise_metric(name: str) -> str:
    """pysim's name for a metric spelling (``angular`` -> ``cosine``, ``dot`` -> ``ip`` ...)."""
    key = str(name).strip().lower()
    if key not in METRIC_ALIASES:
        raise ValueError(
            f"metric {name!r} is not supported by the benchmarks; expected one of "
            f"{sorted(set(METRIC_ALIASES))}"
        )
    return METRIC_ALIASES[key]


def readme_metric(folder: Path) -> str | None:
    """The metric a dataset folder's README declares ("Metric: **cosine**"), if any."""
    for name in ("README.md", "README.txt", "README"):
        p = folder / name
        if p.is_file():
            text = p.read_text(errors="replace")
            m = re.search(
                r"metric\W{0,6}(cosine|euclidean|angular|inner product|ip|dot|l2)",
                text,
                re.IGNORECASE,
            )
            if m:
                return normalise_metric(m.group(1))
    return None


# --------------------------------------------------------------------------------------------
# Sources: one path -> base / queries / gt / metric
# --------------------------------------------------------------------------------------------


def _split(X: np.ndarray, nq: int = DEFAULT_QUERIES) -> tuple[np.ndarray, np.ndarray]:
    """Last ``nq`` rows as queries (a tenth when the matrix is small), the rest as base."""
    n = len(X)
    if n < 2:
        raise ValueError(f"need at least 2 rows to split into base and queries, got {n}")
    nq = min(nq, max(1, n // 10))
    return X[: n - nq], X[n - nq :]


def _is_idx(p: Path) -> bool:
    return bool(re.search(r"idx\d-ubyte(\.gz)?$", p.name)) or p.suffix == ".idx"


def _find(folder: Path, *patterns: str) -> Path | None:
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


def _texmex(base: Path) -> dict[str, Any]:
    reader = read_bvecs if base.suffix == ".bvecs" else read_fvecs
    out: dict[str, Any] = {"base": reader(base), "metric": None, "gt": None}
    stem = base.name.rsplit("base", 1)[0] if "base" in base.name else None
    query = gt = None
    if stem is not None:
        query = _find(base.parent, f"{stem}query{base.suffix}", f"{stem}query*{base.suffix}")
        gt = _find(base.parent, f"{stem}groundtruth*.ivecs", f"{stem}gt*.ivecs")
    if query is None:
        out["base"], out["queries"] = _split(out["base"])
    else:
        out["queries"] = reader(query)
        out["gt"] = read_ivecs(gt) if gt is not None else None
    return out


def _npy_folder(folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"base": np.load(folder / "base.npy", mmap_mode="r")}
    q = _find(folder, "queries.npy", "query.npy", "test.npy")
    if q is None:
        out["base"], out["queries"] = _split(np.asarray(out["base"]))
        out["gt"] = None
    else:
        out["queries"] = np.load(q)
        g = _find(folder, "gt.npy", "gt_top*.npy", "groundtruth*.npy", "neighbors.npy")
        out["gt"] = np.load(g) if g is not None else None
    return out


def _idx_folder(folder: Path) -> dict[str, Any]:
    test = _find(folder, "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-images*")
    train = _find(folder, "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images*")
    labels_test = _find(folder, "t10k-labels*")
    out: dict[str, Any] = {"gt": None}
    X = read_idx(test)
    X = X.reshape(len(X), -1)
    y = read_idx(labels_test).astype(np.int64) if labels_test else None
    if train is not None:
        # A full MNIST folder: the usual train/test split.
        base = read_idx(train)
        out["base"], out["queries"] = base.reshape(len(base), -1), X
        labels_train = _find(folder, "train-labels*")
        if labels_train is not None and y is not None:
            out["y_base"], out["y_queries"] = read_idx(labels_train).astype(np.int64), y
    else:
        # The shared test split: first 9,000 as base, last 1,000 as queries (its README).
        out["base"], out["queries"] = _split(X)
        if y is not None:
            out["y_base"], out["y_queries"] = _split(y)
        g = _find(folder, "mnist10k_gt_top*.npy", "gt_top*.npy", "gt.npy")
        out["gt"] = np.load(g) if g is not None else None
    return out


def _npz(path: Path) -> dict[str, Any]:
    with np.load(path) as z:
        keys = set(z.files)
        if {"base", "queries"} <= keys:
            gt = next((z[k] for k in ("gt", "neighbors", "groundtruth") if k in keys), None)
            return {"base": z["base"], "queries": z["queries"], "gt": gt}
        if {"train", "test"} <= keys:
            return {"base": z["train"], "queries": z["test"], "gt": z.get("neighbors")}
        raise ValueError(f"{path}: expected arrays base/queries[/gt] or train/test[/neighbors]")


def _read_source(path: Path) -> dict[str, Any]:
    if path.is_dir():
        if _find(path, "t10k-images*", "train-images*"):
            return _idx_folder(path)
        if (path / "base.npy").is_file():
            return _npy_folder(path)
        base = _find(path, "*base.fvecs", "*base.bvecs")
        if base is not None:
            return _texmex(base)
        h5 = _find(path, "*.hdf5", "*.h5")
        if h5 is not None:
            return read_hdf5(h5)
        raise ValueError(
            f"{path}: no dataset recognised (expected base.npy[/queries.npy], "
            "*_base.fvecs|bvecs, *.hdf5 or MNIST IDX files)"
        )
    if not path.exists():
        raise FileNotFoundError(f"dataset {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".hdf5", ".h5"):
        return read_hdf5(path)
    if suffix in (".fvecs", ".bvecs"):
        return _texmex(path)
    if suffix == ".npz":
        return _npz(path)
    if suffix == ".npy":
        base, queries = _split(np.load(path))
        return {"base": base, "queries": queries, "gt": None}
    if _is_idx(path):
        X = read_idx(path)
        base, queries = _split(X.reshape(len(X), -1))
        return {"base": base, "queries": queries, "gt": None}
    raise ValueError(
        f"{path}: unknown dataset format {suffix!r} (expected .fvecs, .bvecs, .hdf5, "
        ".npy, .npz, IDX or a folder)"
    )


def _file_identity(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    parts = [f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    return "|".join(parts)


def load_path(
    path: str | os.PathLike,
    metric: str | None = None,
    *,
    max_queries: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Load a user's dataset in any supported format, with exact ground truth.

    Parameters
    ----------
    path : path-like
        A file (``.fvecs``/``.bvecs`` base with ``*_query``/``*_groundtruth`` siblings,
        ``.hdf5``, ``.npy``, ``.npz``, IDX) or a folder (``base.npy`` + ``queries.npy``
        [+ ``gt*.npy``], texmex files, one ``.hdf5``, or MNIST IDX files). A single matrix
        is split: the last 1,000 rows (a tenth, if smaller) become the queries.
    metric : str, optional
        Overrides the metric named by the data (hdf5 ``distance`` attribute, README
        "Metric: ..."); otherwise that, else ``"euclidean"``. Shipped ground truth is
        ignored (and recomputed) when the override differs from the declared metric.
    max_queries : int, optional
        Keep only the first ``max_queries`` queries (and their ground truth rows).
    cache_dir : path-like, optional
        Where computed ground truth is cached (default ``benchmarks/results/cache``).
    name : str, optional
        Name used in reports (default: the file or folder name).

    Returns
    -------
    dict
        ``base`` (n, d) float32, ``queries`` (q, d) float32, ``gt`` (q, k) int64 nearest first,
        ``metric``, ``name``, ``source``, ``gt_source`` ("file" or "computed"), and
        ``y_base``/``y_queries`` when labels exist.
    """
    path = Path(path).expanduser()
    raw = _read_source(path)
    declared = raw.get("metric") or (readme_metric(path) if path.is_dir() else None)
    chosen = normalise_metric(metric) if metric else (declared or "euclidean")
    # Shipped ground truth belongs to the declared metric (Euclidean when none is declared).
    if raw.get("gt") is not None and _rank_metric(chosen) != _rank_metric(declared or "l2"):
        raw["gt"] = None
    base = np.ascontiguousarray(raw["base"], dtype=np.float32)
    queries = np.ascontiguousarray(raw["queries"], dtype=np.float32)
    if base.ndim != 2 or queries.ndim != 2 or base.shape[1] != queries.shape[1]:
        raise ValueError(
            f"{path}: base {base.shape} and queries {queries.shape} must be 2-D with the same "
            "number of columns"
        )
    gt = raw.get("gt")
    if max_queries is not None:
        queries = queries[:max_queries]
        gt = gt[:max_queries] if gt is not None else None
    out: dict[str, Any] = {
        "name": name or path.name.removesuffix(".gz") or str(path),
        "base": base,
        "queries": queries,
        "metric": chosen,
        "source": str(path),
    }
    for key in ("y_base", "y_queries"):
        if key in raw:
            out[key] = raw[key][: len(queries)] if key == "y_queries" else raw[key]
    if gt is not None:
        gt = np.asarray(gt, dtype=np.int64)
        if gt.shape[0] != len(queries) or gt.max(initial=-1) >= len(base):
            raise ValueError(
                f"{path}: ground truth {gt.shape} does not fit {len(queries)} queries over "
                f"{len(base)} base rows"
            )
        out["gt"], out["gt_source"] = gt, "file"
    else:
        key = f"{_file_identity(path)}|{chosen}|{len(queries)}"
        out["gt"] = cached_ground_truth(base, queries, chosen, key, out["name"], cache_dir)
        out["gt_source"] = "computed"
    return out


# --------------------------------------------------------------------------------------------
# Exact ground truth and recall
# --------------------------------------------------------------------------------------------


def _rank_metric(metric: str) -> str:
    """Metrics that rank neighbours identically share one ground truth."""
    metric = normalise_metric(metric)
    return "euclidean" if metric == "sqeuclidean" else metric


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact k nearest base rows of every query, float64, ties broken by the smaller index.

    Blocks over queries and base keep the float64 work arrays near 64 MB, so GIST-sized sets
    (1M x 960) fit in memory.

    Parameters
    ----------
    base : ndarray of shape (n, d)
    queries : ndarray of shape (q, d)
    k : int
        Neighbours per query (at most n).
    metric : {"sqeuclidean", "euclidean", "cosine", "ip"}

    Returns
    -------
    ndarray of shape (q, k), int64, nearest first
    """
    metric = normalise_metric(metric)
    n, q = len(base), len(queries)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    bstep = max(k, min(n, BLOCK_ELEMENTS // 64))
    qstep = max(1, min(q, BLOCK_ELEMENTS // bstep))
    best_d = np.full((q, k), np.inf)
    best_i = np.full((q, k), -1, np.int64)
    for b0 in range(0, n, bstep):
        B = np.asarray(base[b0 : b0 + bstep], np.float64)
        if metric == "cosine":
            B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-300)
        ids = np.arange(b0, b0 + len(B), dtype=np.int64)
        # Scores to minimise, ranking like the metric (a query's own norm never matters).
        bn = None if metric in ("cosine", "ip") else (B * B).sum(1)[None, :]
        for q0 in range(0, q, qstep):
            Q = np.asarray(queries[q0 : q0 + qstep], np.float64)
            S = -(Q @ B.T) if bn is None else bn - 2.0 * (Q @ B.T)
            kk = min(k, S.shape[1])
            part = np.argpartition(S, kk - 1, axis=1)[:, :kk]
            pd = np.take_along_axis(S, part, 1)
            # argpartition picks arbitrarily among values tied with the k-th: redo those rows
            # with a full (distance, index) sort so ties go to the smaller index.
            kth = pd.max(1)
            tied = np.flatnonzero((S <= kth[:, None]).sum(1) > kk)
            for r in tied:
                order = np.lexsort((ids, S[r]))[:kk]
                part[r], pd[r] = order, S[r, order]
            # Order the block's candidates by (distance, id); the previous best ids are all
            # smaller than this block's, so a stable sort of the two keeps the tie rule.
            pi = ids[part]
            o = np.lexsort((pi, pd), axis=-1)
            pd, pi = np.take_along_axis(pd, o, 1), np.take_along_axis(pi, o, 1)
            cd = np.concatenate([best_d[q0 : q0 + len(Q)], pd], 1)
            ci = np.concatenate([best_i[q0 : q0 + len(Q)], pi], 1)
            order = np.argsort(cd, axis=1, kind="stable")[:, :k]
            best_d[q0 : q0 + len(Q)] = np.take_along_axis(cd, order, 1)
            best_i[q0 : q0 + len(Q)] = np.take_along_axis(ci, order, 1)
    return best_i


def cache_dir_default() -> Path:
    """Where computed ground truth is cached: $PYSIM_BENCH_CACHE or benchmarks/results/cache."""
    env = os.environ.get("PYSIM_BENCH_CACHE")
    return Path(env) if env else HERE / "results" / "cache"


def cached_ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    key: str,
    name: str,
    cache_dir: str | os.PathLike | None = None,
    k: int = GT_K,
) -> np.ndarray:
    """Exact top-``k`` ground truth, computed once and cached as ``.npy`` under ``key``.

    ``key`` identifies the data (file paths, sizes and times, or a generator's parameters);
    the shapes and metric are added to it, so a changed file or metric recomputes.
    """
    k = min(k, len(base))
    full_key = f"{key}|{base.shape}|{queries.shape}|{_rank_metric(metric)}|{k}"
    digest = hashlib.sha1(full_key.encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else cache_dir_default()
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
    path = folder / f"gt-{safe}-{digest}.npy"
    if path.is_file():
        try:
            gt = np.load(path)
            if gt.shape == (len(queries), k):
                return gt.astype(np.int64, copy=False)
        except (OSError, ValueError):
            pass  # unreadable cache: recompute and overwrite
    gt = exact_knn(base, queries, k, metric)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, gt)
    os.replace(tmp, path)
    (folder / f"gt-{safe}-{digest}.json").write_text(json.dumps({"key": full_key}) + "\n")
    return gt


def recall_at_k(found: np.ndarray, gt: np.ndarray, k: int) -> float:
    """Recall@k: mean over queries of |found[:k] ∩ gt[:k]| / k (a set overlap).

    Duplicate ids in ``found`` count once; padding (-1) never matches.

    Parameters
    ----------
    found : array-like of shape (q, >=k), int
        Ids returned by the contender, nearest first.
    gt : array-like of shape (q, >=k), int
        Exact neighbour ids, nearest first.
    k : int

    Returns
    -------
    float in [0, 1]
    """
    found = np.asarray(found)
    gt = np.asarray(gt)
    if found.ndim != 2 or gt.ndim != 2 or len(found) != len(gt):
        raise ValueError(f"found {found.shape} and gt {gt.shape} must be (q, k) with equal q")
    if k < 1 or found.shape[1] < k or gt.shape[1] < k:
        raise ValueError(f"k={k} needs at least k columns in found {found.shape} and gt {gt.shape}")
    if len(gt) == 0:
        raise ValueError("recall of zero queries is undefined")
    hits = 0
    for s in range(0, len(gt), 1024):  # bounded (rows, k, k) temporaries
        f = np.sort(found[s : s + 1024, :k].astype(np.int64), axis=1)
        # Count each distinct found id once: drop repeats within a row.
        distinct = np.ones_like(f, dtype=bool)
        distinct[:, 1:] = f[:, 1:] != f[:, :-1]
        g = gt[s : s + 1024, :k].astype(np.int64)
        hits += int(((f[:, :, None] == g[:, None, :]).any(2) & distinct & (f >= 0)).sum())
    return hits / (k * len(gt))


# --------------------------------------------------------------------------------------------
# Named datasets: embedded defaults, shared data, the user's
# --------------------------------------------------------------------------------------------


def clustered_split(
    n: int,
    d: int,
    nq: int = DEFAULT_QUERIES,
    *,
    clusters: int = 100,
    seed: int = 0,
    spread: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Base and queries drawn from the same Gaussian clusters (float32, seeded)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    labels = rng.integers(0, clusters, n + nq)
    X = centres[labels] + rng.standard_normal((n + nq, d)).astype(np.float32) * spread
    return X[:n], X[n:]


def _synthetic(name: str) -> dict[str, Any]:
    m = re.fullmatch(r"(clustered|uniform)-(\d+)x(\d+)(?:-(cosine|ip|euclidean))?", name)
    if not m:
        raise KeyError(name)
    kind, n, d = m.group(1), int(m.group(2)), int(m.group(3))
    metric = m.group(4) or "euclidean"
    nq = min(DEFAULT_QUERIES, max(1, n // 10))
    if kind == "clustered":
        base, queries = clustered_split(n, d, nq)
    else:
        X = np.random.default_rng(0).random((n + nq, d), dtype=np.float32)
        base, queries = X[:n], X[n:]
    return {"base": base, "queries": queries, "metric": metric, "source": f"synthetic {name}"}


def _digits() -> dict[str, Any]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    nq = 197  # 1,600 base images, 197 queries
    return {
        "base": X[:-nq],
        "queries": X[-nq:],
        "y_base": y[:-nq],
        "y_queries": y[-nq:],
        "metric": "euclidean",
        "source": "sklearn.datasets.load_digits (bundled)",
    }


def shared_data_dir() -> Path | None:
    """The shared datasets folder: $PYSIM_DATA, else the nearest ``shared/data`` above the repo.

    Looking upwards (not only ``../shared/data``) also finds it from a git worktree nested
    one level deeper than the main checkout.
    """
    env = os.environ.get("PYSIM_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for parent in HERE.parent.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return None


#: Shared datasets by short name -> folder name under the shared data folder.
SHARED = {"mnist": "mnist", "minilm": "minilm-dev"}


@functools.lru_cache(maxsize=8)
def load_dataset(name: str) -> dict[str, Any]:
    """A dataset by name, with exact ground truth (cached in-process and on disk).

    Names: ``digits`` (scikit-learn's bundled 8x8 digits, 1,600 base / 197 queries),
    ``clustered-NxD`` / ``uniform-NxD`` (generated; optional ``-cosine``/``-ip`` suffix),
    ``mnist`` and ``minilm`` (the shared data folder), ``user`` (``$PYSIM_BENCH_DATASET``
    with ``$PYSIM_BENCH_METRIC``, as given to ``run.py --dataset/--metric``).

    Raises
    ------
    FileNotFoundError
        A shared or user dataset that is not on this machine.
    """
    if name == "user":
        path = os.environ.get("PYSIM_BENCH_DATASET")
        if not path:
            raise FileNotFoundError("no user dataset: set PYSIM_BENCH_DATASET (run.py --dataset)")
        mq = os.environ.get("PYSIM_BENCH_MAX_QUERIES")
        return load_path(
            path, os.environ.get("PYSIM_BENCH_METRIC") or None, max_queries=int(mq) if mq else None
        )
    if name in SHARED:
        root = shared_data_dir()
        if root is None or not (root / SHARED[name]).is_dir():
            raise FileNotFoundError(
                f"dataset {name!r} not found (set PYSIM_DATA to the shared data folder)"
            )
        return load_path(root / SHARED[name], name=name)
    data = _digits() if name == "digits" else _synthetic(name)
    data["name"] = name
    data["gt"] = cached_ground_truth(
        data["base"], data["queries"], data["metric"], f"embedded:{data['source']}", name
    )
    data["gt_source"] = "computed"
    return data
