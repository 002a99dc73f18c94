// AVX-512 (F/DQ/BW/VL) kernels: 16 floats / 8 doubles per register, 32 registers, and
// opmask registers that make every tail a single masked load or store.
//
// CMake compiles this file, and only this file, with -mavx512f -mavx512dq -mavx512bw
// -mavx512vl -mfma; dispatch.cpp calls fill_avx512() only after cpuid + xgetbv confirmed the
// four subsets and OS-enabled opmask/ZMM state. Tile: 8 rows x 2 registers = 16 accumulators
// (MR x 2 FMAs per 2 + MR loads keeps the FMA ports, not the load ports, the bottleneck).
//
// ODR rule: everything except fill_avx512 has internal linkage (generic_kernels.inl is included
// inside the anonymous namespace), and no STL template is instantiated here.
//
// Repetition by design: the traits structs below (and their F32 / F64 or float / integer
// pairs) have the shape of every other ISA file's, because each is one instruction set's
// vocabulary of intrinsics - the only per-ISA code; the kernels built on them are written
// once in the .inl files (duplicates pairs the traits by shape).
#include "simd/kernels.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace pysim::simd {
namespace {

struct F32 {
    using T = float;
    using V = __m512;
    static constexpr std::size_t W = 16;
    static constexpr std::size_t MR = 8;
    static __mmask16 mask(std::size_t c) noexcept { return static_cast<__mmask16>((1u << c) - 1u); }
    static V zero() noexcept { return _mm512_setzero_ps(); }
    static V set1(T s) noexcept { return _mm512_set1_ps(s); }
    static V load(const T* p) noexcept { return _mm512_loadu_ps(p); }
    static V load_partial(const T* p, std::size_t c) noexcept {
        return _mm512_maskz_loadu_ps(mask(c), p);
    }
    static void store(T* p, V v) noexcept { _mm512_storeu_ps(p, v); }
    static void store_partial(T* p, V v, std::size_t c) noexcept {
        _mm512_mask_storeu_ps(p, mask(c), v);
    }
    static V add(V a, V b) noexcept { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) noexcept { return _mm512_sub_ps(a, b); }
    static V mul(V a, V b) noexcept { return _mm512_mul_ps(a, b); }
    static V max(V a, V b) noexcept { return _mm512_max_ps(a, b); }
    static V min(V a, V b) noexcept { return _mm512_min_ps(a, b); }
    static V fmadd(V a, V b, V c) noexcept { return _mm512_fmadd_ps(a, b, c); }
    static V sqrt(V a) noexcept { return _mm512_sqrt_ps(a); }
    static std::uint32_t lt_mask(V a, V b) noexcept {
        return static_cast<std::uint32_t>(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ));
    }
    static T reduce(V v) noexcept { return _mm512_reduce_add_ps(v); }
};

struct F64 {
    using T = double;
    using V = __m512d;
    static constexpr std::size_t W = 8;
    static constexpr std::size_t MR = 8;
    static __mmask8 mask(std::size_t c) noexcept { return static_cast<__mmask8>((1u << c) - 1u); }
    static V zero() noexcept { return _mm512_setzero_pd(); }
    static V set1(T s) noexcept { return _mm512_set1_pd(s); }
    static V load(const T* p) noexcept { return _mm512_loadu_pd(p); }
    static V load_partial(const T* p, std::size_t c) noexcept {
        return _mm512_maskz_loadu_pd(mask(c), p);
    }
    static V widen(const float* p) noexcept { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
    static V widen_partial(const float* p, std::size_t c) noexcept {
        return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mask(c), p));
    }
    static void store(T* p, V v) noexcept { _mm512_storeu_pd(p, v); }
    static void store_partial(T* p, V v, std::size_t c) noexcept {
        _mm512_mask_storeu_pd(p, mask(c), v);
    }
    static V add(V a, V b) noexcept { return _mm512_add_pd(a, b); }
    static V sub(V a, V b) noexcept { return _mm512_sub_pd(a, b); }
    static V mul(V a, V b) noexcept { return _mm512_mul_pd(a, b); }
    static V max(V a, V b) noexcept { return _mm512_max_pd(a, b); }
    static V min(V a, V b) noexcept { return _mm512_min_pd(a, b); }
    static V fmadd(V a, V b, V c) noexcept { return _mm512_fmadd_pd(a, b, c); }
    static V sqrt(V a) noexcept { return _mm512_sqrt_pd(a); }
    static std::uint32_t lt_mask(V a, V b) noexcept {
        return static_cast<std::uint32_t>(_mm512_cmp_pd_mask(a, b, _CMP_LT_OQ));
    }
    static T reduce(V v) noexcept { return _mm512_reduce_add_pd(v); }
    // exp_kernels.inl: 2^k from s = k + 1.5 * 2^52 (k's bits moved into the exponent field),
    // and v where !(a < b), 0 elsewhere.
    static V pow2_bits(V s) noexcept {
        const __m512i b = _mm512_add_epi64(_mm512_castpd_si512(s), _mm512_set1_epi64(1023));
        return _mm512_castsi512_pd(_mm512_slli_epi64(b, 52));
    }
    static V zero_where_lt(V v, V a, V b) noexcept {
        return _mm512_maskz_mov_pd(static_cast<__mmask8>(~_mm512_cmp_pd_mask(a, b, _CMP_LT_OQ)), v);
    }
};

#include "simd/isa/exp_kernels.inl"
#include "simd/isa/generic_kernels.inl"

// The float32 panel packing's 16 x 16 register transpose (unpack, shuffle, then two 128-bit lane
// shuffles: 64 shuffles per 256 values) for generic_kernels.inl's pack_panels_transposed, in
// place of its element-by-element transpose, which was about 5% of a 1000 x 10000 x 768 cdist.
void transpose16(const float* src, std::size_t ld, float* dst, std::size_t ldd) noexcept {
    __m512 r[16], t[16], u[16];
    for (int i = 0; i < 16; ++i)
        r[i] = _mm512_loadu_ps(src + i * ld);
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4 g + c], lane L: rows 4 g .. 4 g + 3 of column 4 L + c.
    for (int g = 0; g < 4; ++g) {
        u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88); // lanes 0, 2
        const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD); // lanes 1, 3
        const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        const __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        _mm512_storeu_ps(dst + (0 + c) * ldd, _mm512_shuffle_f32x4(v0, w0, 0x88));
        _mm512_storeu_ps(dst + (8 + c) * ldd, _mm512_shuffle_f32x4(v0, w0, 0xDD));
        _mm512_storeu_ps(dst + (4 + c) * ldd, _mm512_shuffle_f32x4(v1, w1, 0x88));
        _mm512_storeu_ps(dst + (12 + c) * ldd, _mm512_shuffle_f32x4(v1, w1, 0xDD));
    }
}

} // namespace

void fill_avx512(KernelTable& t) noexcept {
    fill_kernels<F32>(t.f32, Isa::avx512);
    t.f32.pack = {&pack_panels_transposed<F32, 16, &transpose16>, Isa::avx512};
    fill_kernels<F64>(t.f64, Isa::avx512);
    fill_mixed<F64>(t.f32_f64, Isa::avx512);
    t.shifted_exp = {&shifted_exp<F64>, Isa::avx512};
}

} // namespace pysim::simd
#endif
