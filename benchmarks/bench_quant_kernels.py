"""Compressed-code kernels against the float32 ones, and asymmetric against symmetric scoring.

Three measurements:

* ``test_kernel_throughput``: every kernel (and pysim's float32 dot / l2sq under the same
  harness) on codes that fit in L2, in the contiguous ``many`` shape and the pointer ``batch``
  shape, at d = 128, 384, 784 on the best level this CPU has; plus an ISA sweep of the main
  kernels at d = 384. The kernel loop repeats inside C++, so no Python time is counted.
* ``test_random_access``: the shape of a graph search - batches of 32 random ids into ~100 MB
  of float32 vectors (or the same vectors compressed), where memory latency and bandwidth,
  not arithmetic, decide. This is where 2-8x smaller codes pay.
* ``test_ranking_quality``: brute-force top-10 by each store's search distance on the MNIST
  split, MiniLM (cosine) and clustered data, as recall@10 against exact search, alone and after
  re-ranking the best 20 / 50 candidates exactly; the time to score every point for every
  query is recorded with it. It decides asymmetric vs symmetric scoring and the range clipping.

extra_info: contender, kernel, isa, dim, shape, codes_per_s, gb_per_s (code bytes read per
second), bytes_per_code; for the ranking: dataset, kind, mode, clip, recall, recall_refine20,
recall_refine50 (exact re-rank of the best 20 / 50), recall_decoded50 (re-rank of the best 50 by
the decoded-vector distance: what refine=0 can do), distances_per_s.

Run: ``pytest benchmarks/bench_quant_kernels.py --benchmark-only -s`` (``-k ranking`` ...).
"""

from __future__ import annotations

import numpy as np
import pytest
from _common import clustered, exact_knn, load_minilm, load_mnist, recall_at_k, record, rounds

import pysim
from pysim import _core

DIMS = [128, 384, 784]
KERNELS = {  # name -> (code layout, query kind)
    "f32_l2sq": ("f32", "f"),
    "f32_dot": ("f32", "f"),
    "f16_l2sq": ("f16", "f"),
    "f16_dot": ("f16", "f"),
    "bf16_l2sq": ("bf16", "f"),
    "bf16_dot": ("bf16", "f"),
    "bf16_dot_bf16": ("bf16", "h"),
    "u8_l2sq": ("u8", "f"),
    "u8_dot": ("u8", "f"),
    "u8_dot_i8": ("u8", "i8"),
    "u8_l2sq_u8": ("u8", "code"),
    "u4_l2sq": ("u4", "f"),
    "u4_dot": ("u4", "f"),
    "u4_dot_i8": ("u4", "i8"),
    "u4_l2sq_u4": ("u4", "code"),
}
SWEEP_KERNELS = [
    "f32_l2sq",
    "f16_l2sq",
    "bf16_dot_bf16",
    "u8_l2sq",
    "u8_dot_i8",
    "u4_l2sq",
    "u4_dot_i8",
]
BEST = pysim.simd_info()["detected"]
ISAS = _core._available_isas()


def code_bytes(layout: str, dim: int) -> int:
    return {"f32": 4 * dim, "f16": 2 * dim, "bf16": 2 * dim, "u8": dim, "u4": (dim + 1) // 2}[
        layout
    ]


def operands(name: str, n: int, dim: int, seed: int = 0):
    """Random codes (n, bytes) and a query of the kernel's kind."""
    layout, qkind = KERNELS[name]
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, code_bytes(layout, dim)), dtype=np.uint8)
    if layout == "f32":
        codes = rng.standard_normal((n, dim)).astype(np.float32).view(np.uint8)
    elif layout in ("f16", "bf16"):
        codes.reshape(n, dim, 2)[:, :, 1] &= 0x3F  # finite, moderate exponents
    scale = rng.uniform(0.5, 1.5, dim).astype(np.float32)
    if qkind == "f":
        query = rng.standard_normal(dim).astype(np.float32)
    elif qkind == "h":
        query = rng.integers(0, 0x3F00, dim).astype(np.uint16)
    elif qkind == "i8":
        query = rng.integers(-127, 128, dim).astype(np.int8)
    else:
        query = codes[0].copy()
    return query, np.ascontiguousarray(codes), scale


def timed_kernel(benchmark, name, dim, n, shape, isa, *, order=None, repeats=1):
    query, codes, scale = operands(name, n, dim)
    previous = pysim.simd_info()["isa"]
    assert _core._set_isa(isa)
    try:

        def call():
            return _core._quant_kernel(name, query, codes, dim, scale, shape, order, repeats)

        call()  # warm caches and pages
        benchmark.pedantic(call, rounds=rounds(), iterations=1, warmup_rounds=1)
    finally:
        _core._set_isa(previous)
    count = (len(order) if order is not None else n) * repeats
    seconds = benchmark.stats.stats.median
    per_code = code_bytes(KERNELS[name][0], dim)
    record(
        benchmark,
        contender=f"pysim-{name}",
        kernel=name,
        isa=isa,
        dim=dim,
        shape=shape,
        codes_per_s=count / seconds,
        gb_per_s=count * per_code / seconds / 1e9,
        bytes_per_code=per_code,
    )


@pytest.mark.parametrize("shape", ["many", "batch"])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_throughput(benchmark, name, dim, shape):
    benchmark.group = f"quant kernels d={dim} {shape} ({BEST})"
    n = 256  # at most 800 KB of float32 codes: L2-resident, so arithmetic decides
    timed_kernel(benchmark, name, dim, n, shape, BEST, repeats=max(1, 2_000_000 // (n * dim)))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", SWEEP_KERNELS)
def test_kernel_isa_sweep(benchmark, name, isa):
    benchmark.group = f"quant kernels d=384 many, by ISA: {name}"
    timed_kernel(benchmark, name, 384, 256, "many", isa, repeats=20)


@pytest.mark.parametrize("dim", [128, 784])
@pytest.mark.parametrize(
    "name", ["f32_l2sq", "f16_l2sq", "bf16_l2sq", "u8_l2sq", "u8_dot_i8", "u4_l2sq", "u4_dot_i8"]
)
def test_random_access(benchmark, name, dim):
    # ~100 MB of float32 vectors; 20,480 distances per call in batches of 32 random ids.
    benchmark.group = f"quant kernels, random ids into 100 MB of float32, d={dim}"
    n = 100_000_000 // (4 * dim)
    order = np.random.default_rng(1).integers(0, n, 20_480).astype(np.int64)
    timed_kernel(benchmark, name, dim, n, "batch", BEST, order=order)


# ---- ranking quality: asymmetric vs symmetric, clipping ----------------------------------------

_datasets: dict[str, dict] = {}


# Each part sizes and caches its own workload (this one 20k rows, 200 queries); the shared loaders
# are _common's (duplicates pairs the cache idiom with bench_hnsw's).
def dataset(name: str) -> dict:
    if name not in _datasets:
        if name == "mnist":
            d = load_mnist()
        elif name == "minilm":
            d = load_minilm()
        else:
            X = clustered(20_000 + 200, 128, seed=0)
            d = {"base": X[:20_000], "queries": X[20_000:], "metric": "euclidean"}
        d["queries"] = d["queries"][:200]
        d["truth"] = exact_knn(d["base"], d["queries"], 10, d["metric"])
        _datasets[name] = d
    return _datasets[name]


# One row per (storage, distance mode, refine share) the sweep measures: a table (duplicates pairs
# its rows).
CONFIGS = [
    ("sq8", "asymmetric", 0.0),
    ("sq8", "symmetric", 0.0),
    ("sq8", "symmetric", 0.001),
    ("sq4", "asymmetric", 0.0),
    ("sq4", "symmetric", 0.0),
    ("sq4", "asymmetric", 0.001),
    ("sq4", "symmetric", 0.001),
    ("sq4", "symmetric", 0.003),
    ("sq4", "symmetric", 0.01),
    ("f16", "asymmetric", 0.0),
    ("bf16", "asymmetric", 0.0),
    ("bf16", "symmetric", 0.0),
]


# Symmetric bf16 is defined for ip / cosine only (MiniLM here).
RANKING = [
    (name, *c)
    for name in ("mnist", "minilm", "clustered")
    for c in CONFIGS
    if not (c[0] == "bf16" and c[1] == "symmetric" and name != "minilm")
]


@pytest.mark.parametrize("name,kind,mode,clip", RANKING)
def test_ranking_quality(benchmark, name, kind, mode, clip):
    d = dataset(name)
    cosine = d["metric"] == "cosine"
    space = "ip" if cosine else "l2"
    base, queries = d["base"], d["queries"]
    store = _core._QuantStore(kind, base.shape[1], space, cosine, mode, True, clip)
    store.append(base, threads=2)
    slots = np.arange(len(base), dtype=np.int64)
    benchmark.group = f"ranking {name}"
    benchmark.pedantic(
        lambda: store.distances(queries, slots, "search"), rounds=rounds(), iterations=1
    )
    dist = store.distances(queries, slots, "search")
    top = np.argsort(dist, axis=1, kind="stable")
    recalls = {}
    for r, which in ((20, "refine"), (50, "refine"), (50, "decoded")):
        cand = top[:, :r]
        rescored = np.stack(
            [store.distances(queries[i : i + 1], cand[i], which)[0] for i in range(len(queries))]
        )
        order = np.argsort(rescored, axis=1, kind="stable")[:, :10]
        recalls[r, which] = recall_at_k(np.take_along_axis(cand, order, 1), d["truth"], 10)
    seconds = benchmark.stats.stats.median
    record(
        benchmark,
        contender=f"pysim-{kind}-{mode}" + (f"-clip{clip}" if clip else ""),
        dataset=name,
        kind=kind,
        mode=mode,
        clip=clip,
        isa=BEST,
        recall=recall_at_k(top[:, :10], d["truth"], 10),
        recall_refine20=recalls[20, "refine"],
        recall_refine50=recalls[50, "refine"],
        recall_decoded50=recalls[50, "decoded"],
        distances_per_s=len(queries) * len(base) / seconds,
        bytes_per_vector=store.stride,
    )
    info = benchmark.extra_info
    print(
        f"\n{name:9s} {kind:4s} {mode:10s} clip={clip:<6} recall@10={info['recall']:.4f}"
        f" refine20={recalls[20, 'refine']:.4f} refine50={recalls[50, 'refine']:.4f}"
        f" decoded50={recalls[50, 'decoded']:.4f}"
        f" {info['distances_per_s'] / 1e6:.1f} M dist/s"
    )
