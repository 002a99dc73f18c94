// Portable kernels, compiled with the target's baseline flags only (SSE2 on x86-64, the
// armv8-a base on aarch64). fill_scalar() fills every slot of every table first, so a level
// that implements only some kernels still has a correct fallback for the rest.
//
// The "vector" here is a plain 4-lane array; the compiler may map it onto baseline SIMD
// registers, which is exactly the speed a wheel built without per-ISA units would have. Four
// lanes also give four independent accumulators, which matters more than vector width for a
// reduction compiled without -ffast-math (the compiler may not reassociate sums).
//
// Repetition by design: the traits structs below have the shape of every ISA file's (each is
// one instruction set's vocabulary, here the portable one); the kernels built on them are
// written once in the .inl files (duplicates pairs the traits by shape).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd/kernels.hpp"

namespace pysim::simd {
namespace {

template <typename Scalar> struct Lanes4 {
    using T = Scalar;
    struct V {
        T x[4];
    };
    static constexpr std::size_t W = 4;
    static constexpr std::size_t MR = 4;

    static V zero() noexcept { return V{{0, 0, 0, 0}}; }
    static V set1(T s) noexcept { return V{{s, s, s, s}}; }
    static V load(const T* p) noexcept { return V{{p[0], p[1], p[2], p[3]}}; }
    static V load_partial(const T* p, std::size_t count) noexcept {
        V v = zero();
        for (std::size_t i = 0; i < count && i < W; ++i)
            v.x[i] = p[i];
        return v;
    }
    static V widen(const float* p) noexcept { return V{{T(p[0]), T(p[1]), T(p[2]), T(p[3])}}; }
    static V widen_partial(const float* p, std::size_t count) noexcept {
        V v = zero();
        for (std::size_t i = 0; i < count && i < W; ++i)
            v.x[i] = T(p[i]);
        return v;
    }
    static void store(T* p, V v) noexcept {
        for (std::size_t i = 0; i < W; ++i)
            p[i] = v.x[i];
    }
    static void store_partial(T* p, V v, std::size_t count) noexcept {
        for (std::size_t i = 0; i < count && i < W; ++i)
            p[i] = v.x[i];
    }
#define PYSIM_LANEWISE(name, expr)                                                                 \
    static V name(V a, V b) noexcept {                                                             \
        V r;                                                                                       \
        for (std::size_t i = 0; i < W; ++i)                                                        \
            r.x[i] = (expr);                                                                       \
        return r;                                                                                  \
    }
    PYSIM_LANEWISE(add, a.x[i] + b.x[i])
    PYSIM_LANEWISE(sub, a.x[i] - b.x[i])
    PYSIM_LANEWISE(mul, a.x[i] * b.x[i])
    PYSIM_LANEWISE(max, a.x[i] > b.x[i] ? a.x[i] : b.x[i])
    PYSIM_LANEWISE(min, a.x[i] < b.x[i] ? a.x[i] : b.x[i])
#undef PYSIM_LANEWISE
    static V fmadd(V a, V b, V c) noexcept {
        V r;
        for (std::size_t i = 0; i < W; ++i)
            r.x[i] = a.x[i] * b.x[i] + c.x[i];
        return r;
    }
    static V sqrt(V a) noexcept {
        V r;
        for (std::size_t i = 0; i < W; ++i)
            r.x[i] = std::sqrt(a.x[i]);
        return r;
    }
    static T reduce(V a) noexcept { return (a.x[0] + a.x[1]) + (a.x[2] + a.x[3]); }
    // exp_kernels.inl (double only): 2^k from s = k + 1.5 * 2^52 (k's bits moved into the
    // exponent field), and v where !(a < b), 0 elsewhere.
    static V pow2_bits(V s) noexcept {
        V r;
        for (std::size_t i = 0; i < W; ++i) {
            std::uint64_t b;
            std::memcpy(&b, &s.x[i], sizeof b);
            b = (b + 1023u) << 52;
            std::memcpy(&r.x[i], &b, sizeof b);
        }
        return r;
    }
    static V zero_where_lt(V v, V a, V b) noexcept {
        V r;
        for (std::size_t i = 0; i < W; ++i)
            r.x[i] = a.x[i] < b.x[i] ? T(0) : v.x[i];
        return r;
    }
    static std::uint32_t lt_mask(V a, V b) noexcept {
        std::uint32_t m = 0;
        for (std::size_t i = 0; i < W; ++i)
            m |= static_cast<std::uint32_t>(a.x[i] < b.x[i]) << i;
        return m;
    }
};

using F32 = Lanes4<float>;
using F64 = Lanes4<double>;

#include "simd/isa/exp_kernels.inl"
#include "simd/isa/generic_kernels.inl"

} // namespace

void fill_scalar(KernelTable& t) noexcept {
    fill_kernels<F32>(t.f32, Isa::scalar);
    fill_kernels<F64>(t.f64, Isa::scalar);
    fill_mixed<F64>(t.f32_f64, Isa::scalar);
    t.shifted_exp = {&shifted_exp<F64>, Isa::scalar};
}

} // namespace pysim::simd
