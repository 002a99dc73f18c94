// AVX2 + FMA + F16C kernels for compressed codes (8 floats per register, 16 registers).
//
// CMake compiles this file, and only this file, with -mavx2 -mfma -mf16c; dispatch.cpp fills
// it only after cpuid + xgetbv confirmed AVX2, FMA, F16C and OS-enabled YMM state.
//
// Decoding: u8 and nibble codes widen with vpmovzxbd + vcvtdq2ps, f16 with vcvtph2ps (F16C),
// bf16 with a zero-extend and a 16-bit shift (bf16 is the top half of a float32).
// Integer sums: 8-bit codes are widened to int16 and multiplied with vpmaddwd, because
// vpmaddubsw adds two u8 x s8 products into int16 *with saturation* (2 * 255 * 127 > 32,767);
// 4-bit codes are small enough for vpmaddubsw (2 * 15 * 128 = 3,840; two such sums 7,680), so
// they take the faster u8 x s8 path, followed by vpmaddwd with ones into int32.
// Tails: float lanes use vmaskmov (never touches bytes past the end); byte tails are copied into
// a zeroed stack buffer, as AVX2 has no byte-masked loads.
//
// ODR rule: everything except fill_quant_avx2 has internal linkage; no STL.
//
// Repetition by design: the traits structs below (and their F32 / F64 or float / integer
// pairs) have the shape of every other ISA file's, because each is one instruction set's
// vocabulary of intrinsics - the only per-ISA code; the kernels built on them are written
// once in the .inl files (duplicates pairs the traits by shape).
#include <cstring>

#include "simd/quant_kernels.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace pysim::simd {
namespace {

__m128i load_bytes_partial(const std::uint8_t* p, std::size_t n) noexcept {
    alignas(16) std::uint8_t buf[16] = {};
    std::memcpy(buf, p, n < 16 ? n : 16);
    return _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
}

__m256i load_bytes32_partial(const void* p, std::size_t n) noexcept {
    alignas(32) std::uint8_t buf[32] = {};
    std::memcpy(buf, p, n < 32 ? n : 32);
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
}

struct F32 {
    using T = float;
    using V = __m256;
    static constexpr std::size_t W = 8;
    static __m256i mask(std::size_t count) noexcept {
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), iota);
    }
    static V zero() noexcept { return _mm256_setzero_ps(); }
    static V load(const float* p) noexcept { return _mm256_loadu_ps(p); }
    static V load_partial(const float* p, std::size_t c) noexcept {
        return _mm256_maskload_ps(p, mask(c));
    }
    static void store(float* p, V v) noexcept { _mm256_storeu_ps(p, v); }
    static void store_partial(float* p, V v, std::size_t c) noexcept {
        _mm256_maskstore_ps(p, mask(c), v);
    }
    static V add(V a, V b) noexcept { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) noexcept { return _mm256_sub_ps(a, b); }
    static V fmadd(V a, V b, V c) noexcept { return _mm256_fmadd_ps(a, b, c); }
    static V fnmadd(V a, V b, V c) noexcept { return _mm256_fnmadd_ps(a, b, c); }
    static float reduce(V v) noexcept {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }

    static V u8_to_f32(__m128i b) noexcept { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)); }
    static __m128i bytes8(const std::uint8_t* p) noexcept {
        return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    }
    static V from_u8(const std::uint8_t* p) noexcept { return u8_to_f32(bytes8(p)); }
    static V from_u8_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return u8_to_f32(load_bytes_partial(p, n));
    }
    static V from_f16(const std::uint8_t* p) noexcept {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static V from_f16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return _mm256_cvtph_ps(load_bytes_partial(p, 2 * n));
    }
    static V bf16_to_f32(__m128i h) noexcept {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    static V from_bf16(const std::uint8_t* p) noexcept {
        return bf16_to_f32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static V from_bf16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return bf16_to_f32(load_bytes_partial(p, 2 * n));
    }
    static V lo_nibbles(__m128i b) noexcept {
        return u8_to_f32(_mm_and_si128(b, _mm_set1_epi8(0x0F)));
    }
    static V hi_nibbles(__m128i b) noexcept {
        return u8_to_f32(_mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F)));
    }
    static V nib_lo(const std::uint8_t* p) noexcept { return lo_nibbles(bytes8(p)); }
    static V nib_hi(const std::uint8_t* p) noexcept { return hi_nibbles(bytes8(p)); }
    static V nib_lo_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return lo_nibbles(load_bytes_partial(p, n));
    }
    static V nib_hi_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return hi_nibbles(load_bytes_partial(p, n));
    }

    // Eight 16-bit words to `out`: all of them, or the first n (through a stack buffer, so
    // nothing past out[n - 1] is written).
    static void store_words(std::uint16_t* out, __m128i w) noexcept {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), w);
    }
    static void store_words_partial(std::uint16_t* out, __m128i w, std::size_t n) noexcept {
        alignas(16) std::uint16_t buf[8];
        _mm_store_si128(reinterpret_cast<__m128i*>(buf), w);
        std::memcpy(out, buf, 2 * n);
    }

    static __m128i f16_bits(V v) noexcept { return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT); }
    static void to_f16(std::uint16_t* out, V v) noexcept { store_words(out, f16_bits(v)); }
    static void to_f16_partial(std::uint16_t* out, V v, std::size_t n) noexcept {
        store_words_partial(out, f16_bits(v), n);
    }
    // Round to nearest even on the integer bits; NaN keeps its top bits and becomes quiet.
    static __m128i bf16_bits(V v) noexcept {
        const __m256i x = _mm256_castps_si256(v);
        const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
        const __m256i rounded = _mm256_srli_epi32(
            _mm256_add_epi32(x, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), 16);
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7FFFFFFF)),
                                               _mm256_set1_epi32(0x7F800000));
        const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
        const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
        return _mm256_castsi256_si128(packed);
    }
    static void to_bf16(std::uint16_t* out, V v) noexcept { store_words(out, bf16_bits(v)); }
    static void to_bf16_partial(std::uint16_t* out, V v, std::size_t n) noexcept {
        store_words_partial(out, bf16_bits(v), n);
    }
};

struct Int {
    using IV = __m256i;
    static constexpr std::size_t IB8 = 16;
    static constexpr std::size_t IB4 = 32;

    static IV izero() noexcept { return _mm256_setzero_si256(); }
    static IV iadd(IV a, IV b) noexcept { return _mm256_add_epi32(a, b); }
    static std::int32_t ireduce(IV v) noexcept {
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
        return _mm_cvtsi128_si32(s);
    }
    static __m128i load16(const void* p) noexcept {
        return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    }
    static __m256i load32(const void* p) noexcept {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    }

    // 16 products u8 x s8 widened to int16, summed in pairs into int32 (exact).
    static IV dot16(IV acc, __m128i c, __m128i t) noexcept {
        return _mm256_add_epi32(
            acc, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c), _mm256_cvtepi8_epi16(t)));
    }
    static IV dot_u8(IV acc, const std::uint8_t* c, const std::int8_t* t) noexcept {
        return dot16(acc, load16(c), load16(t));
    }
    static IV dot_u8_partial(IV acc, const std::uint8_t* c, const std::int8_t* t,
                             std::size_t n) noexcept {
        return dot16(acc, load_bytes_partial(c, n),
                     load_bytes_partial(reinterpret_cast<const std::uint8_t*>(t), n));
    }
    static IV l2_16(IV acc, __m128i a, __m128i b) noexcept {
        const __m256i d = _mm256_sub_epi16(_mm256_cvtepu8_epi16(a), _mm256_cvtepu8_epi16(b));
        return _mm256_add_epi32(acc, _mm256_madd_epi16(d, d));
    }
    static IV l2_u8(IV acc, const std::uint8_t* a, const std::uint8_t* b) noexcept {
        return l2_16(acc, load16(a), load16(b));
    }
    static IV l2_u8_partial(IV acc, const std::uint8_t* a, const std::uint8_t* b,
                            std::size_t n) noexcept {
        return l2_16(acc, load_bytes_partial(a, n), load_bytes_partial(b, n));
    }

    static IV dot32_u4(IV acc, __m256i v, __m256i tlo, __m256i thi) noexcept {
        const __m256i m = _mm256_set1_epi8(0x0F);
        const __m256i lo = _mm256_and_si256(v, m);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
        const __m256i p =
            _mm256_add_epi16(_mm256_maddubs_epi16(lo, tlo), _mm256_maddubs_epi16(hi, thi));
        return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
    static IV dot_u4(IV acc, const std::uint8_t* c, const std::int8_t* tlo,
                     const std::int8_t* thi) noexcept {
        return dot32_u4(acc, load32(c), load32(tlo), load32(thi));
    }
    static IV dot_u4_partial(IV acc, const std::uint8_t* c, const std::int8_t* tlo,
                             const std::int8_t* thi, std::size_t nlo, std::size_t nhi) noexcept {
        return dot32_u4(acc, load_bytes32_partial(c, nlo), load_bytes32_partial(tlo, nlo),
                        load_bytes32_partial(thi, nhi));
    }
    static IV l2_32_u4(IV acc, __m256i a, __m256i b) noexcept {
        const __m256i m = _mm256_set1_epi8(0x0F);
        const __m256i dl =
            _mm256_abs_epi8(_mm256_sub_epi8(_mm256_and_si256(a, m), _mm256_and_si256(b, m)));
        const __m256i dh =
            _mm256_abs_epi8(_mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(a, 4), m),
                                            _mm256_and_si256(_mm256_srli_epi16(b, 4), m)));
        const __m256i p =
            _mm256_add_epi16(_mm256_maddubs_epi16(dl, dl), _mm256_maddubs_epi16(dh, dh));
        return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
    static IV l2_u4(IV acc, const std::uint8_t* a, const std::uint8_t* b) noexcept {
        return l2_32_u4(acc, load32(a), load32(b));
    }
    static IV l2_u4_partial(IV acc, const std::uint8_t* a, const std::uint8_t* b,
                            std::size_t n) noexcept {
        return l2_32_u4(acc, load_bytes32_partial(a, n), load_bytes32_partial(b, n));
    }
};

// The shapes first (their own include block): the kernel files build on them.
#include "simd/isa/quant_shapes.inl"

#include "simd/isa/quant_float_kernels.inl"
#include "simd/isa/quant_int_kernels.inl"

// FastScan: per 8 dimensions of 32 codes, one 32-byte load, two nibble masks, two vpshufb on
// tables already in registers' layout (duplicated per 128-bit lane), four 16-bit adds. The
// 16-bit lanes hold two codes each (even code in the low byte, odd in the high one): `a` sums
// the whole words (low + 256 * high, mod 2^16) and `b` the high bytes, so the low sums are
// a - 256 b; 128 blocks (256 lookups of at most 255) keep both below 2^16 before the flush
// into the uint32 totals.
void fastscan32_avx2(const std::uint8_t* codes, const std::uint8_t* lut, std::size_t n_pairs,
                     std::uint32_t* out) noexcept {
    const __m256i nib = _mm256_set1_epi8(0x0F);
    __m256i t0 = _mm256_setzero_si256(), t1 = t0, t2 = t0, t3 = t0;
    for (std::size_t p0 = 0; p0 < n_pairs; p0 += 128) {
        const std::size_t p1 = n_pairs - p0 < 128 ? n_pairs : p0 + 128;
        __m256i a = _mm256_setzero_si256(), b = a;
        for (std::size_t p = p0; p < p1; ++p) {
            const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * p));
            const __m256i tlo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + 64 * p));
            const __m256i thi =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + 64 * p + 32));
            const __m256i r0 = _mm256_shuffle_epi8(tlo, _mm256_and_si256(c, nib));
            const __m256i r1 =
                _mm256_shuffle_epi8(thi, _mm256_and_si256(_mm256_srli_epi16(c, 4), nib));
            a = _mm256_add_epi16(a, _mm256_add_epi16(r0, r1));
            b = _mm256_add_epi16(
                b, _mm256_add_epi16(_mm256_srli_epi16(r0, 8), _mm256_srli_epi16(r1, 8)));
        }
        const __m256i even = _mm256_sub_epi16(a, _mm256_slli_epi16(b, 8));
        // Within each 128-bit half h, word e holds codes 16h + 2e (even) and 16h + 2e + 1 (b):
        // interleaving puts codes 16h..16h+7 (lo) and 16h+8..16h+15 (hi) in order.
        const __m256i lo = _mm256_unpacklo_epi16(even, b);
        const __m256i hi = _mm256_unpackhi_epi16(even, b);
        t0 = _mm256_add_epi32(t0, _mm256_cvtepu16_epi32(_mm256_castsi256_si128(lo)));
        t1 = _mm256_add_epi32(t1, _mm256_cvtepu16_epi32(_mm256_castsi256_si128(hi)));
        t2 = _mm256_add_epi32(t2, _mm256_cvtepu16_epi32(_mm256_extracti128_si256(lo, 1)));
        t3 = _mm256_add_epi32(t3, _mm256_cvtepu16_epi32(_mm256_extracti128_si256(hi, 1)));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), t0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), t1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), t2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 24), t3);
}

} // namespace

void fill_quant_avx2(QuantKernels& t) noexcept {
    fill_float_quant<F32>(t, Isa::avx2);
    fill_int_quant<Int>(t, Isa::avx2);
    t.fastscan32 = {&fastscan32_avx2, Isa::avx2};
}

} // namespace pysim::simd
#endif
