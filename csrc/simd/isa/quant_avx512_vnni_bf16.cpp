// AVX-512 BF16 kernel: vdpbf16ps multiplies 32 pairs of bf16 values and adds each pair's sum
// to a float32 lane, so a bf16 query against bf16 codes needs no conversion at all (the other
// levels widen both sides to float32 with a shift). Only the bf16_dot_bf16 slot changes at this
// level; everything else is inherited from avx512_vnni.
//
// CMake compiles this file, and only this file, with the avx512_vnni flags plus -mavx512bf16;
// dispatch.cpp fills it only after cpuid leaf 7 sub-leaf 1 reported AVX512_BF16 (eax bit 5).
// Numerics: the instruction treats bf16 subnormal inputs as zero and rounds to nearest even
// without consulting MXCSR; products of normal bf16 values are exact in float32, so the result
// differs from the widening kernels only in summation order (and for subnormal inputs).
//
// ODR rule: everything except fill_quant_avx512_vnni_bf16 has internal linkage; no STL.
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

// A same-size vector cast is a bit cast (GCC/Clang vector extension), whatever __m512bh's
// element type is in this compiler version.
__m512bh bh(__m512i v) noexcept {
    return (__m512bh)v;
}

__m512 dp(__m512 acc, const void* a, const void* b) noexcept {
    return _mm512_dpbf16_ps(acc, bh(_mm512_loadu_si512(a)), bh(_mm512_loadu_si512(b)));
}

__m512 dp_partial(__m512 acc, const void* a, const void* b, std::size_t n) noexcept {
    const __mmask32 m = mask32(n);
    return _mm512_dpbf16_ps(acc, bh(_mm512_maskz_loadu_epi16(m, a)),
                            bh(_mm512_maskz_loadu_epi16(m, b)));
}

float bf16_dot_pair(const std::uint16_t* q, const float*, const std::uint8_t* c,
                    std::size_t dim) noexcept {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        a0 = dp(a0, q + i, c + 2 * i);
        a1 = dp(a1, q + i + 32, c + 2 * (i + 32));
    }
    for (; i < dim; i += 32)
        a0 = dp_partial(a0, q + i, c + 2 * i, dim - i);
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

void bf16_dot_four(const std::uint16_t* q, const float*, const std::uint8_t* const* c,
                   std::size_t dim, float* out) noexcept {
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
    std::size_t i = 0;
    for (; i + 32 <= dim; i += 32)
        for (int r = 0; r < 4; ++r)
            a[r] = dp(a[r], q + i, c[r] + 2 * i);
    if (i < dim)
        for (int r = 0; r < 4; ++r)
            a[r] = dp_partial(a[r], q + i, c[r] + 2 * i, dim - i);
    for (int r = 0; r < 4; ++r)
        out[r] = _mm512_reduce_add_ps(a[r]);
}

#include "simd/isa/quant_shapes.inl"

} // namespace

void fill_quant_avx512_vnni_bf16(QuantKernels& t) noexcept {
    set_code_kernel<std::uint16_t, float, &bf16_dot_pair, &bf16_dot_four, 2, 1>(
        t.bf16_dot_bf16, Isa::avx512_vnni_bf16);
}

} // namespace pysim::simd
#endif
