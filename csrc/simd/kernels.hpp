// Distance primitives and the table that runtime dispatch fills.
//
// Metrics are composed from a handful of primitives (see brute/distances.cpp):
//   sqeuclidean = l2sq, euclidean = sqrt(l2sq), ip = 1 - dot,
//   cosine = 1 - dot / (|a| |b|) with cached norms, mahalanobis = euclidean after x -> L x.
// Three shapes: pair (one vector against one), many (one query against n contiguous rows, the
// memory-bound shape), and tile (a register-blocked block of A rows against a packed block of B
// rows, the compute-bound shape of cdist, with the metric's epilogue fused so every output is
// written exactly once).
//
// Every kernel is noexcept, never allocates, reads exactly `dim` elements per vector and
// assumes no alignment. This header is included by the per-ISA translation units, so it holds
// declarations and plain structs only: no inline functions, no templates with bodies, no STL.
//
// Numerics: float32 kernels accumulate in float32 with several independent lanes (FMA where
// the ISA has it); the error of a length-d reduction is bounded by about d * eps * sum|a_i b_i|
// and in practice by sqrt(d) * eps * |a| |b|. float64 kernels accumulate in float64.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pysim::simd {

// avx512_vnni and avx512_vnni_bf16 add integer / bf16 dot-product instructions on top of avx512;
// they change only the compressed-code kernels (quant_kernels.hpp), the float tables are avx512's.
enum class Isa : std::uint8_t {
    scalar = 0,
    avx2 = 1,
    avx512 = 2,
    neon = 3,
    avx512_vnni = 4,
    avx512_vnni_bf16 = 5
};
inline constexpr int kIsaCount = 6;

/// f(a, b) over `dim` elements: dot, l2sq (squared Euclidean) or norm2 (a . a, b unused).
template <typename T> using PairFn = T (*)(const T* a, const T* b, std::size_t dim) noexcept;

/// out[i] = f(query, rows + i * dim) for i in [0, n); rows is C-contiguous (n, dim).
template <typename T>
using ManyFn = void (*)(const T* query, const T* rows, std::size_t n, std::size_t dim,
                        T* out) noexcept;

/// One pass over the rows for cosine: dots[i] = query . row_i, norms[i] = row_i . row_i.
template <typename T>
using DotNormManyFn = void (*)(const T* query, const T* rows, std::size_t n, std::size_t dim,
                               T* dots, T* norms) noexcept;

/// out[i] = rows_i . rows_i for i in [0, n).
template <typename T>
using NormsFn = void (*)(const T* rows, std::size_t n, std::size_t dim, T* out) noexcept;

/// What the tile kernel writes for each (i, j) from the raw dot product s = a_i . b_j.
///   dot:    s
///   ip:     1 - s
///   l2sq:   max(0, a_aux[i] + b_aux[j] - 2 s)        (aux = squared norms)
///   l2:     sqrt(l2sq)
///   cosine: clamp(1 - s * a_aux[i] * b_aux[j], 0, 2)  (aux = inverse norms, 0 for zero rows)
enum class Epilogue : std::uint8_t { dot = 0, ip = 1, l2sq = 2, l2 = 3, cosine = 4 };

/// Arguments of one tile call: rows [0, m) of A (row stride lda) against a packed block of n
/// B rows, writing out[i * ldo + j].
template <typename T> struct TileArgs {
    const T* a;
    std::size_t lda;
    std::size_t m;
    const T* packed_b; // produced by PackFn for the same n and dim
    std::size_t n;
    std::size_t dim;
    Epilogue epilogue;
    const T* a_aux; // length m (unused for dot / ip)
    const T* b_aux; // length n (unused for dot / ip)
    T* out;
    std::size_t ldo;
};

/// Packs n rows of B (row stride ldb) into the layout the same table's tile kernel reads:
/// panels of `tile_nr` rows, dimension-major inside a panel, the last panel zero-padded.
/// `packed` holds round_up(n, tile_nr) * dim elements.
template <typename T>
using PackFn = void (*)(const T* b, std::size_t ldb, std::size_t n, std::size_t dim,
                        T* packed) noexcept;

template <typename T> using TileFn = void (*)(const TileArgs<T>& args) noexcept;

/// Threshold scan of one row of tile output against per-column thresholds: writes to `hits`
/// (room for n) the columns c in [0, n) with row[c] < thr[c], ascending, and returns how many.
/// A NaN never hits. The brute-force engine runs it on every tile row, where hits are rare once
/// the per-query candidate sets are full, so the kernel is a vector compare plus a mask test.
template <typename T>
using ScanLtFn = std::size_t (*)(const T* row, const T* thr, std::size_t n,
                                 std::uint32_t* hits) noexcept;

/// out[j] = exp(x[j] - shift) for j in [0, n), float64 (isa/exp_kernels.inl): the argument is
/// clamped to [-708, 708] (so the result is a normal number, exp(708) at most), arguments below
/// -708 (-inf included) give 0, NaN stays NaN; within 2 ulp of exp. `out` may be `x`.
using ShiftedExpFn = void (*)(const double* x, std::size_t n, double shift, double* out) noexcept;

/// Gram blocks: G (row stride ldg, accumulated into) += xᵀ x over `rows` rows of stride ld, for
/// the entries G[a, b] with b >= a rounded down to a's row block (the upper triangle and the
/// diagonal blocks; the caller mirrors the upper triangle), and colsum[j] += sum of column j.
/// Blocks are always tile_nr columns wide: each row of x is read up to tile_nr - 1 elements
/// past `dim` (the next row, or padding the caller provides after the last row), and G needs
/// ldg >= dim + tile_nr - 1 (its columns past dim receive junk and are ignored).
template <typename T>
using GramFn = void (*)(const T* x, std::size_t ld, std::size_t rows, std::size_t dim, T* G,
                        std::size_t ldg, T* colsum) noexcept;

/// A kernel and the ISA that provided it; the ISA is what pysim.simd_info() reports.
template <typename Fn> struct Slot {
    Fn fn = nullptr;
    Isa isa = Isa::scalar;
};

template <typename T> struct Kernels {
    Slot<PairFn<T>> dot, l2sq, norm2;
    Slot<ManyFn<T>> dot_many, l2sq_many;
    /// Like l2sq_many, but `rows` is a dimension-major panel: coordinate j of row i sits at
    /// rows[j * n + i] (the KD-tree's leaf layout). Each out[i] is summed in dimension order
    /// with a separate multiply and add (no FMA), so every ISA returns bit-identical values.
    Slot<ManyFn<T>> l2sq_panel;
    Slot<DotNormManyFn<T>> dot_norm_many;
    Slot<NormsFn<T>> norms;
    Slot<PackFn<T>> pack;
    Slot<TileFn<T>> tile;
    Slot<ScanLtFn<T>> scan_lt;
    Slot<GramFn<T>> gram;
    std::size_t tile_nr = 4; // panel width the pack/tile pair was built for
    std::size_t tile_mr = 4; // rows per register block (a hint for blocking)
};

/// Mixed precision: float32 data, float64 arithmetic (every product and sum in float64, so the
/// result is the float64 kernel's on the widened values). SCML's triplet feature rows are
/// stored in float32 to halve the traffic of its memory-bound passes (csrc/metric/scml.cpp).
///   dot:  returns sum a_j b_j          (a float32, b float64)
///   axpy: y_j += s a_j for j < dim     (a float32, y float64)
using WidenDotFn = double (*)(const float* a, const double* b, std::size_t dim) noexcept;
using WidenAxpyFn = void (*)(double s, const float* a, double* y, std::size_t dim) noexcept;

struct MixedKernels {
    Slot<WidenDotFn> dot;
    Slot<WidenAxpyFn> axpy;
};

/// Extra kernels added by later components (quantized codes and the like) live in their own
/// structs next to this one; this table holds the float32/float64 primitives.
struct KernelTable {
    Isa isa = Isa::scalar; // the level this table was built for
    Kernels<float> f32;
    Kernels<double> f64;
    MixedKernels f32_f64;           // float32 data, float64 arithmetic
    Slot<ShiftedExpFn> shifted_exp; // float64 only: the softmax blocks of NCA / MLKR
};

// Each file in simd/isa/ defines exactly one of these and nothing else with external linkage.
// fill_<isa> overwrites only the slots it implements; the scalar kernels stay as fallbacks.
void fill_scalar(KernelTable& table) noexcept;
void fill_avx2(KernelTable& table) noexcept;   // defined only with PYSIM_HAVE_AVX2
void fill_avx512(KernelTable& table) noexcept; // defined only with PYSIM_HAVE_AVX512
void fill_neon(KernelTable& table) noexcept;   // defined only with PYSIM_HAVE_NEON

} // namespace pysim::simd
