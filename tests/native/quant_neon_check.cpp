// Cross-checks the NEON compressed-code kernels against the portable ones, for machines without
// an aarch64 CPU: build with an aarch64 cross compiler and run under qemu (see
// tests/test_neon.py, which does both). Integer kernels and conversions must agree bit for
// bit; float kernels within float32 accumulation error of each other.
//
//   aarch64-linux-gnu-g++ -std=c++17 -O2 -static -Icsrc [-march=armv8.2-a+dotprod]
//       tests/native/quant_neon_check.cpp csrc/simd/isa/quant_scalar.cpp
//       csrc/simd/isa/quant_neon.cpp -o quant_neon_check && qemu-aarch64 ./quant_neon_check
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include "simd/quant_kernels.hpp"

using namespace pysim::simd;

namespace {

int failures = 0;

void fail(const char* what, const char* form, std::size_t dim) {
    if (++failures <= 20)
        std::printf("MISMATCH %s %s dim=%zu\n", what, form, dim);
}

std::size_t bytes_of(char layout, std::size_t dim) {
    return layout == 'h' ? 2 * dim : layout == '8' ? dim : (dim + 1) / 2;
}

template <typename Q, typename R>
void check(const char* name, const CodeKernel<Q, R>& ref, const CodeKernel<Q, R>& neon, char layout,
           std::size_t qlen_kind, std::mt19937& gen) {
    const std::size_t dims[] = {1,  2,  3,   5,   8,   15,  16,  17,  31,  33, 63,
                                64, 65, 100, 127, 128, 129, 200, 255, 257, 784};
    for (std::size_t dim : dims) {
        const std::size_t n = 7, cb = bytes_of(layout, dim), stride = cb + 3;
        std::vector<std::uint8_t> codes(n * stride);
        std::uniform_int_distribution<int> byte(0, 255);
        for (auto& b : codes)
            b = static_cast<std::uint8_t>(byte(gen));
        if (layout == 'h') { // keep 16-bit codes finite: clear the top exponent bit
            for (std::size_t i = 0; i < n; ++i)
                for (std::size_t j = 0; j < dim; ++j)
                    codes[i * stride + 2 * j + 1] &= 0x3F;
        }
        if (layout == '4' && dim % 2) { // zero padding nibble
            for (std::size_t i = 0; i < n; ++i)
                codes[i * stride + cb - 1] &= 0x0F;
        }
        const std::size_t qlen = qlen_kind ? bytes_of(layout, dim) : dim;
        std::vector<Q> q(qlen);
        std::vector<float> scale(dim);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (std::size_t j = 0; j < qlen; ++j) {
            if constexpr (std::is_same_v<Q, float>) {
                q[j] = normal(gen) * 10.0f;
            } else if constexpr (std::is_same_v<Q, std::uint16_t>) {
                q[j] = static_cast<std::uint16_t>(byte(gen) | ((byte(gen) & 0x3F) << 8));
            } else {
                q[j] = static_cast<Q>(byte(gen) - (std::is_signed_v<Q> ? 128 : 0));
            }
        }
        if constexpr (std::is_integral_v<Q>) {
            if (layout == '4' && qlen_kind && dim % 2)
                q[qlen - 1] = static_cast<Q>(q[qlen - 1] & 0x0F);
        }
        for (auto& s : scale)
            s = 0.5f + std::fabs(normal(gen));
        std::vector<const std::uint8_t*> ptrs(n);
        for (std::size_t i = 0; i < n; ++i)
            ptrs[i] = codes.data() + ((i * 3) % n) * stride;
        std::vector<R> a(n), b(n), c(n), d(n);
        for (std::size_t i = 0; i < n; ++i)
            a[i] = ref.pair.fn(q.data(), scale.data(), ptrs[i], dim);
        for (std::size_t i = 0; i < n; ++i)
            b[i] = neon.pair.fn(q.data(), scale.data(), ptrs[i], dim);
        neon.batch.fn(q.data(), scale.data(), ptrs.data(), n, dim, c.data());
        std::vector<R> m(n);
        neon.many.fn(q.data(), scale.data(), codes.data(), stride, n, dim, m.data());
        for (std::size_t i = 0; i < n; ++i)
            d[i] = m[(i * 3) % n];
        const char* forms[] = {"pair", "batch", "many"};
        const std::vector<R>* got[] = {&b, &c, &d};
        for (int f = 0; f < 3; ++f) {
            for (std::size_t i = 0; i < n; ++i) {
                const double x = double((*got[f])[i]), y = double(a[i]);
                const bool ok =
                    std::is_integral_v<R>
                        ? x == y
                        : std::fabs(x - y) <= 1e-5 * (1.0 + std::fabs(y)) * std::sqrt(double(dim));
                if (!ok) {
                    fail(name, forms[f], dim);
                    break;
                }
            }
        }
    }
}

} // namespace

int main() {
    QuantKernels ref, neon;
    fill_quant_scalar(ref);
    fill_quant_scalar(neon);
    fill_quant_neon(neon);
    std::mt19937 gen(7);
    // One line per kernel slot, a table (duplicates pairs its lines).
    check("f16_dot", ref.f16_dot, neon.f16_dot, 'h', 0, gen);
    check("f16_l2sq", ref.f16_l2sq, neon.f16_l2sq, 'h', 0, gen);
    check("bf16_dot", ref.bf16_dot, neon.bf16_dot, 'h', 0, gen);
    check("bf16_l2sq", ref.bf16_l2sq, neon.bf16_l2sq, 'h', 0, gen);
    check("bf16_dot_bf16", ref.bf16_dot_bf16, neon.bf16_dot_bf16, 'h', 0, gen);
    check("u8_dot", ref.u8_dot, neon.u8_dot, '8', 0, gen);
    check("u8_l2sq", ref.u8_l2sq, neon.u8_l2sq, '8', 0, gen);
    check("u4_dot", ref.u4_dot, neon.u4_dot, '4', 0, gen);
    check("u4_l2sq", ref.u4_l2sq, neon.u4_l2sq, '4', 0, gen);
    check("u8_dot_i8", ref.u8_dot_i8, neon.u8_dot_i8, '8', 0, gen);
    check("u4_dot_i8", ref.u4_dot_i8, neon.u4_dot_i8, '4', 0, gen);
    check("u8_l2sq_u8", ref.u8_l2sq_u8, neon.u8_l2sq_u8, '8', 1, gen);
    check("u4_l2sq_u4", ref.u4_l2sq_u4, neon.u4_l2sq_u4, '4', 1, gen);

    // Conversions: bit for bit, over every 16-bit pattern and many float32 ones.
    std::vector<std::uint16_t> h(65536), h1(65536), h2(65536);
    for (std::size_t i = 0; i < h.size(); ++i)
        h[i] = static_cast<std::uint16_t>(i);
    std::vector<float> f1(65536), f2(65536);
    for (auto pair : {std::make_pair(ref.f16_to_f32.fn, neon.f16_to_f32.fn),
                      std::make_pair(ref.bf16_to_f32.fn, neon.bf16_to_f32.fn)}) {
        pair.first(h.data(), f1.data(), h.size());
        pair.second(h.data(), f2.data(), h.size());
        for (std::size_t i = 0; i < h.size(); ++i) {
            if (std::isnan(f1[i]) ? !std::isnan(f2[i]) : std::memcmp(&f1[i], &f2[i], 4) != 0) {
                fail("half_to_f32", "convert", i);
                break;
            }
        }
    }
    std::vector<float> x(1 << 20);
    std::uniform_int_distribution<std::uint32_t> bits;
    for (auto& v : x) {
        std::uint32_t u = bits(gen);
        if ((u & 0x7F800000u) == 0x7F800000u)
            u &= 0xBFFFFFFFu; // finite
        std::memcpy(&v, &u, 4);
    }
    std::vector<std::uint16_t> y1(x.size()), y2(x.size());
    for (auto pair : {std::make_pair(ref.f32_to_f16.fn, neon.f32_to_f16.fn),
                      std::make_pair(ref.f32_to_bf16.fn, neon.f32_to_bf16.fn)}) {
        pair.first(x.data(), y1.data(), x.size() - 3);
        pair.second(x.data(), y2.data(), x.size() - 3);
        if (std::memcmp(y1.data(), y2.data(), 2 * (x.size() - 3)) != 0)
            fail("to_half", "convert", 0);
    }
#if defined(__ARM_FEATURE_DOTPROD)
    std::printf("dotprod ");
#endif
    std::printf("%s (%d mismatches)\n", failures ? "FAIL" : "OK", failures);
    return failures ? 1 : 0;
}
