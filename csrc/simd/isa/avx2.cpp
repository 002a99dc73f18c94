// AVX2 + FMA kernels (8 floats / 4 doubles per register, 16 registers).
//
// CMake compiles this file, and only this file, with -mavx2 -mfma -mf16c; dispatch.cpp calls
// fill_avx2() only after cpuid + xgetbv confirmed AVX2, FMA, F16C and OS-enabled YMM state.
// Tails use vmaskmov (masked load/store that never touches the bytes past the end), so no
// scalar remainder loop and no read past the caller's buffer. Tile: 6 rows x 2 registers =
// 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 YMM registers.
//
// ODR rule: everything except fill_avx2 has internal linkage (generic_kernels.inl is included
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
    using V = __m256;
    static constexpr std::size_t W = 8;
    static constexpr std::size_t MR = 6;
    static __m256i mask(std::size_t count) noexcept {
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), iota);
    }
    static V zero() noexcept { return _mm256_setzero_ps(); }
    static V set1(T s) noexcept { return _mm256_set1_ps(s); }
    static V load(const T* p) noexcept { return _mm256_loadu_ps(p); }
    static V load_partial(const T* p, std::size_t c) noexcept {
        return _mm256_maskload_ps(p, mask(c));
    }
    static void store(T* p, V v) noexcept { _mm256_storeu_ps(p, v); }
    static void store_partial(T* p, V v, std::size_t c) noexcept {
        _mm256_maskstore_ps(p, mask(c), v);
    }
    static V add(V a, V b) noexcept { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) noexcept { return _mm256_sub_ps(a, b); }
    static V mul(V a, V b) noexcept { return _mm256_mul_ps(a, b); }
    static V max(V a, V b) noexcept { return _mm256_max_ps(a, b); }
    static V min(V a, V b) noexcept { return _mm256_min_ps(a, b); }
    static V fmadd(V a, V b, V c) noexcept { return _mm256_fmadd_ps(a, b, c); }
    static V sqrt(V a) noexcept { return _mm256_sqrt_ps(a); }
    static std::uint32_t lt_mask(V a, V b) noexcept {
        return static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_LT_OQ)));
    }
    static T reduce(V v) noexcept {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
};

struct F64 {
    using T = double;
    using V = __m256d;
    static constexpr std::size_t W = 4;
    static constexpr std::size_t MR = 6;
    static __m256i mask(std::size_t count) noexcept {
        const __m256i iota = _mm256_setr_epi64x(0, 1, 2, 3);
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(count)), iota);
    }
    static V zero() noexcept { return _mm256_setzero_pd(); }
    static V set1(T s) noexcept { return _mm256_set1_pd(s); }
    static V load(const T* p) noexcept { return _mm256_loadu_pd(p); }
    static V load_partial(const T* p, std::size_t c) noexcept {
        return _mm256_maskload_pd(p, mask(c));
    }
    static V widen(const float* p) noexcept { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
    static V widen_partial(const float* p, std::size_t c) noexcept {
        const __m128i lanes = _mm_setr_epi32(0, 1, 2, 3);
        const __m128i m = _mm_cmpgt_epi32(_mm_set1_epi32(static_cast<int>(c)), lanes);
        return _mm256_cvtps_pd(_mm_maskload_ps(p, m));
    }
    static void store(T* p, V v) noexcept { _mm256_storeu_pd(p, v); }
    static void store_partial(T* p, V v, std::size_t c) noexcept {
        _mm256_maskstore_pd(p, mask(c), v);
    }
    static V add(V a, V b) noexcept { return _mm256_add_pd(a, b); }
    static V sub(V a, V b) noexcept { return _mm256_sub_pd(a, b); }
    static V mul(V a, V b) noexcept { return _mm256_mul_pd(a, b); }
    static V max(V a, V b) noexcept { return _mm256_max_pd(a, b); }
    static V min(V a, V b) noexcept { return _mm256_min_pd(a, b); }
    static V fmadd(V a, V b, V c) noexcept { return _mm256_fmadd_pd(a, b, c); }
    static V sqrt(V a) noexcept { return _mm256_sqrt_pd(a); }
    static std::uint32_t lt_mask(V a, V b) noexcept {
        return static_cast<std::uint32_t>(_mm256_movemask_pd(_mm256_cmp_pd(a, b, _CMP_LT_OQ)));
    }
    static T reduce(V v) noexcept {
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
        return _mm_cvtsd_f64(s);
    }
    // exp_kernels.inl: 2^k from s = k + 1.5 * 2^52 (k's bits moved into the exponent field),
    // and v where !(a < b), 0 elsewhere.
    static V pow2_bits(V s) noexcept {
        const __m256i b = _mm256_add_epi64(_mm256_castpd_si256(s), _mm256_set1_epi64x(1023));
        return _mm256_castsi256_pd(_mm256_slli_epi64(b, 52));
    }
    static V zero_where_lt(V v, V a, V b) noexcept {
        return _mm256_andnot_pd(_mm256_cmp_pd(a, b, _CMP_LT_OQ), v);
    }
};

#include "simd/isa/exp_kernels.inl"
#include "simd/isa/generic_kernels.inl"

// The float32 panel packing's 8 x 8 register transpose (unpack, shuffle, then a 128-bit lane
// permute: 24 shuffles per 64 values) for generic_kernels.inl's pack_panels_transposed, in
// place of its element-by-element transpose (as avx512.cpp does with 16 x 16).
void transpose8(const float* src, std::size_t ld, float* dst, std::size_t ldd) noexcept {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i)
        r[i] = _mm256_loadu_ps(src + i * ld);
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4 g + c], lane L: rows 4 g .. 4 g + 3 of column 4 L + c.
    for (int g = 0; g < 2; ++g) {
        u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {
        _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
        _mm256_storeu_ps(dst + (4 + c) * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
    }
}

} // namespace

void fill_avx2(KernelTable& t) noexcept {
    fill_kernels<F32>(t.f32, Isa::avx2);
    t.f32.pack = {&pack_panels_transposed<F32, 8, &transpose8>, Isa::avx2};
    fill_kernels<F64>(t.f64, Isa::avx2);
    fill_mixed<F64>(t.f32_f64, Isa::avx2);
    t.shifted_exp = {&shifted_exp<F64>, Isa::avx2};
}

} // namespace pysim::simd
#endif
