// Kernels for compressed vectors (f16, bf16, 8-bit and 4-bit scalar codes) and the table that
// runtime dispatch fills for them, next to the float32/float64 table of kernels.hpp.
//
// Every kernel scores one *prepared query* against *codes*; the store (csrc/quant/) turns the
// raw sum into a distance with an affine correction it computed once per query. Keeping the
// kernels to raw sums keeps them few, makes each one checkable against a float64 (or exact
// integer) reference of the decoded vectors, and lets one kernel serve several metrics.
//
// Code layouts (identical on every ISA: codes are persisted):
//   f16, bf16  dim little-endian 16-bit words.
//   u8         dim bytes, one per dimension.
//   u4         ceil(dim / 2) bytes. Dimensions go in blocks of 128 (64 bytes): byte k of a block
//              holds dimension k in its low nibble and dimension 64 + k in its high nibble, so
//              both nibble halves of any run of bytes are runs of consecutive dimensions and
//              match plain contiguous query loads on every vector width (no shuffles). The last
//              block of r = dim % 128 dimensions uses h = ceil(r / 2) bytes the same way (low:
//              dims [0, h), high: dims [h, r)); a padding high nibble is zero.
//
// Kernels (q: prepared query, s: per-dimension scale, c: code; sums over the dimensions):
//   f16_dot, bf16_dot, u8_dot, u4_dot      sum q_j c_j                  (float query)
//   f16_l2sq, bf16_l2sq                    sum (q_j - c_j)^2            (s unused)
//   u8_l2sq, u4_l2sq                       sum (q_j - s_j c_j)^2
//   bf16_dot_bf16                          sum q_j c_j, q in bf16 too   (AVX-512 BF16 vdpbf16ps)
//   u8_dot_i8, u4_dot_i8                   sum t_j c_j, t int8, exact int32
//   u8_l2sq_u8, u4_l2sq_u4                 sum (a_j - c_j)^2 between two codes, exact int32
// Integer kernels are exact while no partial sum can overflow int32 (see the bounds below), so
// every ISA returns the same integer. Float kernels accumulate in float32 with FMA; their error
// is that of the float32 kernels (kernels.hpp) on the decoded values.
//
// Overflow bounds of the integer kernels (|partial sums| < 2^31 = 2,147,483,648):
//   u8_dot_i8   |t_j c_j| <= 127 * 255 = 32,385     -> exact for dim <= 66,311
//   u4_dot_i8   |t_j c_j| <= 127 * 15  = 1,905      -> exact for dim <= 1,127,287
//   u8_l2sq_u8  (a_j - c_j)^2 <= 255^2 = 65,025     -> exact for dim <= 33,025
//   u4_l2sq_u4  (a_j - c_j)^2 <= 15^2  = 225        -> exact for dim <= 9,544,371
// (t_j = -128 is never produced by the store; the kernels accept it, and the bound for
// u8_dot_i8 becomes 32,640 * dim < 2^31 for dim <= 65,793.) Per-ISA intermediate sums are
// narrower and checked in each file: AVX2's vpmaddubsw adds two u8 x s8 products into int16 with
// saturation, so it is used only for 4-bit codes (2 * 15 * 128 = 3,840 < 32,767); 8-bit codes
// are widened to int16 first and multiplied with vpmaddwd (2 * 255 * 128 = 65,280 in int32).
//
// Three shapes for each distance kernel: pair (one code), many (n codes `stride` bytes apart),
// batch (n codes anywhere, given by pointer: a graph's neighbour list). many and batch score
// four codes at a time in one pass over the query (four independent accumulator chains and four
// memory streams in flight) without gather instructions.
//
// All kernels are noexcept, never allocate, read exactly the bytes of each code and `dim`
// query elements, and assume no alignment. No STL, no inline bodies: the ISA units include this.
#pragma once

#include <cstddef>
#include <cstdint>

#include "simd/kernels.hpp"

namespace pysim::simd {

/// Dimensions per 4-bit block (64 code bytes); see the layout above.
inline constexpr std::size_t kNibbleBlock = 128;

/// Q: query element type, R: result type. `scale` is read only by u8_l2sq / u4_l2sq.
template <typename Q, typename R>
using CodePairFn = R (*)(const Q* query, const float* scale, const std::uint8_t* code,
                         std::size_t dim) noexcept;
template <typename Q, typename R>
using CodeManyFn = void (*)(const Q* query, const float* scale, const std::uint8_t* codes,
                            std::size_t stride, std::size_t n, std::size_t dim, R* out) noexcept;
template <typename Q, typename R>
using CodeBatchFn = void (*)(const Q* query, const float* scale, const std::uint8_t* const* codes,
                             std::size_t n, std::size_t dim, R* out) noexcept;

template <typename Q, typename R> struct CodeKernel {
    Slot<CodePairFn<Q, R>> pair;
    Slot<CodeManyFn<Q, R>> many;
    Slot<CodeBatchFn<Q, R>> batch;
};

/// FastScan (after Andre et al., "Cache locality is not enough", and faiss's 4-bit PQ scan):
/// sums of 4-bit table lookups for a batch of 32 codes at once, the tables held in registers
/// (vpshufb). `codes`: n_pairs blocks of 32 bytes; byte j of block p holds code j's nibble for
/// group 2p (low) and group 2p + 1 (high). `lut`: n_pairs blocks of 64 bytes, the 16-byte table
/// of group 2p twice, then that of group 2p + 1 twice (duplicated so a 256-bit register needs
/// no broadcast). out[j] = sum over groups g of table_g[nibble(g, j)], exact in uint32 (every
/// ISA returns the same integers; 16-bit partial sums are flushed every 128 blocks).
using FastScanFn = void (*)(const std::uint8_t* codes, const std::uint8_t* lut, std::size_t n_pairs,
                            std::uint32_t* out) noexcept;
inline constexpr std::size_t kFastScanBatch = 32;

/// Element-wise conversions (round to nearest even; f16 overflows to +-inf as IEEE says).
using ToHalfFn = void (*)(const float* in, std::uint16_t* out, std::size_t n) noexcept;
using FromHalfFn = void (*)(const std::uint16_t* in, float* out, std::size_t n) noexcept;

struct QuantKernels {
    Isa isa = Isa::scalar; // the level this table was built for
    Slot<ToHalfFn> f32_to_f16, f32_to_bf16;
    Slot<FromHalfFn> f16_to_f32, bf16_to_f32;
    CodeKernel<float, float> f16_dot, f16_l2sq, bf16_dot, bf16_l2sq;
    CodeKernel<std::uint16_t, float> bf16_dot_bf16;
    CodeKernel<float, float> u8_dot, u8_l2sq, u4_dot, u4_l2sq;
    CodeKernel<std::int8_t, std::int32_t> u8_dot_i8, u4_dot_i8;
    CodeKernel<std::uint8_t, std::int32_t> u8_l2sq_u8, u4_l2sq_u4;
    Slot<FastScanFn> fastscan32;
};

// One function per file in simd/isa/quant_*.cpp; each overwrites only what it implements.
void fill_quant_scalar(QuantKernels& table) noexcept;
void fill_quant_avx2(QuantKernels& table) noexcept;             // PYSIM_HAVE_AVX2
void fill_quant_avx512(QuantKernels& table) noexcept;           // PYSIM_HAVE_AVX512
void fill_quant_avx512_vnni(QuantKernels& table) noexcept;      // PYSIM_HAVE_AVX512_VNNI
void fill_quant_avx512_vnni_bf16(QuantKernels& table) noexcept; // PYSIM_HAVE_AVX512_BF16
void fill_quant_neon(QuantKernels& table) noexcept;             // PYSIM_HAVE_NEON

} // namespace pysim::simd
