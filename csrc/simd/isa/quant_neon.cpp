// NEON kernels for compressed codes on aarch64 (4 floats per register). NEON and the f16 <->
// f32 conversions (fcvtl / fcvtn) are part of the aarch64 baseline, so no extra flags; the
// integer dot-product instructions (sdot / udot, Armv8.2 DotProd) are used only when the build
// targets them (__ARM_FEATURE_DOTPROD, e.g. Apple silicon or -march=armv8.2-a+dotprod), since
// a runtime check would need a separate unit and level; otherwise products widen to int16 and
// accumulate with vmlal / vpadal, which is exact as well.
//
// u8 x s8 with sdot (signed x signed): c - 128 = (c ^ 0x80) reinterpreted as s8, so
// sum c t = sum (c ^ 0x80) t + 128 sum t, and sum t comes from a second sdot against ones.
// Squared differences: |a - b| (vabd) is an unsigned byte, squared with udot or vmull_u8.
// Tails go through a small zero-padded stack buffer: NEON has no masked loads, and reading past
// the code is not allowed.
//
// ODR rule: everything except fill_quant_neon has internal linkage; no STL.
//
// Repetition by design: the traits structs below (and their F32 / F64 or float / integer
// pairs) have the shape of every other ISA file's, because each is one instruction set's
// vocabulary of intrinsics - the only per-ISA code; the kernels built on them are written
// once in the .inl files (duplicates pairs the traits by shape).
#include <cstring>

#include "simd/quant_kernels.hpp"

#if defined(__aarch64__) || defined(_M_ARM64)
#include <arm_neon.h>

namespace pysim::simd {
namespace {

uint8x16_t bytes_partial(const void* p, std::size_t n) noexcept {
    std::uint8_t buf[16] = {};
    std::memcpy(buf, p, n < 16 ? n : 16);
    return vld1q_u8(buf);
}

struct F32 {
    using T = float;
    using V = float32x4_t;
    static constexpr std::size_t W = 4;
    static V zero() noexcept { return vdupq_n_f32(0.0f); }
    static V load(const float* p) noexcept { return vld1q_f32(p); }
    static V load_partial(const float* p, std::size_t c) noexcept {
        float buf[4] = {0, 0, 0, 0};
        for (std::size_t i = 0; i < c && i < W; ++i)
            buf[i] = p[i];
        return vld1q_f32(buf);
    }
    static void store(float* p, V v) noexcept { vst1q_f32(p, v); }
    static void store_partial(float* p, V v, std::size_t c) noexcept {
        float buf[4];
        vst1q_f32(buf, v);
        for (std::size_t i = 0; i < c && i < W; ++i)
            p[i] = buf[i];
    }
    static V add(V a, V b) noexcept { return vaddq_f32(a, b); }
    static V sub(V a, V b) noexcept { return vsubq_f32(a, b); }
    static V fmadd(V a, V b, V c) noexcept { return vfmaq_f32(c, a, b); }
    static V fnmadd(V a, V b, V c) noexcept { return vfmsq_f32(c, a, b); }
    static float reduce(V v) noexcept { return vaddvq_f32(v); }

    static uint8x8_t bytes4(const std::uint8_t* p) noexcept {
        std::uint32_t w;
        std::memcpy(&w, p, 4);
        return vreinterpret_u8_u32(vdup_n_u32(w));
    }
    static uint8x8_t bytes4_partial(const std::uint8_t* p, std::size_t n) noexcept {
        std::uint32_t w = 0;
        std::memcpy(&w, p, n < 4 ? n : 4);
        return vreinterpret_u8_u32(vdup_n_u32(w));
    }
    static V u8_to_f32(uint8x8_t b) noexcept {
        return vcvtq_f32_u32(vmovl_u16(vget_low_u16(vmovl_u8(b))));
    }
    static V from_u8(const std::uint8_t* p) noexcept { return u8_to_f32(bytes4(p)); }
    static V from_u8_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return u8_to_f32(bytes4_partial(p, n));
    }
    static uint16x4_t words4(const std::uint8_t* p) noexcept {
        return vreinterpret_u16_u8(vld1_u8(p));
    }
    static uint16x4_t words4_partial(const std::uint8_t* p, std::size_t n) noexcept {
        std::uint8_t buf[8] = {};
        std::memcpy(buf, p, 2 * (n < 4 ? n : 4));
        return vreinterpret_u16_u8(vld1_u8(buf));
    }
    static V f16_to_f32(uint16x4_t h) noexcept { return vcvt_f32_f16(vreinterpret_f16_u16(h)); }
    static V bf16_to_f32(uint16x4_t h) noexcept {
        return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
    }
    static V from_f16(const std::uint8_t* p) noexcept { return f16_to_f32(words4(p)); }
    static V from_f16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return f16_to_f32(words4_partial(p, n));
    }
    static V from_bf16(const std::uint8_t* p) noexcept { return bf16_to_f32(words4(p)); }
    static V from_bf16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return bf16_to_f32(words4_partial(p, n));
    }
    static V nib_lo(const std::uint8_t* p) noexcept {
        return u8_to_f32(vand_u8(bytes4(p), vdup_n_u8(0x0F)));
    }
    static V nib_hi(const std::uint8_t* p) noexcept { return u8_to_f32(vshr_n_u8(bytes4(p), 4)); }
    static V nib_lo_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return u8_to_f32(vand_u8(bytes4_partial(p, n), vdup_n_u8(0x0F)));
    }
    static V nib_hi_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return u8_to_f32(vshr_n_u8(bytes4_partial(p, n), 4));
    }

    static void store_words(std::uint16_t* out, uint16x4_t h, std::size_t n) noexcept {
        std::uint8_t buf[8];
        vst1_u8(buf, vreinterpret_u8_u16(h));
        std::memcpy(out, buf, 2 * (n < 4 ? n : 4));
    }
    static uint16x4_t f16_bits(V v) noexcept { return vreinterpret_u16_f16(vcvt_f16_f32(v)); }
    static void to_f16(std::uint16_t* out, V v) noexcept { store_words(out, f16_bits(v), W); }
    static void to_f16_partial(std::uint16_t* out, V v, std::size_t n) noexcept {
        store_words(out, f16_bits(v), n);
    }
    // Round to nearest even on the integer bits; NaN keeps its top bits and becomes quiet.
    static uint16x4_t bf16_bits(V v) noexcept {
        const uint32x4_t x = vreinterpretq_u32_f32(v);
        const uint32x4_t lsb = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
        const uint32x4_t rounded =
            vshrq_n_u32(vaddq_u32(x, vaddq_u32(vdupq_n_u32(0x7FFF), lsb)), 16);
        const uint32x4_t nan =
            vcgtq_u32(vandq_u32(x, vdupq_n_u32(0x7FFFFFFF)), vdupq_n_u32(0x7F800000));
        const uint32x4_t quiet = vorrq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(0x40));
        return vmovn_u32(vbslq_u32(nan, quiet, rounded));
    }
    static void to_bf16(std::uint16_t* out, V v) noexcept { store_words(out, bf16_bits(v), W); }
    static void to_bf16_partial(std::uint16_t* out, V v, std::size_t n) noexcept {
        store_words(out, bf16_bits(v), n);
    }
};

struct Int {
    struct IV {
        int32x4_t a; // the sum
        int32x4_t t; // sum of the query bytes, for the sdot offset trick (else zero)
    };
    static constexpr std::size_t IB8 = 16;
    static constexpr std::size_t IB4 = 16;

    static IV izero() noexcept { return {vdupq_n_s32(0), vdupq_n_s32(0)}; }
    static IV iadd(IV x, IV y) noexcept { return {vaddq_s32(x.a, y.a), vaddq_s32(x.t, y.t)}; }
    static std::int32_t ireduce(IV v) noexcept {
        const std::uint32_t s = static_cast<std::uint32_t>(vaddvq_s32(v.a)) +
                                128u * static_cast<std::uint32_t>(vaddvq_s32(v.t));
        return static_cast<std::int32_t>(s);
    }

    // acc + sum c_j t_j over 16 bytes, c unsigned, t signed.
    static IV dot16(IV acc, uint8x16_t c, int8x16_t t) noexcept {
#if defined(__ARM_FEATURE_DOTPROD)
        acc.a = vdotq_s32(acc.a, vreinterpretq_s8_u8(veorq_u8(c, vdupq_n_u8(0x80))), t);
        acc.t = vdotq_s32(acc.t, vdupq_n_s8(1), t);
#else
        const int16x8_t c0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(c)));
        const int16x8_t c1 = vreinterpretq_s16_u16(vmovl_high_u8(c));
        const int16x8_t t0 = vmovl_s8(vget_low_s8(t)), t1 = vmovl_high_s8(t);
        acc.a = vmlal_s16(acc.a, vget_low_s16(c0), vget_low_s16(t0));
        acc.a = vmlal_high_s16(acc.a, c0, t0);
        acc.a = vmlal_s16(acc.a, vget_low_s16(c1), vget_low_s16(t1));
        acc.a = vmlal_high_s16(acc.a, c1, t1);
#endif
        return acc;
    }
    // acc + sum d_j^2 over 16 unsigned bytes.
    static IV sq16(IV acc, uint8x16_t d) noexcept {
#if defined(__ARM_FEATURE_DOTPROD)
        acc.a = vreinterpretq_s32_u32(vdotq_u32(vreinterpretq_u32_s32(acc.a), d, d));
#else
        uint32x4_t s = vreinterpretq_u32_s32(acc.a);
        s = vpadalq_u16(s, vmull_u8(vget_low_u8(d), vget_low_u8(d)));
        s = vpadalq_u16(s, vmull_high_u8(d, d));
        acc.a = vreinterpretq_s32_u32(s);
#endif
        return acc;
    }
    // Nibbles (0..15) times signed bytes: sdot directly, no offset needed.
    static IV dot16_small(IV acc, uint8x16_t c, int8x16_t t) noexcept {
#if defined(__ARM_FEATURE_DOTPROD)
        acc.a = vdotq_s32(acc.a, vreinterpretq_s8_u8(c), t);
        return acc;
#else
        return dot16(acc, c, t);
#endif
    }

    static IV dot_u8(IV acc, const std::uint8_t* c, const std::int8_t* t) noexcept {
        return dot16(acc, vld1q_u8(c), vld1q_s8(t));
    }
    static IV dot_u8_partial(IV acc, const std::uint8_t* c, const std::int8_t* t,
                             std::size_t n) noexcept {
        return dot16(acc, bytes_partial(c, n), vreinterpretq_s8_u8(bytes_partial(t, n)));
    }
    static IV l2_u8(IV acc, const std::uint8_t* a, const std::uint8_t* b) noexcept {
        return sq16(acc, vabdq_u8(vld1q_u8(a), vld1q_u8(b)));
    }
    static IV l2_u8_partial(IV acc, const std::uint8_t* a, const std::uint8_t* b,
                            std::size_t n) noexcept {
        return sq16(acc, vabdq_u8(bytes_partial(a, n), bytes_partial(b, n)));
    }
    static IV dot16_u4(IV acc, uint8x16_t v, int8x16_t tlo, int8x16_t thi) noexcept {
        acc = dot16_small(acc, vandq_u8(v, vdupq_n_u8(0x0F)), tlo);
        return dot16_small(acc, vshrq_n_u8(v, 4), thi);
    }
    static IV dot_u4(IV acc, const std::uint8_t* c, const std::int8_t* tlo,
                     const std::int8_t* thi) noexcept {
        return dot16_u4(acc, vld1q_u8(c), vld1q_s8(tlo), vld1q_s8(thi));
    }
    static IV dot_u4_partial(IV acc, const std::uint8_t* c, const std::int8_t* tlo,
                             const std::int8_t* thi, std::size_t nlo, std::size_t nhi) noexcept {
        return dot16_u4(acc, bytes_partial(c, nlo), vreinterpretq_s8_u8(bytes_partial(tlo, nlo)),
                        vreinterpretq_s8_u8(bytes_partial(thi, nhi)));
    }
    static IV l2_16_u4(IV acc, uint8x16_t a, uint8x16_t b) noexcept {
        const uint8x16_t m = vdupq_n_u8(0x0F);
        acc = sq16(acc, vabdq_u8(vandq_u8(a, m), vandq_u8(b, m)));
        return sq16(acc, vabdq_u8(vshrq_n_u8(a, 4), vshrq_n_u8(b, 4)));
    }
    static IV l2_u4(IV acc, const std::uint8_t* a, const std::uint8_t* b) noexcept {
        return l2_16_u4(acc, vld1q_u8(a), vld1q_u8(b));
    }
    static IV l2_u4_partial(IV acc, const std::uint8_t* a, const std::uint8_t* b,
                            std::size_t n) noexcept {
        return l2_16_u4(acc, bytes_partial(a, n), bytes_partial(b, n));
    }
};

// The shapes first (their own include block): the kernel files build on them.
#include "simd/isa/quant_shapes.inl"

#include "simd/isa/quant_float_kernels.inl"
#include "simd/isa/quant_int_kernels.inl"

} // namespace

void fill_quant_neon(QuantKernels& t) noexcept {
    fill_float_quant<F32>(t, Isa::neon);
    fill_int_quant<Int>(t, Isa::neon);
}

} // namespace pysim::simd
#endif
