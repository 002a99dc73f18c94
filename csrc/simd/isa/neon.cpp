// NEON kernels for aarch64 (4 floats / 2 doubles per register, 32 registers). NEON is part
// of the aarch64 baseline, so this file needs no extra flags; dispatch.cpp selects it on every
// aarch64 CPU. Tails go through a small zero-padded stack buffer: NEON has no masked loads, and
// reading past the caller's buffer is not allowed.
//
// ODR rule: everything except fill_neon has internal linkage (generic_kernels.inl is included
// inside the anonymous namespace), and no STL template is instantiated here.
//
// Repetition by design: the traits structs below (and their F32 / F64 or float / integer
// pairs) have the shape of every other ISA file's, because each is one instruction set's
// vocabulary of intrinsics - the only per-ISA code; the kernels built on them are written
// once in the .inl files (duplicates pairs the traits by shape).
#include "simd/kernels.hpp"

#if defined(__aarch64__) || defined(_M_ARM64)
#include <arm_neon.h>

namespace pysim::simd {
namespace {

struct F32 {
    using T = float;
    using V = float32x4_t;
    static constexpr std::size_t W = 4;
    static constexpr std::size_t MR = 8;
    static V zero() noexcept { return vdupq_n_f32(0.0f); }
    static V set1(T s) noexcept { return vdupq_n_f32(s); }
    static V load(const T* p) noexcept { return vld1q_f32(p); }
    static V load_partial(const T* p, std::size_t c) noexcept {
        T buf[4] = {0, 0, 0, 0};
        for (std::size_t i = 0; i < c && i < W; ++i)
            buf[i] = p[i];
        return vld1q_f32(buf);
    }
    static void store(T* p, V v) noexcept { vst1q_f32(p, v); }
    static void store_partial(T* p, V v, std::size_t c) noexcept {
        T buf[4];
        vst1q_f32(buf, v);
        for (std::size_t i = 0; i < c && i < W; ++i)
            p[i] = buf[i];
    }
    static V add(V a, V b) noexcept { return vaddq_f32(a, b); }
    static V sub(V a, V b) noexcept { return vsubq_f32(a, b); }
    static V mul(V a, V b) noexcept { return vmulq_f32(a, b); }
    static V max(V a, V b) noexcept { return vmaxq_f32(a, b); }
    static V min(V a, V b) noexcept { return vminq_f32(a, b); }
    static V fmadd(V a, V b, V c) noexcept { return vfmaq_f32(c, a, b); }
    static V sqrt(V a) noexcept { return vsqrtq_f32(a); }
    static std::uint32_t lt_mask(V a, V b) noexcept {
        const uint32x4_t bits = {1u, 2u, 4u, 8u};
        return vaddvq_u32(vandq_u32(vcltq_f32(a, b), bits));
    }
    static T reduce(V v) noexcept { return vaddvq_f32(v); }
};

struct F64 {
    using T = double;
    using V = float64x2_t;
    static constexpr std::size_t W = 2;
    static constexpr std::size_t MR = 8;
    static V zero() noexcept { return vdupq_n_f64(0.0); }
    static V set1(T s) noexcept { return vdupq_n_f64(s); }
    static V load(const T* p) noexcept { return vld1q_f64(p); }
    static V load_partial(const T* p, std::size_t c) noexcept {
        T buf[2] = {0, 0};
        for (std::size_t i = 0; i < c && i < W; ++i)
            buf[i] = p[i];
        return vld1q_f64(buf);
    }
    static void store(T* p, V v) noexcept { vst1q_f64(p, v); }
    // Mixed precision (fill_mixed): two floats widened to two doubles.
    static V widen(const float* p) noexcept { return vcvt_f64_f32(vld1_f32(p)); }
    static V widen_partial(const float* p, std::size_t c) noexcept {
        float buf[2] = {0, 0};
        for (std::size_t i = 0; i < c && i < W; ++i)
            buf[i] = p[i];
        return vcvt_f64_f32(vld1_f32(buf));
    }
    static void store_partial(T* p, V v, std::size_t c) noexcept {
        T buf[2];
        vst1q_f64(buf, v);
        for (std::size_t i = 0; i < c && i < W; ++i)
            p[i] = buf[i];
    }
    static V add(V a, V b) noexcept { return vaddq_f64(a, b); }
    static V sub(V a, V b) noexcept { return vsubq_f64(a, b); }
    static V mul(V a, V b) noexcept { return vmulq_f64(a, b); }
    static V max(V a, V b) noexcept { return vmaxq_f64(a, b); }
    static V min(V a, V b) noexcept { return vminq_f64(a, b); }
    static V fmadd(V a, V b, V c) noexcept { return vfmaq_f64(c, a, b); }
    static V sqrt(V a) noexcept { return vsqrtq_f64(a); }
    static std::uint32_t lt_mask(V a, V b) noexcept {
        const uint64x2_t bits = {1u, 2u};
        return static_cast<std::uint32_t>(vaddvq_u64(vandq_u64(vcltq_f64(a, b), bits)));
    }
    static T reduce(V v) noexcept { return vaddvq_f64(v); }
    // exp_kernels.inl: 2^k from s = k + 1.5 * 2^52 (k's bits moved into the exponent field),
    // and v where !(a < b), 0 elsewhere.
    static V pow2_bits(V s) noexcept {
        const int64x2_t b = vaddq_s64(vreinterpretq_s64_f64(s), vdupq_n_s64(1023));
        return vreinterpretq_f64_s64(vshlq_n_s64(b, 52));
    }
    static V zero_where_lt(V v, V a, V b) noexcept {
        return vreinterpretq_f64_u64(vbicq_u64(vreinterpretq_u64_f64(v), vcltq_f64(a, b)));
    }
};

#include "simd/isa/exp_kernels.inl"
#include "simd/isa/generic_kernels.inl"

} // namespace

void fill_neon(KernelTable& t) noexcept {
    fill_kernels<F32>(t.f32, Isa::neon);
    fill_kernels<F64>(t.f64, Isa::neon);
    fill_mixed<F64>(t.f32_f64, Isa::neon);
    t.shifted_exp = {&shifted_exp<F64>, Isa::neon};
}

} // namespace pysim::simd
#endif
