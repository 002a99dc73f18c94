# Type stubs for the compiled module pysim._core (private: use the pysim package).
# Generated with pybind11-stubgen from the built module, then kept in the repository.
# Arrays reaching these functions are canonical (exact dtype, C-contiguous): pysim's Python
# layer converts and validates; anything else raises TypeError here.
# The _f32 / _f64 pairs are one C++ template bound once per dtype, so their stubs repeat
# line for line (duplicates pairs them).
"""
pysim compiled core (private; use the pysim package)
"""

from __future__ import annotations

import typing

import numpy
import numpy.typing

__all__: list[str] = [
    "HnswIndex",
    "HnswState",
    "KDTree_f32",
    "KDTree_f64",
    "Metric",
    "brute_knn_f32",
    "brute_knn_f64",
    "brute_max_safe_sqnorm_f32",
    "brute_max_safe_sqnorm_f64",
    "brute_radius_f32",
    "brute_radius_f64",
    "brute_sqnorms_f32",
    "brute_sqnorms_f64",
    "cdist_f32",
    "cdist_f64",
    "dot_f32",
    "dot_f64",
    "gram_f32",
    "gram_f64",
    "itml_projections",
    "nca_dense_objective",
    "paired_f32",
    "paired_f64",
    "rec_ease_weights",
    "rec_gram_dense",
    "rec_knn_similarity",
    "rec_recommend_dense",
    "rec_recommend_sparse",
    "scml_hinge_loss_grad",
    "shifted_exp_rows",
    "simd_info",
]

class Metric:
    """
    Members:

      sqeuclidean

      euclidean

      cosine

      ip

      mahalanobis
    """

    __members__: typing.ClassVar[dict[str, Metric]]
    cosine: typing.ClassVar[Metric]
    euclidean: typing.ClassVar[Metric]
    ip: typing.ClassVar[Metric]
    mahalanobis: typing.ClassVar[Metric]
    sqeuclidean: typing.ClassVar[Metric]
    @typing.overload
    def __eq__(self, other: Metric) -> bool: ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool: ...
    def __getstate__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __index__(self) -> int: ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __int__(self) -> int: ...
    @typing.overload
    def __ne__(self, other: Metric) -> bool: ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool: ...
    def __repr__(self) -> str: ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __str__(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class KDTree_f32:
    @staticmethod
    def from_state(
        n: typing.SupportsInt | typing.SupportsIndex,
        dim: typing.SupportsInt | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        points: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
        ids: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
        split_dims: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
        split_bounds: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
        bbox: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
    ) -> KDTree_f32: ...
    def __init__(
        self,
        data: numpy.typing.NDArray[numpy.float32],
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        threads: typing.SupportsInt | typing.SupportsIndex,
        _wide_ids: bool = False,
    ) -> None: ...
    def query(
        self,
        Q: numpy.typing.NDArray[numpy.float32],
        k: typing.SupportsInt | typing.SupportsIndex,
        euclidean: bool,
        threads: typing.SupportsInt | typing.SupportsIndex,
    ) -> tuple: ...
    def query_radius(
        self,
        Q: numpy.typing.NDArray[numpy.float32],
        r: numpy.typing.NDArray[numpy.float32],
        euclidean: bool,
        return_distance: bool,
        sort_results: bool,
        threads: typing.SupportsInt | typing.SupportsIndex,
    ) -> tuple: ...
    def state(self) -> dict: ...
    @property
    def _wide_ids(self) -> bool: ...
    @property
    def dim(self) -> int: ...
    @property
    def leaf_size(self) -> int: ...
    @property
    def levels(self) -> int: ...
    @property
    def max_leaf(self) -> int: ...
    @property
    def n(self) -> int: ...

class KDTree_f64:
    @staticmethod
    def from_state(
        n: typing.SupportsInt | typing.SupportsIndex,
        dim: typing.SupportsInt | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        points: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
        ids: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
        split_dims: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
        split_bounds: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
        bbox: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
    ) -> KDTree_f64: ...
    def __init__(
        self,
        data: numpy.typing.NDArray[numpy.float64],
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        threads: typing.SupportsInt | typing.SupportsIndex,
        _wide_ids: bool = False,
    ) -> None: ...
    def query(
        self,
        Q: numpy.typing.NDArray[numpy.float64],
        k: typing.SupportsInt | typing.SupportsIndex,
        euclidean: bool,
        threads: typing.SupportsInt | typing.SupportsIndex,
    ) -> tuple: ...
    def query_radius(
        self,
        Q: numpy.typing.NDArray[numpy.float64],
        r: numpy.typing.NDArray[numpy.float64],
        euclidean: bool,
        return_distance: bool,
        sort_results: bool,
        threads: typing.SupportsInt | typing.SupportsIndex,
    ) -> tuple: ...
    def state(self) -> dict: ...
    @property
    def _wide_ids(self) -> bool: ...
    @property
    def dim(self) -> int: ...
    @property
    def leaf_size(self) -> int: ...
    @property
    def levels(self) -> int: ...
    @property
    def max_leaf(self) -> int: ...
    @property
    def n(self) -> int: ...

class HnswState:
    codes: typing.Any
    counts0: typing.Any
    entry: int
    free_slots: typing.Any
    labels: typing.Any
    levels: typing.Any
    links0: typing.Any
    max_level: int
    n: int
    next_id: int
    quant: typing.Any
    rng: int
    status: typing.Any
    upper_counts: typing.Any
    upper_links: typing.Any
    def __init__(self) -> None: ...

class HnswIndex:
    @staticmethod
    def from_state(
        dim: typing.SupportsInt | typing.SupportsIndex,
        metric: Metric,
        *,
        M: typing.SupportsInt | typing.SupportsIndex,
        ef_construction: typing.SupportsInt | typing.SupportsIndex,
        seed: typing.SupportsInt | typing.SupportsIndex,
        quantization: str | None,
        refine: typing.SupportsInt | typing.SupportsIndex | None,
        state: HnswState,
    ) -> HnswIndex: ...
    def __init__(
        self,
        dim: typing.SupportsInt | typing.SupportsIndex,
        metric: Metric,
        *,
        M: typing.SupportsInt | typing.SupportsIndex,
        ef_construction: typing.SupportsInt | typing.SupportsIndex,
        max_elements: typing.SupportsInt | typing.SupportsIndex,
        seed: typing.SupportsInt | typing.SupportsIndex,
        quantization: str | None = None,
        refine: typing.SupportsInt | typing.SupportsIndex | None = None,
    ) -> None: ...
    def __len__(self) -> int: ...
    def add(
        self,
        X: numpy.typing.NDArray[numpy.float32],
        ids: numpy.typing.NDArray[numpy.int64] | None = None,
        *,
        threads: typing.SupportsInt | typing.SupportsIndex,
        progress: typing.Any = None,
    ) -> None: ...
    def capacity(self) -> int: ...
    def contains(self, id: typing.SupportsInt | typing.SupportsIndex) -> bool: ...
    def drift(self) -> tuple[int, int, int]: ...
    def exact_search(
        self,
        Q: numpy.typing.NDArray[numpy.float32],
        k: typing.SupportsInt | typing.SupportsIndex,
        *,
        threads: typing.SupportsInt | typing.SupportsIndex,
    ) -> tuple: ...
    def export_state(self) -> HnswState: ...
    def get_items(
        self, ids: numpy.typing.NDArray[numpy.int64]
    ) -> numpy.typing.NDArray[numpy.float32]: ...
    def ids(self) -> numpy.typing.NDArray[numpy.int64]: ...
    def memory_bytes(self) -> int: ...
    def next_id(self) -> int: ...
    def refit(self, threads: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def remove(self, ids: numpy.typing.NDArray[numpy.int64]) -> None: ...
    def seal_blocks(self, threads: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def search(
        self,
        Q: numpy.typing.NDArray[numpy.float32],
        k: typing.SupportsInt | typing.SupportsIndex,
        *,
        ef: typing.SupportsInt | typing.SupportsIndex,
        threads: typing.SupportsInt | typing.SupportsIndex,
        allowed: numpy.typing.NDArray[numpy.int64] | None = None,
    ) -> tuple: ...
    @property
    def M(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def ef_construction(self) -> int: ...
    @property
    def quantization(self) -> typing.Any: ...
    @property
    def refine(self) -> int: ...
    @property
    def seed(self) -> int: ...

class _Quantizer:
    def __init__(
        self,
        kind: str,
        dim: typing.SupportsInt | typing.SupportsIndex,
        space: str = "l2",
        normalize: bool = False,
        mode: str = "asymmetric",
    ) -> None: ...
    def check_rows(self, X: numpy.typing.NDArray[numpy.float32]) -> None: ...
    def count_clipped(self, X: numpy.typing.NDArray[numpy.float32]) -> int: ...
    def decode(
        self, records: numpy.typing.NDArray[numpy.uint8]
    ) -> numpy.typing.NDArray[numpy.float32]: ...
    def distances(
        self,
        queries: numpy.typing.NDArray[numpy.float32],
        records: numpy.typing.NDArray[numpy.uint8],
        which: str = "search",
        form: str = "batch",
    ) -> numpy.typing.NDArray[numpy.float32]: ...
    def encode(
        self, X: numpy.typing.NDArray[numpy.float32]
    ) -> tuple[numpy.typing.NDArray[numpy.uint8], int]: ...
    def fit(
        self,
        X: numpy.typing.NDArray[numpy.float32],
        clip: typing.SupportsFloat | typing.SupportsIndex = 0.0,
        threads: typing.SupportsInt | typing.SupportsIndex = 1,
    ) -> None: ...
    def prepared(self, query: numpy.typing.NDArray[numpy.float32]) -> dict: ...
    def set_ranges(
        self, lo: numpy.typing.NDArray[numpy.float32], hi: numpy.typing.NDArray[numpy.float32]
    ) -> None: ...
    @property
    def code_bytes(self) -> int: ...
    @property
    def fitted(self) -> bool: ...
    @property
    def hi(self) -> numpy.typing.NDArray[numpy.float32]: ...
    @property
    def levels(self) -> int: ...
    @property
    def lo(self) -> numpy.typing.NDArray[numpy.float32]: ...
    @property
    def record_bytes(self) -> int: ...
    @property
    def step(self) -> numpy.typing.NDArray[numpy.float32]: ...
    @property
    def trailer_offset(self) -> typing.Any: ...

class _QuantStore:
    @staticmethod
    def from_state(
        kind: str,
        dim: typing.SupportsInt | typing.SupportsIndex,
        space: str,
        normalize: bool,
        mode: str,
        keep_full: bool,
        clip: typing.SupportsFloat | typing.SupportsIndex,
        state: dict,
    ) -> _QuantStore: ...
    def __init__(
        self,
        kind: str,
        dim: typing.SupportsInt | typing.SupportsIndex,
        space: str = "l2",
        normalize: bool = False,
        mode: str = "asymmetric",
        keep_full: bool = True,
        clip: typing.SupportsFloat | typing.SupportsIndex = 0.0,
    ) -> None: ...
    def __len__(self) -> int: ...
    def append(
        self,
        X: numpy.typing.NDArray[numpy.float32],
        threads: typing.SupportsInt | typing.SupportsIndex = 1,
    ) -> int: ...
    def count_clipped(self, X: numpy.typing.NDArray[numpy.float32]) -> int: ...
    def decode(
        self, slots: numpy.typing.NDArray[numpy.int64]
    ) -> numpy.typing.NDArray[numpy.float32]: ...
    def distances(
        self,
        queries: numpy.typing.NDArray[numpy.float32],
        slots: numpy.typing.NDArray[numpy.int64],
        which: str = "search",
    ) -> numpy.typing.NDArray[numpy.float32]: ...
    def get_state(self) -> dict: ...
    def refit(
        self, extra: typing.Any = None, threads: typing.SupportsInt | typing.SupportsIndex = 1
    ) -> None: ...
    def set_rows(
        self,
        slots: numpy.typing.NDArray[numpy.int64],
        X: numpy.typing.NDArray[numpy.float32],
        threads: typing.SupportsInt | typing.SupportsIndex = 1,
    ) -> None: ...
    def slot_distances(
        self,
        from_slot: typing.SupportsInt | typing.SupportsIndex,
        slots: numpy.typing.NDArray[numpy.int64],
    ) -> numpy.typing.NDArray[numpy.float32]: ...
    @property
    def capacity(self) -> int: ...
    @property
    def drift(self) -> tuple[int, int, int]: ...
    @property
    def fitted(self) -> bool: ...
    @property
    def lo(self) -> numpy.typing.NDArray[numpy.float32]: ...
    @property
    def memory_bytes(self) -> int: ...
    @property
    def step(self) -> numpy.typing.NDArray[numpy.float32]: ...
    @property
    def stride(self) -> int: ...

def _available_isas() -> list: ...
def _from_half(
    which: str, h: numpy.typing.NDArray[numpy.uint16]
) -> numpy.typing.NDArray[numpy.float32]: ...
def _kdtree_levels(
    n: typing.SupportsInt | typing.SupportsIndex,
    leaf_size: typing.SupportsInt | typing.SupportsIndex,
) -> int: ...

# Only in PYSIM_TESTING builds (every build from a checkout; not in release wheels).
def _pool_spin(
    jobs: typing.SupportsInt | typing.SupportsIndex,
    chunks: typing.SupportsInt | typing.SupportsIndex,
    chunk_seconds: typing.SupportsFloat | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex,
    fail_at: typing.SupportsInt | typing.SupportsIndex = -1,
) -> int:
    """
    Test hook: run synthetic busy chunks on the thread pool (see bind_testing.cpp).
    """

def _quant_kernel(
    name: str,
    query: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
    codes: numpy.typing.NDArray[numpy.uint8],
    dim: typing.SupportsInt | typing.SupportsIndex,
    scale: typing.Any = None,
    form: str = "pair",
    order: typing.Any = None,
    repeats: typing.SupportsInt | typing.SupportsIndex = 1,
) -> numpy.ndarray[typing.Any, numpy.dtype[typing.Any]]:
    """
    Runs one compressed-code kernel (tests and benchmarks).
    """

def _set_isa(name: str) -> bool:
    """
    Switch the active kernel level (tests, benchmarks); False if unavailable.
    """

def _fastscan32(
    codes: numpy.typing.NDArray[numpy.uint8],
    lut: numpy.typing.NDArray[numpy.uint8],
    repeats: typing.SupportsInt | typing.SupportsIndex = 1,
) -> numpy.typing.NDArray[numpy.uint32]:
    """
    Runs the FastScan kernel on one batch (tests, benchmarks).
    """

def _to_half(
    which: str, x: numpy.typing.NDArray[numpy.float32]
) -> numpy.typing.NDArray[numpy.uint16]: ...
def brute_knn_f32(
    data: numpy.typing.NDArray[numpy.float32],
    sqnorms: numpy.typing.NDArray[numpy.float32],
    max_sqnorm: typing.SupportsFloat | typing.SupportsIndex,
    metric: Metric,
    queries: numpy.typing.NDArray[numpy.float32],
    k: typing.SupportsInt | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def brute_knn_f64(
    data: numpy.typing.NDArray[numpy.float64],
    sqnorms: numpy.typing.NDArray[numpy.float64],
    max_sqnorm: typing.SupportsFloat | typing.SupportsIndex,
    metric: Metric,
    queries: numpy.typing.NDArray[numpy.float64],
    k: typing.SupportsInt | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def brute_radius_f32(
    data: numpy.typing.NDArray[numpy.float32],
    sqnorms: numpy.typing.NDArray[numpy.float32],
    max_sqnorm: typing.SupportsFloat | typing.SupportsIndex,
    metric: Metric,
    queries: numpy.typing.NDArray[numpy.float32],
    radii: numpy.typing.NDArray[numpy.float64],
    sort: bool,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def brute_radius_f64(
    data: numpy.typing.NDArray[numpy.float64],
    sqnorms: numpy.typing.NDArray[numpy.float64],
    max_sqnorm: typing.SupportsFloat | typing.SupportsIndex,
    metric: Metric,
    queries: numpy.typing.NDArray[numpy.float64],
    radii: numpy.typing.NDArray[numpy.float64],
    sort: bool,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def brute_sqnorms_f32(
    data: numpy.typing.NDArray[numpy.float32], threads: typing.SupportsInt | typing.SupportsIndex
) -> numpy.typing.NDArray[numpy.float32]: ...
def brute_sqnorms_f64(
    data: numpy.typing.NDArray[numpy.float64], threads: typing.SupportsInt | typing.SupportsIndex
) -> numpy.typing.NDArray[numpy.float64]: ...
def cdist_f32(
    xa: numpy.typing.NDArray[numpy.float32],
    xb: numpy.typing.NDArray[numpy.float32],
    metric: Metric,
    threads: typing.SupportsInt | typing.SupportsIndex,
    out: typing.Any = None,
) -> numpy.typing.NDArray[numpy.float32]: ...
def cdist_f64(
    xa: numpy.typing.NDArray[numpy.float64],
    xb: numpy.typing.NDArray[numpy.float64],
    metric: Metric,
    threads: typing.SupportsInt | typing.SupportsIndex,
    out: typing.Any = None,
) -> numpy.typing.NDArray[numpy.float64]: ...
def dot_f32(
    xa: numpy.typing.NDArray[numpy.float32],
    xb: numpy.typing.NDArray[numpy.float32],
    threads: typing.SupportsInt | typing.SupportsIndex,
    out: typing.Any = None,
) -> numpy.typing.NDArray[numpy.float32]: ...
def dot_f64(
    xa: numpy.typing.NDArray[numpy.float64],
    xb: numpy.typing.NDArray[numpy.float64],
    threads: typing.SupportsInt | typing.SupportsIndex,
    out: typing.Any = None,
) -> numpy.typing.NDArray[numpy.float64]: ...
def gram_f32(
    X: numpy.typing.NDArray[numpy.float32], threads: typing.SupportsInt | typing.SupportsIndex = 1
) -> tuple:
    """
    (X.T @ X, X.sum(axis=0)) for a C-contiguous float32 X, one pass over X.
    """

def gram_f64(
    X: numpy.typing.NDArray[numpy.float64], threads: typing.SupportsInt | typing.SupportsIndex = 1
) -> tuple:
    """
    (X.T @ X, X.sum(axis=0)) for a C-contiguous float64 X, one pass over X.
    """

def itml_projections(
    A: numpy.typing.NDArray[numpy.float64],
    V: numpy.typing.NDArray[numpy.float64],
    sign: numpy.typing.NDArray[numpy.float64],
    bhat: numpy.typing.NDArray[numpy.float64],
    gamma: typing.SupportsFloat | typing.SupportsIndex,
    max_iter: typing.SupportsInt | typing.SupportsIndex,
    tol: typing.SupportsFloat | typing.SupportsIndex,
) -> tuple:
    """ITML's cyclic Bregman projections (csrc/metric/itml.hpp); returns (A, passes, conv)."""

def nca_dense_objective(
    X: numpy.typing.NDArray[numpy.float64],
    XT: numpy.typing.NDArray[numpy.float64],
    L: numpy.typing.NDArray[numpy.float64],
    starts: numpy.typing.NDArray[numpy.int64],
    threads: typing.SupportsInt | typing.SupportsIndex = 1,
) -> tuple:
    """
    NCA's objective sum_i p_i and its gradient (k, d) for rows sorted by class
    (csrc/metric/nca.hpp; X (n, d), XT its transpose, L (k, d), starts the class bounds).
    """

def paired_f32(
    xa: numpy.typing.NDArray[numpy.float32],
    xb: numpy.typing.NDArray[numpy.float32],
    metric: Metric,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.float32]: ...
def paired_f64(
    xa: numpy.typing.NDArray[numpy.float64],
    xb: numpy.typing.NDArray[numpy.float64],
    metric: Metric,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.float64]: ...
def rec_ease_weights(
    P: numpy.typing.NDArray[numpy.float32],
    upper: bool,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> None: ...
def rec_gram_dense(
    iu_indptr: numpy.typing.NDArray[numpy.int64],
    iu_indices: numpy.typing.NDArray[numpy.int32],
    iu_data: numpy.typing.NDArray[numpy.float64],
    ui_indptr: numpy.typing.NDArray[numpy.int64],
    ui_indices: numpy.typing.NDArray[numpy.int32],
    ui_data: numpy.typing.NDArray[numpy.float64],
    out: numpy.typing.NDArray[numpy.float32],
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> None: ...
def rec_knn_similarity(
    iu_indptr: numpy.typing.NDArray[numpy.int64],
    iu_indices: numpy.typing.NDArray[numpy.int32],
    iu_data: numpy.typing.NDArray[numpy.float64],
    ui_indptr: numpy.typing.NDArray[numpy.int64],
    ui_indices: numpy.typing.NDArray[numpy.int32],
    ui_data: numpy.typing.NDArray[numpy.float64],
    sq_norms: numpy.typing.NDArray[numpy.float64],
    norm: typing.SupportsInt | typing.SupportsIndex,
    shrinkage: typing.SupportsFloat | typing.SupportsIndex,
    alpha: typing.SupportsFloat | typing.SupportsIndex,
    k: typing.SupportsInt | typing.SupportsIndex,
    begin: typing.SupportsInt | typing.SupportsIndex,
    end: typing.SupportsInt | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex,
    pattern: bool,
    user_weight: numpy.typing.NDArray[numpy.float64],
    item_factor: numpy.typing.NDArray[numpy.float64],
) -> tuple: ...
def rec_recommend_dense(
    weights: numpy.typing.NDArray[numpy.float32],
    active: numpy.typing.NDArray[numpy.int32],
    n_items: typing.SupportsInt | typing.SupportsIndex,
    indptr: numpy.typing.NDArray[numpy.int64],
    indices: numpy.typing.NDArray[numpy.int32],
    data: numpy.typing.NDArray[numpy.float64],
    banned: numpy.typing.NDArray[numpy.uint8],
    exclude_seen: bool,
    N: typing.SupportsInt | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def rec_recommend_sparse(
    s_indptr: numpy.typing.NDArray[numpy.int64],
    s_indices: numpy.typing.NDArray[numpy.int32],
    s_data: numpy.typing.NDArray[numpy.float32],
    indptr: numpy.typing.NDArray[numpy.int64],
    indices: numpy.typing.NDArray[numpy.int32],
    data: numpy.typing.NDArray[numpy.float64],
    banned: numpy.typing.NDArray[numpy.uint8],
    exclude_seen: bool,
    N: typing.SupportsInt | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def scml_hinge_loss_grad(
    Phi: numpy.typing.NDArray[numpy.float32],
    w: numpy.typing.NDArray[numpy.float64],
    width: typing.SupportsFloat | typing.SupportsIndex,
    groups: typing.SupportsInt | typing.SupportsIndex,
    threads: typing.SupportsInt | typing.SupportsIndex,
) -> tuple:
    """SCML's smoothed-hinge loss sum and gradient sum, one pass over Phi
    (csrc/metric/scml.hpp); returns (loss, grad)."""

def shifted_exp_rows(
    E: numpy.typing.NDArray[numpy.float64],
    shifts: numpy.typing.NDArray[numpy.float64],
    out: typing.Any = None,
    threads: typing.SupportsInt | typing.SupportsIndex = 1,
) -> numpy.typing.NDArray[numpy.float64]:
    """
    out[i, j] = exp(E[i, j] - shifts[i]) (float64, C-contiguous; out may be E).
    """

def simd_info() -> dict:
    """
    Which instruction set each kernel dispatches to.
    """

brute_max_safe_sqnorm_f32: float = 2.1267646664908054e37
brute_max_safe_sqnorm_f64: float = 1.1235582092889473e307
