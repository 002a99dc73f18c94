"""Quantised graph search: pysim.HNSWIndex storage options against hnswlib and compressed peers.

The question: does walking the HNSW graph over compressed vectors (and re-ranking the best
candidates with the originals) beat hnswlib's float32 search, at what memory. This module is
the recall/QPS sweep of ``bench_hnsw.py`` widened to every storage option and to the peers that
also search compressed codes:

  * hnswlib, float32: the baseline; every speed is quoted as "x hnswlib in the same run",
    because the machine is shared and only ratios within one run mean anything;
  * pysim: ``quantization=None`` (float32), ``"f16"``, ``"bf16"``, ``"sq8"``, ``"sq4"`` (the
    default ``refine``), and ``"sq8"`` with ``refine=0`` (no float32 copy kept);
  * pysim ``quantization="rabitq"``: the block layout (neighbours' 1-bit RaBitQ codes in each
    vertex record, FastScan-scored; float32 rows for the vertices it expands);
  * faiss ``IndexHNSWSQ`` with 8-bit and 4-bit per-dimension scalar quantisation (no re-rank);
  * the 2025 quantised graphs: rabitqlib's SymphonyQG (``SymqgIndex``) and HNSW-RaBitQ
    (``HnswIndex``), faiss ``IndexHNSWRaBitQ`` (faiss >= 1.12) and pyvsag's HGraph with
    RaBitQ codes re-ranked in float32;
  * pynndescent (its own k-NN graph, ``prepare()``d; knob: ``epsilon``);
  * ScaNN (k-means tree + anisotropic 4-bit product codes + exact re-order; knobs: leaves
    searched and candidates re-ordered).

Every graph contender builds with M = 16, ef_construction = 200 on all cores and searches all
queries in one batch call on ONE thread, k = 10; recall@10 is measured against the dataset's
exact ground truth (shipped with the shared data, else exact float64 search, cached).

Why it is built this way:
  * One parametrised test per (dataset, contender, knob) keeps every sweep point a
    pytest-benchmark record, so ``run.py``'s generic report (best q/s at a recall floor, Pareto
    plots) works unchanged. The tests are ordered dataset > contender > knob and only the index
    in use is kept alive, so the 100k x 128 run never holds eleven indexes at once. The index
    is built the first time a (dataset, contender) is needed; its build time and size ride on
    every point of its sweep (``build_s``, ``bytes_per_vector``).
  * The issue's targets are ratios to hnswlib at recall 0.95 / 0.99, interpolated on each
    contender's recall/QPS Pareto front (``qps_at`` of bench_hnsw on ``report.pareto``), so
    :func:`report_section` adds that table and a one-panel-per-dataset plot to
    ``results/quantized.md`` (``report.py`` calls it for this part).
  * Memory per vector is what each library says it holds, never a guess: pysim
    ``memory_bytes() / len`` (its vector share from the storage layout: code + float32 copy
    when ``refine > 0``, as pysim exposes no separate count), faiss the
    serialised index, hnswlib ``index_file_size()`` (its saved level-0 block + links +
    vectors), ScaNN its serialised artefacts, pynndescent its pickle. The ``memory_source``
    column says which.
  * Datasets follow bench_hnsw's split between the quick and the full run: the quick default is
    the embedded (10,000 x 128) clustered set (no download, about three minutes), ``--full`` the
    issue's MNIST split, MiniLM (cosine) and (100,000 x 128) clustered data; ``--dataset``
    replaces them with the user's data.
  * A peer that is not installed, and pysim variants the installed pysim does not offer yet,
    are skipped with a printed reason.

Run alone: ``pytest benchmarks/bench_quantized.py --benchmark-only -s`` (the table and plot then
go to benchmarks/results/quantized_summary.md and quantized_recall_qps.png); normally through
``python benchmarks/run.py --parts quantized [--full]``.
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import (
    adaptive_rounds,
    ann_datasets,
    dataset,
    full,
    limit_threads,
    peer,
    recall_at_k,
    record,
)
from bench_hnsw import EF_CONSTRUCTION, Faiss, Hnswlib, M, Pysim, qps_at
from report import pareto

K = 10
BUILD_THREADS = os.cpu_count() or 1
RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ann_datasets(["clustered-10000x128"], ["mnist", "minilm", "clustered-100000x128"])
TARGETS = (0.95, 0.99)
X_MIN = 0.8  # the plot's recall axis starts here: the targets are at 0.95 and 0.99

#: ef for every HNSW-style contender: dense at the low end, where recall climbs fastest and
#: the interpolation at 0.95 needs close neighbours; up to 512 so the 4-bit and no-refine
#: variants can show whether 0.99 is reachable at all.
EFS = [10, 12, 14, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512]
#: The quick run's coarser grid (every other point, both ends kept): the suite's 10-minute budget.
QUICK_EFS = [10, 14, 20, 32, 48, 80, 128, 192, 384, 512]
#: pynndescent's query-time search widening (ann-benchmarks' range).
EPSILONS = [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.16, 0.2, 0.24, 0.3, 0.36]
#: ScaNN: fraction of the tree's leaves searched x candidates re-ordered exactly (the ranges of
#: ann-benchmarks' ScaNN runs). Re-ordering up to 1000 matters on the clustered set: ScaNN's
#: codes for squared L2 are not residual (it supports residuals for dot products only), so
#: they barely tell apart the points of one tight cluster, and a short re-order list caps
#: recall (0.62 at 250 candidates on 100,000 x 128, 0.9999 at 1000).
SCANN_LEAF_FRACTIONS = [0.01, 0.02, 0.04, 0.08, 0.15, 0.3]
SCANN_REORDER = [50, 100, 250, 500, 1000]


def _scann_knobs() -> list[tuple[float, int]]:
    return [(f, r) for f in SCANN_LEAF_FRACTIONS for r in SCANN_REORDER]


# ---------------------------------------------------------------------------- contenders


def _normalised(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.ascontiguousarray(X / np.where(norms > 0, norms, 1), dtype=np.float32)


def _peer_rows(X: np.ndarray, cosine: bool) -> np.ndarray:
    """Rows as the RaBitQ peers take them: float32, unit length for cosine (searched as ip)."""
    return _normalised(X) if cosine else np.ascontiguousarray(X, np.float32)


class PysimQ(Pysim):
    """pysim.HNSWIndex with one storage option (bench_hnsw's adapter otherwise)."""

    memory_source = "memory_bytes(); vectors: code layout"

    def __init__(self, name: str, quantization: str | None, refine: int | None = None):
        self.name, self.quantization, self.refine = name, quantization, refine

    def available(self) -> str | None:
        return None

    def build(self, X, metric, threads):
        import pysim

        kwargs: dict[str, Any] = {}
        if self.quantization is not None or self.refine is not None:
            kwargs = {"quantization": self.quantization, "refine": self.refine}
        index = pysim.HNSWIndex(
            X.shape[1],
            metric,
            M=M,
            ef_construction=EF_CONSTRUCTION,
            max_elements=len(X),
            seed=0,
            **kwargs,
        )
        index.add(X, threads=threads)
        return index

    def memory(self, index) -> tuple[float, float | None]:
        """(whole index, vectors) in bytes per vector.

        pysim reports only the whole index (``memory_bytes()``); the vector part is the size
        of what its storage options keep per vector: the code (4, 2, 2, 1 or 1/2 bytes per
        dimension) plus, when quantised with ``refine > 0``, the float32 copy (4 bytes per
        dimension). Record padding and links are in the whole-index figure only.
        """
        n = max(len(index), 1)
        quantization = getattr(index, "quantization", None)
        # "rabitq" keeps float32 rows; its neighbours' 1-bit codes ride in the records (links).
        per_dim = {None: 4.0, "rabitq": 4.0, "f16": 2.0, "bf16": 2.0, "sq8": 1.0, "sq4": 0.5}[
            quantization
        ]
        vectors = math.ceil(per_dim * index.dim)
        refine = index.refine  # None: the default "auto" re-rank (2k), which keeps the copy
        if quantization not in (None, "rabitq") and (refine is None or refine > 0):
            vectors += 4 * index.dim
        return index.memory_bytes() / n, float(vectors)


class HnswlibBase(Hnswlib):
    name = "hnswlib"
    memory_source = "index_file_size()"

    def available(self) -> str | None:
        return None

    def memory(self, index) -> tuple[float, float | None]:
        n = max(index.get_current_count(), 1)
        return index.index_file_size() / n, 4.0 * index.dim


class FaissSQ(Faiss):
    """faiss IndexHNSWSQ: HNSW over per-dimension scalar codes, no re-rank (faiss's own)."""

    memory_source = "serialize_index()"

    def __init__(self, name: str, bits: int):
        self.name, self.bits = name, bits

    def available(self) -> str | None:
        return None

    def build(self, X, metric, threads):
        faiss = peer("faiss")
        qtype = {8: faiss.ScalarQuantizer.QT_8bit, 4: faiss.ScalarQuantizer.QT_4bit}[self.bits]
        cosine = metric == "cosine"
        if cosine:
            X = _normalised(X)
        faiss_metric = faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2
        index = faiss.IndexHNSWSQ(X.shape[1], qtype, M, faiss_metric)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        X = np.ascontiguousarray(X, np.float32)
        with limit_threads(threads):
            index.train(X)  # learns each dimension's range
            index.add(X)
        return index, cosine

    def memory(self, built_index) -> tuple[float, float | None]:
        faiss = peer("faiss")
        index = built_index[0]
        return len(faiss.serialize_index(index)) / index.ntotal, float(index.storage.sa_code_size())


class Pynndescent:
    """pynndescent: NN-descent k-NN graph, pruned and prepare()d for search.

    Library defaults (n_neighbors=30, diversify_prob=1, pruning_degree_multiplier=1.5); the
    query-time knob is ``epsilon``. Its numba code is compiled on a small set first
    (:meth:`warm_up`, untimed), so the build time is the build's, not the JIT's (~25 s).
    """

    name = "pynndescent"
    memory_source = "pickle"

    def available(self) -> str | None:
        return None

    def warm_up(self, X, metric):
        pynndescent = peer("pynndescent")
        warm = np.ascontiguousarray(X[:500])
        index = pynndescent.NNDescent(warm, metric=metric, random_state=0, n_jobs=1)
        index.prepare()
        index.query(warm[:2], k=K)

    def build(self, X, metric, threads):
        pynndescent = peer("pynndescent")
        index = pynndescent.NNDescent(X, metric=metric, random_state=0, n_jobs=threads)
        index.prepare()
        return index

    def search(self, index, Q, k, epsilon):
        import numba

        old = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return index.query(Q, k=k, epsilon=epsilon)[0].astype(np.int64)
        finally:
            numba.set_num_threads(old)

    def memory(self, index) -> tuple[float, float | None]:
        size = len(pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL))
        return size / index._raw_data.shape[0], None


class Scann:
    """ScaNN: k-means tree (about sqrt(n) leaves), anisotropic AH codes (2 dims per 4-bit
    code, threshold 0.2 for cosine/dot as in ScaNN's README), exact float32 re-order.

    Searched with ``search_batched`` (one thread); knobs: leaves searched, candidates re-ordered.
    """

    name = "scann"
    memory_source = "serialize()"

    def available(self) -> str | None:
        return None

    def build(self, X, metric, threads):
        scann = peer("scann")
        cosine = metric == "cosine"
        if cosine:
            X = _normalised(X)
        n = len(X)
        leaves = max(8, int(round(math.sqrt(n))))
        builder = scann.scann_ops_pybind.builder(X, K, "dot_product" if cosine else "squared_l2")
        builder.set_n_training_threads(threads)
        searcher = (
            builder.tree(
                num_leaves=leaves,
                num_leaves_to_search=max(1, leaves // 10),
                training_sample_size=n,
                spherical=cosine,
            )
            .score_ah(2, anisotropic_quantization_threshold=0.2 if cosine else float("nan"))
            .reorder(max(SCANN_REORDER))
            .build()
        )
        return searcher, leaves, cosine, n

    def search(self, built_index, Q, k, knob):
        searcher, leaves, cosine, _ = built_index
        fraction, reorder = knob
        if cosine:
            Q = _normalised(Q)
        ids, _ = searcher.search_batched(
            Q,
            final_num_neighbors=k,
            leaves_to_search=max(1, int(round(fraction * leaves))),
            pre_reorder_num_neighbors=reorder,
        )
        return np.asarray(ids, np.int64)

    def memory(self, built_index) -> tuple[float, float | None]:
        searcher, _, _, n = built_index
        with tempfile.TemporaryDirectory() as tmp:
            searcher.serialize(tmp)
            size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        return size / n, None


class Symqg:
    """rabitqlib ``SymqgIndex`` (SymphonyQG): a graph whose every vertex stores its
    neighbours' RaBitQ codes in FastScan batches of 32 next to its own raw vector.

    The library's defaults: ``quantization_bits=0`` (raw float32 vectors kept for the exact
    step), its default ``pipnn`` initial graph; out-degree 32 (SymphonyQG rounds the degree to
    its batch of 32, so M = 16 and 2M = 32 links at level 0 are the same budget). Cosine:
    rows and queries normalised, metric ``ip``. Searched with ``search_batch`` on one thread
    (the knob is its ``ef``; ids come back as uint32).
    """

    name = "rabitqlib-symqg"
    memory_source = "save() file"

    def unsupported(self, data: dict[str, Any]) -> str | None:
        """rabitqlib's rotator and k-means take 64 dimensions or more."""
        dim = data["base"].shape[1]
        return f"rabitqlib needs dim >= 64, this dataset has {dim}" if dim < 64 else None

    def available(self) -> str | None:
        return None

    def build(self, X, metric, threads):
        rabitqlib = peer("rabitqlib")
        cosine = metric == "cosine"
        X = _peer_rows(X, cosine)
        index = rabitqlib.SymqgIndex(X.shape[1], 2 * M, "ip" if cosine else "l2", 0)
        index.build(X, EF_CONSTRUCTION, threads)
        return index, cosine, len(X)

    def search(self, built_index, Q, k, ef):
        index, cosine, _ = built_index
        Q = _peer_rows(Q, cosine)
        ids, _ = index.search_batch(Q, k, max(ef, k), 1)
        return np.asarray(ids, np.int64)

    def memory(self, built_index) -> tuple[float, float | None]:
        index, _, n = built_index
        return _saved_size(index.save, n), None


# Another index of the same library: build and search differ in the calls (cluster centres, search
# vs search_batch) and keep SymphonyQG's shape (duplicates pairs them).
class RabitqHnsw(Symqg):
    """rabitqlib ``HnswIndex`` (HNSW over RaBitQ codes, its default 8 bits per dimension; the
    extra bits refine the 1-bit estimate, no float32 re-rank). It needs cluster centres for the
    codes: the library's ``RaBitQKMeans`` with 16 clusters (its own HNSW benchmark script's
    setting), trained inside the timed build. Cosine as for SymphonyQG.
    """

    name = "rabitqlib-hnsw"
    memory_source = "save() file"
    clusters = 16

    # unsupported(), available() and memory() are SymphonyQG's: the same library and files.
    def build(self, X, metric, threads):
        rabitqlib = peer("rabitqlib")
        cosine = metric == "cosine"
        X = _peer_rows(X, cosine)
        km = rabitqlib.RaBitQKMeans(X.shape[1], self.clusters, num_threads=threads)
        km.train(X)
        index = rabitqlib.HnswIndex(
            X.shape[1], len(X), M, EF_CONSTRUCTION, 8, "ip" if cosine else "l2", 0
        )
        index.build(X, km.centroids, km.assignments, threads)
        return index, cosine, len(X)

    def search(self, built_index, Q, k, ef):
        index, cosine, _ = built_index
        Q = _peer_rows(Q, cosine)
        ids, _ = index.search(Q, k, max(ef, k), 1)
        return np.asarray(ids, np.int64)


class FaissHnswRabitq:
    """faiss ``IndexHNSWRaBitQ``: HNSW over RaBitQ codes, no float32 re-rank (faiss >= 1.12).

    8 bits per dimension (``IndexHNSWRaBitQ(d, M, nb_bits)``): the 1-bit default stops at
    recall 0.16 and 4 bits at 0.54 on the clustered 10k x 128 set, 8 bits reach 0.95. The
    index takes the L2 metric only, so cosine runs L2 on normalised rows and queries (the same
    order as cosine).
    """

    name = "faiss-hnsw-rabitq"
    memory_source = "serialize_index()"
    bits = 8

    def available(self) -> str | None:
        faiss = peer("faiss")
        if not hasattr(faiss, "IndexHNSWRaBitQ"):
            return f"faiss {faiss.__version__} has no IndexHNSWRaBitQ (added in 1.12)"
        return None

    def build(self, X, metric, threads):
        faiss = peer("faiss")
        cosine = metric == "cosine"
        X = _peer_rows(X, cosine)
        index = faiss.IndexHNSWRaBitQ(X.shape[1], M, self.bits)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        with limit_threads(threads):
            index.train(X)
            index.add(X)
        return index, cosine

    def search(self, built_index, Q, k, ef):
        index, cosine = built_index
        Q = _peer_rows(Q, cosine)
        index.hnsw.efSearch = max(ef, k)
        with limit_threads(1):
            return index.search(Q, k)[1]

    def memory(self, built_index) -> tuple[float, float | None]:
        faiss = peer("faiss")
        index = built_index[0]
        return len(faiss.serialize_index(index)) / index.ntotal, None


class VsagHgraph:
    """pyvsag HGraph with RaBitQ base codes re-ranked by the float32 vectors
    (``base_quantization_type="rabitq"``, ``use_reorder`` with ``fp32``), max_degree 2M.

    pyvsag's binding searches one vector per call (``knn_search``), so its q/s include one
    Python call per query (a few microseconds; the other contenders take the whole batch in one
    call): read its figures as an upper bound on its per-query cost. Cosine: its own metric.
    """

    name = "pyvsag-hgraph"
    memory_source = "save() file"
    _probed: dict[tuple, str | None] = {}

    def unsupported(self, data: dict[str, Any]) -> str | None:
        """Build once in a forked child first: pyvsag 0.18.5 aborted the whole process (a C++
        abort inside ``Index.build``) on MiniLM 20k x 384 cosine here, which would end the
        benchmark run with every result unwritten; a child that dies skips the contender."""
        import multiprocessing

        key = (data.get("name"), data["base"].shape, data.get("metric"))
        if key not in self._probed:
            ctx = multiprocessing.get_context("fork")
            child = ctx.Process(target=self.build, args=(data["base"], data["metric"], 1))
            child.start()
            child.join()
            code = child.exitcode
            self._probed[key] = (
                None if code == 0 else f"pyvsag's build died here (exit code {code})"
            )
        return self._probed[key]

    def available(self) -> str | None:
        return None

    def build(self, X, metric, threads):
        import json

        pyvsag = peer("pyvsag")
        X = np.ascontiguousarray(X, np.float32)
        params = {
            "dtype": "float32",
            "metric_type": "cosine" if metric == "cosine" else "l2",
            "dim": int(X.shape[1]),
            "index_param": {
                "base_quantization_type": "rabitq",
                "use_reorder": True,
                "precise_quantization_type": "fp32",
                "max_degree": 2 * M,
                "ef_construction": EF_CONSTRUCTION,
                "build_thread_count": threads,
            },
        }
        index = pyvsag.Index("hgraph", json.dumps(params))
        index.build(
            vectors=X.ravel(),
            ids=np.arange(len(X), dtype=np.int64),
            num_elements=len(X),
            dim=int(X.shape[1]),
        )
        return index, len(X)

    def search(self, built_index, Q, k, ef):
        import json

        index, _ = built_index
        params = json.dumps({"hgraph": {"ef_search": int(max(ef, k))}})
        Q = np.ascontiguousarray(Q, np.float32)
        out = np.empty((len(Q), k), np.int64)
        for i, q in enumerate(Q):
            out[i] = index.knn_search(vector=q, k=k, parameters=params)[0][:k]
        return out

    def memory(self, built_index) -> tuple[float, float | None]:
        index, n = built_index
        return _saved_size(index.save, n), None


def _saved_size(save, n: int) -> float:
    """Bytes per vector of what a library's ``save(path)`` writes (a file or a folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index"
        save(str(path))
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        return sum(p.stat().st_size for p in files) / max(n, 1)


ADAPTERS = {
    a.name: a
    for a in (
        HnswlibBase(),
        PysimQ("pysim-f32", None),
        PysimQ("pysim-f16", "f16"),
        PysimQ("pysim-bf16", "bf16"),
        PysimQ("pysim-sq8", "sq8"),
        PysimQ("pysim-sq4", "sq4"),
        PysimQ("pysim-sq8-refine0", "sq8", refine=0),
        PysimQ("pysim-rabitq", "rabitq"),
        Symqg(),
        RabitqHnsw(),
        FaissHnswRabitq(),
        VsagHgraph(),
        FaissSQ("faiss-hnsw-sq8", 8),
        FaissSQ("faiss-hnsw-sq4", 4),
        Pynndescent(),
        Scann(),
    )
}
CONTENDERS = list(ADAPTERS)
PEER_MODULE = {
    "hnswlib": "hnswlib",
    "faiss-hnsw-sq8": "faiss",
    "faiss-hnsw-sq4": "faiss",
    "rabitqlib-symqg": "rabitqlib",
    "rabitqlib-hnsw": "rabitqlib",
    "faiss-hnsw-rabitq": "faiss",
    "pyvsag-hgraph": "pyvsag",
    "pynndescent": "pynndescent",
    "scann": "scann",
}


#: Metrics the peers' adapters map to their own (a --dataset with "ip" runs pysim alone).
PEER_METRICS = ("euclidean", "sqeuclidean", "cosine")


def knobs(contender: str) -> list[Any]:
    if contender == "pynndescent":
        return EPSILONS
    if contender == "scann":
        return _scann_knobs()
    return EFS if full() else QUICK_EFS


def knob_label(contender: str, knob: Any) -> str:
    if contender == "pynndescent":
        return f"epsilon={knob}"
    if contender == "scann":
        return f"leaves={knob[0]:g},reorder={knob[1]}"
    return f"ef={knob}"


CASES = [(c, k) for c in CONTENDERS for k in knobs(c)]

# Only the index in use stays alive (see the module docstring); its build facts are kept.
_current: dict[tuple[str, str], Any] = {}
_built: dict[tuple[str, str], dict[str, Any]] = {}
_sweep: list[dict[str, Any]] = []


def built(contender: str, name: str) -> tuple[Any, dict[str, Any]]:
    """The (dataset, contender) index, built once (timed), and its build facts."""
    key = (name, contender)
    if key not in _current:
        _current.clear()  # drop the previous contender's index before building the next
        adapter = ADAPTERS[contender]
        d = dataset(name)
        if hasattr(adapter, "warm_up"):
            adapter.warm_up(d["base"], d["metric"])
        # Timed once. Process CPU time (all threads) next to the wall clock, because other
        # jobs on a shared machine stretch the wall clock, not the CPU time.
        t, c = time.perf_counter(), time.process_time()
        index = adapter.build(d["base"], d["metric"], BUILD_THREADS)
        build_s, build_cpu_s = time.perf_counter() - t, time.process_time() - c
        per_vector, vectors = adapter.memory(index)
        _current[key] = index
        _built[key] = {
            "build_s": build_s,
            "build_cpu_s": build_cpu_s,
            "build_threads": BUILD_THREADS,
            "bytes_per_vector": per_vector,
            "vector_bytes_per_vector": vectors,
            "float32_bytes_per_vector": 4 * d["base"].shape[1],
            "memory_source": adapter.memory_source,
        }
    return _current[key], _built[key]


# ---------------------------------------------------------------------------- the sweep


@pytest.mark.parametrize(
    ("contender", "knob"), CASES, ids=[f"{c}-{knob_label(c, k)}" for c, k in CASES]
)
@pytest.mark.parametrize("name", DATASETS)
def test_sweep(benchmark, name, contender, knob):
    if contender in PEER_MODULE:
        peer(PEER_MODULE[contender])
    adapter = ADAPTERS[contender]
    d = dataset(name)
    why = adapter.available()
    if why is None and hasattr(adapter, "unsupported"):
        why = adapter.unsupported(d)
    if why is None and not contender.startswith("pysim") and d["metric"] not in PEER_METRICS:
        why = f"{contender} is set up here for {', '.join(PEER_METRICS)} only, not {d['metric']}"
    if why:
        print(f"skipped: {contender} ({why})")
        pytest.skip(why)
    index, facts = built(contender, name)
    Q = d["queries"]
    t = time.perf_counter()
    found = adapter.search(index, Q, K, knob)  # warm-up call; its answer is the one checked
    first = time.perf_counter() - t
    rec = recall_at_k_checked(found, d["gt"], len(d["base"]))
    cpu: list[float] = []

    def run():
        # Process CPU time next to wall time: the search is single-threaded, so CPU time is
        # its cost even while other jobs share the cores.
        c = time.process_time()
        adapter.search(index, Q, K, knob)
        cpu.append(time.process_time() - c)

    benchmark.group = f"search-{name}"
    # A fast call (a few ms on the quick run's 20k set) gets more rounds, up to about half a
    # second of timing (a quarter in the quick run): the median of five 5-ms calls on a shared
    # machine is mostly noise.
    timing = 0.5 if full() else 0.25
    n_rounds = max(adaptive_rounds(first, budget=1.5), min(25, int(timing / max(first, 1e-6))))
    benchmark.pedantic(run, rounds=n_rounds, iterations=1)
    qps = len(Q) / float(benchmark.stats.stats.median)
    point = {
        "contender": contender,
        "dataset": name,
        "case": f"search-{name}",
        "params": knob_label(contender, knob),
        "ef": knob if isinstance(knob, int) else None,
        "recall": rec,
        "qps": qps,
        "qps_cpu": len(Q) / max(float(np.median(cpu)), 1e-9),
        "threads": 1,
        "k": K,
        **facts,
    }
    record(benchmark, **{k: v for k, v in point.items() if v is not None})
    _sweep.append(point)


def recall_at_k_checked(found: np.ndarray, gt: np.ndarray, n: int) -> float:
    """recall@10 after checking the answer's shape and id range (a wrong id map fails loudly)."""
    found = np.asarray(found)
    assert found.shape == (len(gt), K), f"expected ({len(gt)}, {K}) ids, got {found.shape}"
    assert found.max() < n, "an id beyond the base set"
    return recall_at_k(found, gt, K)


# ---------------------------------------------------------------------------- summary


def summary_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, contender): QPS at each target recall and its ratio to hnswlib.

    ``records``: sweep points (``contender``, ``dataset``, ``recall``, ``qps`` and the build
    facts), as this module collects them or as ``report.load_records`` flattens them.
    QPS at a target is interpolated on the contender's recall/QPS Pareto front; None when the
    target was never reached.
    """
    points = [r for r in records if r.get("recall") is not None and r.get("qps")]
    keys: list[tuple[str, str]] = []
    for r in points:
        if (r["dataset"], r["contender"]) not in keys:
            keys.append((r["dataset"], r["contender"]))
    order = {c: i for i, c in enumerate(CONTENDERS)}
    keys.sort(key=lambda k: (k[0], order.get(k[1], len(order)), k[1]))
    rows = []
    for ds, c in keys:
        rs = [r for r in points if r["dataset"] == ds and r["contender"] == c]
        row = {"dataset": ds, "contender": c, "max_recall": max(r["recall"] for r in rs)}
        for key in ("qps", "qps_cpu"):
            front = pareto([(r["recall"], r[key]) for r in rs if r.get(key)])
            for t in TARGETS:
                row[f"{key}@{t}"] = qps_at(front, t)
        for f in (
            "build_s",
            "build_cpu_s",
            "bytes_per_vector",
            "vector_bytes_per_vector",
            "float32_bytes_per_vector",
            "memory_source",
        ):
            row[f] = next((r[f] for r in rs if r.get(f) is not None), None)
        rows.append(row)
    for row in rows:
        base = next(
            (b for b in rows if b["dataset"] == row["dataset"] and b["contender"] == "hnswlib"),
            None,
        )
        for key in ("qps", "qps_cpu"):
            for t in TARGETS:
                mine, ref = row[f"{key}@{t}"], base and base[f"{key}@{t}"]
                row[f"{key}_ratio@{t}"] = mine / ref if mine and ref else None
        for f in ("build_s", "build_cpu_s"):
            row[f + "_ratio"] = row[f] / base[f] if base and row[f] and base[f] else None
    return rows


def _num(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def summary_markdown(records: list[dict[str, Any]]) -> str:
    """The issue's table: QPS at recall 0.95 / 0.99 as multiples of hnswlib, build, memory."""
    rows = summary_rows(records)
    if not rows:
        return ""
    head = (
        "| dataset | contender | QPS @ 0.95 | × hnswlib | QPS @ 0.99 | × hnswlib "
        "| × hnswlib by CPU time (0.95 / 0.99) | max recall | build s (× hnswlib) "
        "| build CPU s (× hnswlib) | bytes / vector | vector bytes / vector (× float32) "
        "| memory source |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        vec = r["vector_bytes_per_vector"]
        vec_cell = (
            "—" if vec is None else f"{vec:,.0f} ({vec / r['float32_bytes_per_vector']:.2f}×)"
        )
        build = [
            _num(r[f], ".1f") + (f" ({r[f + '_ratio']:.2f}×)" if r[f + "_ratio"] else "")
            for f in ("build_s", "build_cpu_s")
        ]
        cpu = " / ".join(_num(r[f"qps_cpu_ratio@{t}"], ".2f") for t in TARGETS)
        lines.append(
            f"| {r['dataset']} | {r['contender']} | {_num(r['qps@0.95'], ',.0f')} "
            f"| {_num(r['qps_ratio@0.95'], '.2f')} | {_num(r['qps@0.99'], ',.0f')} "
            f"| {_num(r['qps_ratio@0.99'], '.2f')} | {cpu} | {r['max_recall']:.4f} "
            f"| {build[0]} | {build[1]} | {_num(r['bytes_per_vector'], ',.0f')} | {vec_cell} "
            f"| {r['memory_source']} |"
        )
    return "\n".join(lines)


def pysim_checks_markdown(records: list[dict[str, Any]], reference: str = "pysim-f32") -> str:
    """The checks of each pysim storage option against pysim's float32 index.

    Per dataset and variant: the largest recall@10 loss at the same ef (target for sq8 with
    ``refine=0``: within 1 point), build CPU time relative to float32 (target: no worse) and
    vector memory relative to float32 (target for sq8 with ``refine=0``: at most 0.3x).
    """
    rows = []
    summary = {(r["dataset"], r["contender"]): r for r in summary_rows(records)}
    for ds in dict.fromkeys(r["dataset"] for r in records):
        ref = {
            r["ef"]: r["recall"]
            for r in records
            if (r["dataset"], r["contender"]) == (ds, reference) and r.get("ef")
        }
        ref_row = summary.get((ds, reference))
        if not ref or ref_row is None:
            continue
        for c in [c for c in CONTENDERS if c.startswith("pysim") and c != reference]:
            mine = {
                r["ef"]: r["recall"]
                for r in records
                if (r["dataset"], r["contender"]) == (ds, c) and r.get("ef")
            }
            common = [e for e in sorted(mine) if e in ref]
            row = summary.get((ds, c))
            if not common or row is None:
                continue
            worst = max(common, key=lambda e: ref[e] - mine[e])
            build = (
                row["build_cpu_s"] / ref_row["build_cpu_s"]
                if row["build_cpu_s"] and ref_row["build_cpu_s"]
                else None
            )
            vec = row["vector_bytes_per_vector"]
            rows.append(
                f"| {ds} | {c} | {100 * (ref[worst] - mine[worst]):.2f} (ef={worst}: "
                f"{mine[worst]:.4f} vs {ref[worst]:.4f}) | {_num(build, '.2f')} "
                f"| {_num(vec and vec / row['float32_bytes_per_vector'], '.2f')} |"
            )
    if not rows:
        return ""
    head = (
        f"| dataset | variant | largest recall@10 loss vs {reference} at the same ef "
        f"(points) | build CPU s × {reference} | vector bytes × float32 |"
    )
    return "\n".join([head, "|---|---|---|---|---|", *rows])


#: One colour per contender (more contenders than matplotlib's default cycle has colours).
COLORS = {
    "hnswlib": "black",
    "pysim-f32": "tab:blue",
    "pysim-f16": "tab:orange",
    "pysim-bf16": "tab:green",
    "pysim-sq8": "tab:red",
    "pysim-sq4": "tab:purple",
    "pysim-sq8-refine0": "tab:brown",
    "pysim-rabitq": "navy",
    "rabitqlib-symqg": "crimson",
    "rabitqlib-hnsw": "darkorange",
    "faiss-hnsw-rabitq": "teal",
    "pyvsag-hgraph": "goldenrod",
    "faiss-hnsw-sq8": "tab:pink",
    "faiss-hnsw-sq4": "tab:gray",
    "pynndescent": "tab:olive",
    "scann": "tab:cyan",
}


def plot(records: list[dict[str, Any]], path: Path) -> Path | None:
    """recall@10 vs QPS (log), one panel per dataset, each contender's Pareto front."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("skipped: plot (matplotlib not installed)")
        return None
    points = [r for r in records if r.get("recall") is not None and r.get("qps")]
    names = list(dict.fromkeys(r["dataset"] for r in points))
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 5.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for c in CONTENDERS + sorted({r["contender"] for r in points} - set(CONTENDERS)):
            pts = [
                (r["recall"], r["qps"])
                for r in points
                if r["dataset"] == name and r["contender"] == c
            ]
            if not pts:
                continue
            front = pareto(pts)
            style = (
                {"ls": "--", "lw": 2}
                if c == "hnswlib"
                else {"lw": 2.2}
                if c.startswith("pysim")
                else {"lw": 1.2, "ls": ":"}
            )
            style["color"] = COLORS.get(c)
            best = max(r for r, _ in pts)
            label = c if best >= X_MIN else f"{c} (max recall {best:.2f}, off the panel)"
            ax.plot(*zip(*front, strict=True), marker="o", ms=3, label=label, **style)
        for t in TARGETS:
            ax.axvline(t, color="grey", lw=0.8, alpha=0.5)
        ax.set(
            title=f"{name} (k={K}, 1 search thread)",
            xlabel="recall@10",
            ylabel="queries / s (log)",
            yscale="log",
        )
        ax.set_xlim(X_MIN, 1.002)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report_section(records: list[dict[str, Any]], out: Path) -> tuple[str, list[Path]]:
    """Markdown and plot for ``results/quantized.md`` (called by ``report.write_part``)."""
    sweep = [r for r in records if str(r.get("case", "")).startswith("search-")]
    table = summary_markdown(sweep)
    if not table:
        return "", []
    md = (
        "QPS at recall@10 0.95 / 0.99 (interpolated on each contender's Pareto front; "
        "1 search thread; × hnswlib = same run), build time on "
        f"{next((r.get('build_threads') for r in sweep if r.get('build_threads')), '?')} "
        "threads, memory per vector:\n\n" + table
    )
    checks = pysim_checks_markdown(sweep)
    if checks:
        md += "\n\npysim's storage options against its float32 index (same run):\n\n" + checks
    png = plot(sweep, out / "quantized-recall-qps.png")
    return md, [png] if png else []


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    _current.clear()
    # Under run.py the driver writes the report (into its --out folder) from the JSON.
    if _sweep and not os.environ.get("PYSIM_BENCH_PROGRESS"):
        md, pngs = report_section(_sweep, RESULTS)
        (RESULTS / "quantized_summary.md").write_text(md + "\n")
        print("\n" + md + "".join(f"\nplot: {p}" for p in pngs))
