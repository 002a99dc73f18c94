// AVX-512 VNNI integer kernels: vpdpbusd multiplies 64 unsigned bytes by 64 signed bytes and
// adds each group of four products to an int32 lane in one instruction (no int16 stage, so no
// saturation to avoid), and vpdpwssd does the same for pairs of int16. Only the integer slots
// change at this level; the float kernels stay those of the avx512 level.
//
// CMake compiles this file, and only this file, with the avx512 flags plus -mavx512vnni;
// dispatch.cpp fills it only after cpuid leaf 7 reported AVX512_VNNI (ecx bit 11) on top of the
// avx512 level. Exactness: every product and every 4-product group fits int32 (255 * 128 * 4
// and 2 * 255^2 for vpdpwssd), and the bounds of quant_kernels.hpp keep the running sums exact.
//
// ODR rule: everything except fill_quant_avx512_vnni has internal linkage; no STL.
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

__mmask32 mask32(std::size_t n) noexcept {
    return n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << n) - 1u);
}
__mmask64 mask64(std::size_t n) noexcept {
    return n >= 64 ? ~__mmask64{0} : static_cast<__mmask64>((std::uint64_t{1} << n) - 1u);
}

struct Int {
    using IV = __m512i;
    static constexpr std::size_t IB8 = 64;
    static constexpr std::size_t IB4 = 64;

    static IV izero() noexcept { return _mm512_setzero_si512(); }
    static IV iadd(IV a, IV b) noexcept { return _mm512_add_epi32(a, b); }
    static std::int32_t ireduce(IV v) noexcept { return _mm512_reduce_add_epi32(v); }

    static IV dot_u8(IV acc, const std::uint8_t* c, const std::int8_t* t) noexcept {
        return _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(c), _mm512_loadu_si512(t));
    }
    static IV dot_u8_partial(IV acc, const std::uint8_t* c, const std::int8_t* t,
                             std::size_t n) noexcept {
        const __mmask64 m = mask64(n);
        return _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi8(m, c),
                                   _mm512_maskz_loadu_epi8(m, t));
    }
    // Differences need a sign, so the bytes widen to int16 and vpdpwssd squares and adds them.
    static IV l2_32(IV acc, __m256i a, __m256i b) noexcept {
        const __m512i d = _mm512_sub_epi16(_mm512_cvtepu8_epi16(a), _mm512_cvtepu8_epi16(b));
        return _mm512_dpwssd_epi32(acc, d, d);
    }
    static IV l2_u8(IV acc, const std::uint8_t* a, const std::uint8_t* b) noexcept {
        const auto* pa = reinterpret_cast<const __m256i*>(a);
        const auto* pb = reinterpret_cast<const __m256i*>(b);
        acc = l2_32(acc, _mm256_loadu_si256(pa), _mm256_loadu_si256(pb));
        return l2_32(acc, _mm256_loadu_si256(pa + 1), _mm256_loadu_si256(pb + 1));
    }
    static IV l2_u8_partial(IV acc, const std::uint8_t* a, const std::uint8_t* b,
                            std::size_t n) noexcept {
        const std::size_t n0 = n < 32 ? n : 32, n1 = n > 32 ? n - 32 : 0;
        acc = l2_32(acc, _mm256_maskz_loadu_epi8(mask32(n0), a),
                    _mm256_maskz_loadu_epi8(mask32(n0), b));
        if (n1) {
            acc = l2_32(acc, _mm256_maskz_loadu_epi8(mask32(n1), a + 32),
                        _mm256_maskz_loadu_epi8(mask32(n1), b + 32));
        }
        return acc;
    }

    static IV dot64_u4(IV acc, __m512i v, __m512i tlo, __m512i thi) noexcept {
        const __m512i m = _mm512_set1_epi8(0x0F);
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(v, m), tlo);
        return _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v, 4), m), thi);
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
    // |a - b| <= 15 is both a valid unsigned and a valid signed byte: square it with vpdpbusd.
    static IV l2_64_u4(IV acc, __m512i a, __m512i b) noexcept {
        const __m512i m = _mm512_set1_epi8(0x0F);
        const __m512i dl =
            _mm512_abs_epi8(_mm512_sub_epi8(_mm512_and_si512(a, m), _mm512_and_si512(b, m)));
        const __m512i dh =
            _mm512_abs_epi8(_mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(a, 4), m),
                                            _mm512_and_si512(_mm512_srli_epi16(b, 4), m)));
        acc = _mm512_dpbusd_epi32(acc, dl, dl);
        return _mm512_dpbusd_epi32(acc, dh, dh);
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

#include "simd/isa/quant_shapes.inl"
#define PYSIM_QUANT_INT_ONLY 1
#include "simd/isa/quant_int_kernels.inl"
#undef PYSIM_QUANT_INT_ONLY

} // namespace

void fill_quant_avx512_vnni(QuantKernels& t) noexcept {
    fill_int_quant<Int>(t, Isa::avx512_vnni);
}

} // namespace pysim::simd
#endif
