// AVX-512 (F/DQ/BW/VL) kernels for compressed codes: 16 floats per register, and byte / word
// opmasks that make every tail one masked load (no stack buffers, no reads past the code).
//
// CMake compiles this file, and only this file, with -mavx512f -mavx512dq -mavx512bw
// -mavx512vl -mfma -mf16c; dispatch.cpp fills it at the avx512 level and above.
// Decoding as in quant_avx2.cpp, on 16 lanes (vcvtph2ps zmm for f16). Integer sums without VNNI:
// 8-bit codes widen to int16 and use vpmaddwd (32 dimensions a step); 4-bit codes use
// vpmaddubsw + vpmaddwd on 64 code bytes (128 dimensions) a step, exact for the reasons given
// in quant_avx2.cpp. The avx512_vnni level replaces the integer kernels with vpdpbusd ones.
//
// ODR rule: everything except fill_quant_avx512 has internal linkage; no STL.
//
// Repetition by design: the traits structs below (and their F32 / F64 or float / integer
// pairs) have the shape of every other ISA file's, because each is one instruction set's
// vocabulary of intrinsics - the only per-ISA code; the kernels built on them are written
// once in the .inl files (duplicates pairs the traits by shape).
#include "simd/quant_kernels.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace pysim::simd {
namespace {

__mmask16 mask16(std::size_t n) noexcept {
    return static_cast<__mmask16>((1u << n) - 1u);
}
__mmask32 mask32(std::size_t n) noexcept {
    return n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << n) - 1u);
}
__mmask64 mask64(std::size_t n) noexcept {
    return n >= 64 ? ~__mmask64{0} : static_cast<__mmask64>((std::uint64_t{1} << n) - 1u);
}

struct F32 {
    using T = float;
    using V = __m512;
    static constexpr std::size_t W = 16;
    static V zero() noexcept { return _mm512_setzero_ps(); }
    static V load(const float* p) noexcept { return _mm512_loadu_ps(p); }
    static V load_partial(const float* p, std::size_t c) noexcept {
        return _mm512_maskz_loadu_ps(mask16(c), p);
    }
    static void store(float* p, V v) noexcept { _mm512_storeu_ps(p, v); }
    static void store_partial(float* p, V v, std::size_t c) noexcept {
        _mm512_mask_storeu_ps(p, mask16(c), v);
    }
    static V add(V a, V b) noexcept { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) noexcept { return _mm512_sub_ps(a, b); }
    static V fmadd(V a, V b, V c) noexcept { return _mm512_fmadd_ps(a, b, c); }
    static V fnmadd(V a, V b, V c) noexcept { return _mm512_fnmadd_ps(a, b, c); }
    static float reduce(V v) noexcept { return _mm512_reduce_add_ps(v); }

    static V u8_to_f32(__m128i b) noexcept { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)); }
    static __m128i bytes16(const std::uint8_t* p) noexcept {
        return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    }
    static __m128i bytes16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return _mm_maskz_loadu_epi8(mask16(n), p);
    }
    static __m256i words16(const std::uint8_t* p) noexcept {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    }
    static __m256i words16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return _mm256_maskz_loadu_epi16(mask16(n), p);
    }
    static V from_u8(const std::uint8_t* p) noexcept { return u8_to_f32(bytes16(p)); }
    static V from_u8_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return u8_to_f32(bytes16_partial(p, n));
    }
    static V from_f16(const std::uint8_t* p) noexcept { return _mm512_cvtph_ps(words16(p)); }
    static V from_f16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return _mm512_cvtph_ps(words16_partial(p, n));
    }
    static V bf16_to_f32(__m256i h) noexcept {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    static V from_bf16(const std::uint8_t* p) noexcept { return bf16_to_f32(words16(p)); }
    static V from_bf16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return bf16_to_f32(words16_partial(p, n));
    }
    static V lo_nibbles(__m128i b) noexcept {
        return u8_to_f32(_mm_and_si128(b, _mm_set1_epi8(0x0F)));
    }
    static V hi_nibbles(__m128i b) noexcept {
        return u8_to_f32(_mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F)));
    }
    static V nib_lo(const std::uint8_t* p) noexcept { return lo_nibbles(bytes16(p)); }
    static V nib_hi(const std::uint8_t* p) noexcept { return hi_nibbles(bytes16(p)); }
    static V nib_lo_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return lo_nibbles(bytes16_partial(p, n));
    }
    static V nib_hi_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return hi_nibbles(bytes16_partial(p, n));
    }

    static __m256i f16_bits(V v) noexcept {
        return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    static void to_f16(std::uint16_t* out, V v) noexcept {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), f16_bits(v));
    }
    static void to_f16_partial(std::uint16_t* out, V v, std::size_t n) noexcept {
        _mm256_mask_storeu_epi16(out, mask16(n), f16_bits(v));
    }
    // Round to nearest even on the integer bits; NaN keeps its top bits and becomes quiet.
    static __m256i bf16_bits(V v) noexcept {
        const __m512i x = _mm512_castps_si512(v);
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
        const __m512i rounded = _mm512_srli_epi32(
            _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb)), 16);
        const __mmask16 nan = _mm512_cmpgt_epi32_mask(
            _mm512_and_si512(x, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
        const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
        return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
    }
    static void to_bf16(std::uint16_t* out, V v) noexcept {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), bf16_bits(v));
    }
    static void to_bf16_partial(std::uint16_t* out, V v, std::size_t n) noexcept {
        _mm256_mask_storeu_epi16(out, mask16(n), bf16_bits(v));
    }
};

struct Int {
    using IV = __m512i;
    static constexpr std::size_t IB8 = 32;
    static constexpr std::size_t IB4 = 64;

    static IV izero() noexcept { return _mm512_setzero_si512(); }
    static IV iadd(IV a, IV b) noexcept { return _mm512_add_epi32(a, b); }
    static std::int32_t ireduce(IV v) noexcept { return _mm512_reduce_add_epi32(v); }

    static __m256i load32(const void* p) noexcept {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    }
    static __m256i load32_partial(const void* p, std::size_t n) noexcept {
        return _mm256_maskz_loadu_epi8(mask32(n), p);
    }
    static IV dot32(IV acc, __m256i c, __m256i t) noexcept {
        return _mm512_add_epi32(
            acc, _mm512_madd_epi16(_mm512_cvtepu8_epi16(c), _mm512_cvtepi8_epi16(t)));
    }
    static IV dot_u8(IV acc, const std::uint8_t* c, const std::int8_t* t) noexcept {
        return dot32(acc, load32(c), load32(t));
    }
    static IV dot_u8_partial(IV acc, const std::uint8_t* c, const std::int8_t* t,
                             std::size_t n) noexcept {
        return dot32(acc, load32_partial(c, n), load32_partial(t, n));
    }
    static IV l2_32(IV acc, __m256i a, __m256i b) noexcept {
        const __m512i d = _mm512_sub_epi16(_mm512_cvtepu8_epi16(a), _mm512_cvtepu8_epi16(b));
        return _mm512_add_epi32(acc, _mm512_madd_epi16(d, d));
    }
    static IV l2_u8(IV acc, const std::uint8_t* a, const std::uint8_t* b) noexcept {
        return l2_32(acc, load32(a), load32(b));
    }
    static IV l2_u8_partial(IV acc, const std::uint8_t* a, const std::uint8_t* b,
                            std::size_t n) noexcept {
        return l2_32(acc, load32_partial(a, n), load32_partial(b, n));
    }

    static IV dot64_u4(IV acc, __m512i v, __m512i tlo, __m512i thi) noexcept {
        const __m512i m = _mm512_set1_epi8(0x0F);
        const __m512i lo = _mm512_and_si512(v, m);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
        const __m512i p =
            _mm512_add_epi16(_mm512_maddubs_epi16(lo, tlo), _mm512_maddubs_epi16(hi, thi));
        return _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
    }
    static IV dot_u4(IV acc, const std::uint8_t* c, const std::int8_t* tlo,
                     const std::int8_t* thi) noexcept {
        return dot64_u4(acc, _mm512_loadu_si512(c), _mm512_loadu_si512(tlo),
                        _mm512_loadu_si512(thi));
    }
    static IV dot_u4_partial(IV acc, const std::uint8_t* c, const std::int8_t* tlo,
                             const std::int8_t* thi, std::size_t nlo, std::size_t nhi) noexcept {
        return dot64_u4(acc, _mm512_maskz_loadu_epi8(mask64(nlo), c),
                        _mm512_maskz_loadu_epi8(mask64(nlo), tlo),
                        _mm512_maskz_loadu_epi8(mask64(nhi), thi));
    }
    static IV l2_64_u4(IV acc, __m512i a, __m512i b) noexcept {
        const __m512i m = _mm512_set1_epi8(0x0F);
        const __m512i dl =
            _mm512_abs_epi8(_mm512_sub_epi8(_mm512_and_si512(a, m), _mm512_and_si512(b, m)));
        const __m512i dh =
            _mm512_abs_epi8(_mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(a, 4), m),
                                            _mm512_and_si512(_mm512_srli_epi16(b, 4), m)));
        const __m512i p =
            _mm512_add_epi16(_mm512_maddubs_epi16(dl, dl), _mm512_maddubs_epi16(dh, dh));
        return _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
    }
    static IV l2_u4(IV acc, const std::uint8_t* a, const std::uint8_t* b) noexcept {
        return l2_64_u4(acc, _mm512_loadu_si512(a), _mm512_loadu_si512(b));
    }
    static IV l2_u4_partial(IV acc, const std::uint8_t* a, const std::uint8_t* b,
                            std::size_t n) noexcept {
        return l2_64_u4(acc, _mm512_maskz_loadu_epi8(mask64(n), a),
                        _mm512_maskz_loadu_epi8(mask64(n), b));
    }
};

// The shapes first (their own include block): the kernel files build on them.
#include "simd/isa/quant_shapes.inl"

#include "simd/isa/quant_float_kernels.inl"
#include "simd/isa/quant_int_kernels.inl"

} // namespace

void fill_quant_avx512(QuantKernels& t) noexcept {
    fill_float_quant<F32>(t, Isa::avx512);
    fill_int_quant<Int>(t, Isa::avx512);
}

} // namespace pysim::simd
#endif
