// Portable kernels for compressed codes, compiled with the target's baseline flags only.
// fill_quant_scalar() fills every slot, so higher levels only overwrite what they speed up.
//
// The f16 and bf16 conversions here are the software reference the SIMD units must match bit
// for bit (tests compare every level with numpy's float16 and with an integer bf16 rounding):
// round to nearest even, f16 overflow to +-inf at 65520, subnormals kept, NaN stays NaN.
//
// Integer accumulators are uint32 so that a sum past the documented bounds wraps instead of
// being undefined behaviour; within the bounds the int32 result is exact either way.
//
// Repetition by design: the traits structs below have the shape of every ISA file's (each is
// one instruction set's vocabulary, here the portable one); the kernels built on them are
// written once in the .inl files (duplicates pairs the traits by shape).
#include <cstring>

#include "simd/quant_kernels.hpp"

namespace pysim::simd {
namespace {

std::uint32_t float_bits(float f) noexcept {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

float bits_float(std::uint32_t u) noexcept {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

std::uint16_t float_to_half(float f) noexcept {
    const std::uint32_t x = float_bits(f);
    const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    std::uint32_t a = x & 0x7FFFFFFFu;
    if (a > 0x7F800000u)
        return sign | 0x7E00u | static_cast<std::uint16_t>((a >> 13) & 0x3FFu);
    if (a >= 0x477FF000u)
        return sign | 0x7C00u; // >= 65520 rounds to infinity
    if (a >= 0x38800000u) {    // normal half: rebias, round at bit 13
        a -= 0x38000000u;
        a += 0x0FFFu + ((a >> 13) & 1u);
        return sign | static_cast<std::uint16_t>(a >> 13);
    }
    if (a <= 0x33000000u)
        return sign;                 // <= 2^-25: ties to even give zero
    const std::uint32_t e = a >> 23; // 102..112: subnormal half, units of 2^-24
    const std::uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126u - e;
    std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u)))
        ++q;
    return sign | static_cast<std::uint16_t>(q);
}

// Exponent rebias on the bits; subnormal halves (exponent 0) are exact as m * 2^-24, and
// inf / NaN keep their payload. One well-predicted branch for normal values.
float half_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e - 1u < 30u)
        return bits_float(sign | ((e + 112u) << 23) | (m << 13));
    if (e == 31)
        return bits_float(sign | 0x7F800000u | (m << 13));
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f; // m * 2^-24, exact
    return bits_float(float_bits(v) | sign);
}

std::uint16_t float_to_bf16(float f) noexcept {
    const std::uint32_t x = float_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u)
        return static_cast<std::uint16_t>((x >> 16) | 0x40u);
    return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

float bf16_to_float(std::uint16_t b) noexcept {
    return bits_float(std::uint32_t{b} << 16);
}

std::uint16_t load_u16(const std::uint8_t* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

struct F32 {
    using T = float;
    struct V {
        float x[4];
    };
    static constexpr std::size_t W = 4;
    static constexpr bool kPairwise = true; // see quant_shapes.inl

    static V zero() noexcept { return V{{0, 0, 0, 0}}; }
    static V load(const float* p) noexcept { return V{{p[0], p[1], p[2], p[3]}}; }
    static V load_partial(const float* p, std::size_t n) noexcept {
        V v = zero();
        for (std::size_t i = 0; i < n && i < W; ++i)
            v.x[i] = p[i];
        return v;
    }
    static void store(float* p, V v) noexcept {
        for (std::size_t i = 0; i < W; ++i)
            p[i] = v.x[i];
    }
    static void store_partial(float* p, V v, std::size_t n) noexcept {
        for (std::size_t i = 0; i < n && i < W; ++i)
            p[i] = v.x[i];
    }
    static V add(V a, V b) noexcept {
        for (std::size_t i = 0; i < W; ++i)
            a.x[i] += b.x[i];
        return a;
    }
    static V sub(V a, V b) noexcept {
        for (std::size_t i = 0; i < W; ++i)
            a.x[i] -= b.x[i];
        return a;
    }
    static V fmadd(V a, V b, V c) noexcept {
        for (std::size_t i = 0; i < W; ++i)
            c.x[i] += a.x[i] * b.x[i];
        return c;
    }
    static V fnmadd(V a, V b, V c) noexcept {
        for (std::size_t i = 0; i < W; ++i)
            c.x[i] -= a.x[i] * b.x[i];
        return c;
    }
    static float reduce(V a) noexcept { return (a.x[0] + a.x[1]) + (a.x[2] + a.x[3]); }

    // Full blocks use a constant trip count, which the compiler unrolls and vectorises with
    // baseline SIMD; partial blocks are the rare tail.
    template <class Fn> static V gen(const Fn& fn) noexcept {
        V v;
        for (std::size_t i = 0; i < W; ++i)
            v.x[i] = fn(i);
        return v;
    }
    template <class Fn> static V gen(std::size_t n, const Fn& fn) noexcept {
        V v = zero();
        for (std::size_t i = 0; i < n && i < W; ++i)
            v.x[i] = fn(i);
        return v;
    }
    static float u8(const std::uint8_t* p) noexcept { return static_cast<float>(*p); }
    static float f16(const std::uint8_t* p) noexcept { return half_to_float(load_u16(p)); }
    static float bf16(const std::uint8_t* p) noexcept { return bf16_to_float(load_u16(p)); }
    static V from_u8(const std::uint8_t* p) noexcept {
        return gen([p](std::size_t i) { return u8(p + i); });
    }
    static V from_u8_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return gen(n, [p](std::size_t i) { return u8(p + i); });
    }
    static V from_f16(const std::uint8_t* p) noexcept {
        return gen([p](std::size_t i) { return f16(p + 2 * i); });
    }
    static V from_f16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return gen(n, [p](std::size_t i) { return f16(p + 2 * i); });
    }
    static V from_bf16(const std::uint8_t* p) noexcept {
        return gen([p](std::size_t i) { return bf16(p + 2 * i); });
    }
    static V from_bf16_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return gen(n, [p](std::size_t i) { return bf16(p + 2 * i); });
    }
    static V nib_lo(const std::uint8_t* p) noexcept {
        return gen([p](std::size_t i) { return static_cast<float>(p[i] & 0x0F); });
    }
    static V nib_lo_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return gen(n, [p](std::size_t i) { return static_cast<float>(p[i] & 0x0F); });
    }
    static V nib_hi(const std::uint8_t* p) noexcept {
        return gen([p](std::size_t i) { return static_cast<float>(p[i] >> 4); });
    }
    static V nib_hi_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return gen(n, [p](std::size_t i) { return static_cast<float>(p[i] >> 4); });
    }
    static void to_f16(std::uint16_t* out, V v) noexcept { to_f16_partial(out, v, W); }
    static void to_f16_partial(std::uint16_t* out, V v, std::size_t n) noexcept {
        for (std::size_t i = 0; i < n && i < W; ++i)
            out[i] = float_to_half(v.x[i]);
    }
    static void to_bf16(std::uint16_t* out, V v) noexcept { to_bf16_partial(out, v, W); }
    static void to_bf16_partial(std::uint16_t* out, V v, std::size_t n) noexcept {
        for (std::size_t i = 0; i < n && i < W; ++i)
            out[i] = float_to_bf16(v.x[i]);
    }
};

struct Int {
    using IV = std::uint32_t;
    static constexpr bool kPairwise = true;
    static constexpr std::size_t IB8 = 8;
    static constexpr std::size_t IB4 = 8;

    static IV izero() noexcept { return 0; }
    static IV iadd(IV a, IV b) noexcept { return a + b; }
    static std::int32_t ireduce(IV a) noexcept { return static_cast<std::int32_t>(a); }

    static IV mul(int a, int b) noexcept { return static_cast<IV>(a * b); }
    static IV dot_u8_partial(IV acc, const std::uint8_t* c, const std::int8_t* t,
                             std::size_t n) noexcept {
        for (std::size_t j = 0; j < n; ++j)
            acc += mul(c[j], t[j]);
        return acc;
    }
    static IV dot_u8(IV acc, const std::uint8_t* c, const std::int8_t* t) noexcept {
        return dot_u8_partial(acc, c, t, IB8);
    }
    static IV l2_u8_partial(IV acc, const std::uint8_t* a, const std::uint8_t* b,
                            std::size_t n) noexcept {
        for (std::size_t j = 0; j < n; ++j)
            acc += mul(a[j] - b[j], a[j] - b[j]);
        return acc;
    }
    static IV l2_u8(IV acc, const std::uint8_t* a, const std::uint8_t* b) noexcept {
        return l2_u8_partial(acc, a, b, IB8);
    }
    static IV dot_u4_partial(IV acc, const std::uint8_t* c, const std::int8_t* tlo,
                             const std::int8_t* thi, std::size_t nlo, std::size_t nhi) noexcept {
        for (std::size_t j = 0; j < nlo; ++j)
            acc += mul(c[j] & 0x0F, tlo[j]);
        for (std::size_t j = 0; j < nhi; ++j)
            acc += mul(c[j] >> 4, thi[j]);
        return acc;
    }
    static IV dot_u4(IV acc, const std::uint8_t* c, const std::int8_t* tlo,
                     const std::int8_t* thi) noexcept {
        return dot_u4_partial(acc, c, tlo, thi, IB4, IB4);
    }
    static IV l2_u4_partial(IV acc, const std::uint8_t* a, const std::uint8_t* b,
                            std::size_t n) noexcept {
        for (std::size_t j = 0; j < n; ++j) {
            const int lo = (a[j] & 0x0F) - (b[j] & 0x0F), hi = (a[j] >> 4) - (b[j] >> 4);
            acc += mul(lo, lo) + mul(hi, hi);
        }
        return acc;
    }
    static IV l2_u4(IV acc, const std::uint8_t* a, const std::uint8_t* b) noexcept {
        return l2_u4_partial(acc, a, b, IB4);
    }
};

// The shapes first (their own include block): the kernel files build on them.
#include "simd/isa/quant_shapes.inl"

#include "simd/isa/quant_float_kernels.inl"
#include "simd/isa/quant_int_kernels.inl"

// The reference FastScan: one table lookup per (code, group), summed in uint32.
void fastscan32_scalar(const std::uint8_t* codes, const std::uint8_t* lut, std::size_t n_pairs,
                       std::uint32_t* out) noexcept {
    for (std::size_t j = 0; j < kFastScanBatch; ++j)
        out[j] = 0;
    for (std::size_t p = 0; p < n_pairs; ++p) {
        const std::uint8_t* c = codes + 32 * p;
        const std::uint8_t* lo = lut + 64 * p;
        const std::uint8_t* hi = lo + 32;
        for (std::size_t j = 0; j < kFastScanBatch; ++j)
            out[j] += std::uint32_t(lo[c[j] & 0x0Fu]) + std::uint32_t(hi[c[j] >> 4]);
    }
}

} // namespace

void fill_quant_scalar(QuantKernels& t) noexcept {
    fill_float_quant<F32>(t, Isa::scalar);
    fill_int_quant<Int>(t, Isa::scalar);
    t.fastscan32 = {&fastscan32_scalar, Isa::scalar};
}

} // namespace pysim::simd
