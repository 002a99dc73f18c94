// Checks the NEON float32/float64 distance kernels against a higher-precision reference, for
// machines without an aarch64 CPU: build with an aarch64 cross compiler and run under qemu (see
// tests/test_neon.py, which does both). The table is filled the way dispatch fills it (scalar
// first, then NEON over it), and every slot must come from NEON.
//
// Reference: float32 inputs are summed in double, float64 inputs in long double (binary128 on
// aarch64 Linux). Tolerances are the contract's, relative to the norms: 1e-5 for float32,
// 1e-12 for float64 (sqrt outputs are compared through |sqrt x - sqrt y| <= sqrt |x - y|).
// l2sq_panel promises the same bits on every ISA, so it is compared with the scalar table's.
// The float64 shifted exponential is checked in ulps against a long double exp.
//
//   aarch64-linux-gnu-g++ -std=c++17 -O2 -static -ffp-contract=off -Icsrc
//       tests/native/float_neon_check.cpp csrc/simd/isa/scalar.cpp csrc/simd/isa/neon.cpp
//       -o float_neon_check && qemu-aarch64 ./float_neon_check
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "simd/kernels.hpp"

using namespace pysim::simd;

namespace {

int failures = 0;
long checks = 0;

template <typename T> struct Ref {
    using type = double;
};
template <> struct Ref<double> {
    using type = long double;
};

template <typename T> double rel_tol() {
    return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

template <typename T>
void expect(const char* what, std::size_t dim, std::size_t i, double got, double want,
            double scale) {
    ++checks;
    const double tol = rel_tol<T>() * (1.0 + scale);
    if (!(std::fabs(got - want) <= tol)) { // also fails on NaN
        if (++failures <= 20)
            std::printf("MISMATCH %s %s dim=%zu i=%zu got=%.17g want=%.17g tol=%.3g\n",
                        sizeof(T) == 4 ? "f32" : "f64", what, dim, i, got, want, tol);
    }
}

template <typename T> struct Data {
    std::size_t n, dim, ld;
    std::vector<T> v; // n rows of `dim`, row stride ld (the gap holds junk that must not be read)
    const T* row(std::size_t i) const { return v.data() + i * ld; }
};

template <typename T>
Data<T> make(std::size_t n, std::size_t dim, std::size_t ld, std::mt19937& g) {
    Data<T> d{n, dim, ld, std::vector<T>(n * ld + 1)};
    std::normal_distribution<double> normal(0.0, 1.0);
    for (auto& x : d.v)
        x = T(std::nan(""));
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < dim; ++j)
            d.v[i * ld + j] = T(normal(g) * (1 + i % 3)); // a few norms
    return d;
}

template <typename T> typename Ref<T>::type rdot(const T* a, const T* b, std::size_t dim) {
    typename Ref<T>::type s = 0;
    for (std::size_t j = 0; j < dim; ++j)
        s += typename Ref<T>::type(a[j]) * typename Ref<T>::type(b[j]);
    return s;
}

template <typename T> typename Ref<T>::type rl2sq(const T* a, const T* b, std::size_t dim) {
    typename Ref<T>::type s = 0;
    for (std::size_t j = 0; j < dim; ++j) {
        const auto d = typename Ref<T>::type(a[j]) - typename Ref<T>::type(b[j]);
        s += d * d;
    }
    return s;
}

template <typename T>
void check_vectors(const Kernels<T>& k, const Kernels<T>& scalar, std::size_t dim,
                   std::mt19937& g) {
    const std::size_t n = 13;
    const Data<T> q = make<T>(1, dim, dim, g);
    const Data<T> rows = make<T>(n, dim, dim, g); // many kernels read contiguous rows
    const double qn = std::sqrt(double(rdot(q.row(0), q.row(0), dim)));
    std::vector<T> out(n), out2(n), norms(n);
    for (std::size_t i = 0; i < n; ++i) {
        const T* r = rows.row(i);
        const double rn = std::sqrt(double(rdot(r, r, dim)));
        const double dot_scale = qn * rn, sq_scale = qn * qn + rn * rn;
        expect<T>("dot", dim, i, k.dot.fn(q.row(0), r, dim), double(rdot(q.row(0), r, dim)),
                  dot_scale);
        expect<T>("l2sq", dim, i, k.l2sq.fn(q.row(0), r, dim), double(rl2sq(q.row(0), r, dim)),
                  sq_scale);
        expect<T>("norm2", dim, i, k.norm2.fn(r, nullptr, dim), double(rdot(r, r, dim)), rn * rn);
    }
    k.dot_many.fn(q.row(0), rows.v.data(), n, dim, out.data());
    for (std::size_t i = 0; i < n; ++i) {
        const T* r = rows.row(i);
        expect<T>("dot_many", dim, i, out[i], double(rdot(q.row(0), r, dim)),
                  qn * std::sqrt(double(rdot(r, r, dim))));
    }
    k.l2sq_many.fn(q.row(0), rows.v.data(), n, dim, out.data());
    for (std::size_t i = 0; i < n; ++i) {
        const T* r = rows.row(i);
        expect<T>("l2sq_many", dim, i, out[i], double(rl2sq(q.row(0), r, dim)),
                  qn * qn + double(rdot(r, r, dim)));
    }
    k.dot_norm_many.fn(q.row(0), rows.v.data(), n, dim, out.data(), out2.data());
    k.norms.fn(rows.v.data(), n, dim, norms.data());
    for (std::size_t i = 0; i < n; ++i) {
        const T* r = rows.row(i);
        const double rr = double(rdot(r, r, dim));
        expect<T>("dot_norm_many.dot", dim, i, out[i], double(rdot(q.row(0), r, dim)),
                  qn * std::sqrt(rr));
        expect<T>("dot_norm_many.norm", dim, i, out2[i], rr, rr);
        expect<T>("norms", dim, i, norms[i], rr, rr);
    }
    // Dimension-major panel: bit-identical to the scalar table, and close to the reference.
    std::vector<T> panel(n * dim);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < dim; ++j)
            panel[j * n + i] = rows.row(i)[j];
    k.l2sq_panel.fn(q.row(0), panel.data(), n, dim, out.data());
    scalar.l2sq_panel.fn(q.row(0), panel.data(), n, dim, out2.data());
    for (std::size_t i = 0; i < n; ++i) {
        const T* r = rows.row(i);
        expect<T>("l2sq_panel", dim, i, out[i], double(rl2sq(q.row(0), r, dim)),
                  qn * qn + double(rdot(r, r, dim)));
        ++checks;
        if (std::memcmp(&out[i], &out2[i], sizeof(T)) != 0 && ++failures <= 20)
            std::printf("MISMATCH %s l2sq_panel differs from scalar dim=%zu i=%zu\n",
                        sizeof(T) == 4 ? "f32" : "f64", dim, i);
    }
}

// pack + tile with every epilogue, every row remainder of the register block and a partial
// last panel; A and the output have row strides larger than their widths.
template <typename T> void check_tile(const Kernels<T>& k, std::size_t dim, std::mt19937& g) {
    const std::size_t nr = k.tile_nr, mr = k.tile_mr;
    const std::size_t n = 2 * nr + 3, m_max = 2 * mr + mr - 1;
    const Data<T> a = make<T>(m_max, dim, dim + 5, g);
    const Data<T> b = make<T>(n, dim, dim + 2, g);
    std::vector<T> packed(((n + nr - 1) / nr) * nr * dim);
    k.pack.fn(b.v.data(), b.ld, n, dim, packed.data());
    std::vector<double> an(m_max), bn(n);
    std::vector<T> a_sq(m_max), b_sq(n), a_inv(m_max), b_inv(n);
    for (std::size_t i = 0; i < m_max; ++i) {
        an[i] = double(rdot(a.row(i), a.row(i), dim));
        a_sq[i] = T(an[i]);
        a_inv[i] = T(1 / std::sqrt(an[i]));
    }
    for (std::size_t j = 0; j < n; ++j) {
        bn[j] = double(rdot(b.row(j), b.row(j), dim));
        b_sq[j] = T(bn[j]);
        b_inv[j] = T(1 / std::sqrt(bn[j]));
    }
    const Epilogue epilogues[] = {Epilogue::dot, Epilogue::ip, Epilogue::l2sq, Epilogue::l2,
                                  Epilogue::cosine};
    const char* names[] = {"tile.dot", "tile.ip", "tile.l2sq", "tile.l2", "tile.cosine"};
    for (std::size_t m = 1; m <= m_max; m += (m < mr + 1 ? 1 : mr - 1)) {
        for (int e = 0; e < 5; ++e) {
            const std::size_t ldo = n + 3;
            std::vector<T> out(m * ldo, T(-7));
            const bool l2 = epilogues[e] == Epilogue::l2sq || epilogues[e] == Epilogue::l2;
            const bool cos = epilogues[e] == Epilogue::cosine;
            const T *a_aux = nullptr, *b_aux = nullptr; // dot, ip: unused
            if (l2) {
                a_aux = a_sq.data();
                b_aux = b_sq.data();
            } else if (cos) {
                a_aux = a_inv.data();
                b_aux = b_inv.data();
            }
            const TileArgs<T> args{a.v.data(),   a.ld,  m,     packed.data(), n,  dim,
                                   epilogues[e], a_aux, b_aux, out.data(),    ldo};
            k.tile.fn(args);
            for (std::size_t i = 0; i < m; ++i) {
                for (std::size_t j = 0; j < n; ++j) {
                    const double s = double(rdot(a.row(i), b.row(j), dim));
                    const double got = double(out[i * ldo + j]);
                    const double scale = std::sqrt(an[i] * bn[j]);
                    const double l2sq = double(rl2sq(a.row(i), b.row(j), dim));
                    switch (epilogues[e]) {
                    case Epilogue::dot:
                        expect<T>(names[e], dim, i * n + j, got, s, scale);
                        break;
                    case Epilogue::ip:
                        expect<T>(names[e], dim, i * n + j, got, 1 - s, scale);
                        break;
                    case Epilogue::l2sq:
                        expect<T>(names[e], dim, i * n + j, got, l2sq, an[i] + bn[j]);
                        break;
                    case Epilogue::l2: {
                        // |sqrt x - sqrt y| <= sqrt |x - y|: compare the squares' error bound.
                        const double bound = rel_tol<T>() * (1.0 + an[i] + bn[j]);
                        ++checks;
                        if (!(std::fabs(got - std::sqrt(l2sq)) <= std::sqrt(bound)) &&
                            ++failures <= 20)
                            std::printf("MISMATCH %s tile.l2 dim=%zu got=%.17g want=%.17g\n",
                                        sizeof(T) == 4 ? "f32" : "f64", dim, got, std::sqrt(l2sq));
                        break;
                    }
                    case Epilogue::cosine: {
                        double want = 1 - s / scale;
                        want = want < 0 ? 0 : want > 2 ? 2 : want;
                        expect<T>(names[e], dim, i * n + j, got, want, 1.0);
                        break;
                    }
                    }
                }
                for (std::size_t j = n; j < ldo; ++j) { // nothing written past n
                    ++checks;
                    if (out[i * ldo + j] != T(-7) && ++failures <= 20)
                        std::printf("MISMATCH tile wrote past the row end dim=%zu\n", dim);
                }
            }
        }
    }
}

// scan_lt: the columns with row[c] < thr[c], ascending, against the plain loop (NaNs and
// ties included, every tail length).
template <typename T> void check_scan(const Kernels<T>& k, std::mt19937& g) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (std::size_t n = 0; n < 70; ++n) {
        std::vector<T> row(n), thr(n);
        for (std::size_t i = 0; i < n; ++i) {
            row[i] = T(u(g));
            thr[i] = T(u(g));
            if (i % 7 == 3)
                row[i] = std::numeric_limits<T>::quiet_NaN();
            if (i % 11 == 5)
                row[i] = thr[i];
        }
        std::vector<std::uint32_t> hits(n + 1);
        const std::size_t got = k.scan_lt.fn(row.data(), thr.data(), n, hits.data());
        std::size_t want = 0;
        bool same = true;
        for (std::size_t i = 0; i < n; ++i) {
            if (row[i] < thr[i]) {
                same = same && want < got && hits[want] == i;
                ++want;
            }
        }
        ++checks;
        if ((!same || want != got) && ++failures <= 20)
            std::printf("MISMATCH scan_lt %s n=%zu\n", sizeof(T) == 4 ? "f32" : "f64", n);
    }
}

// The Gram kernel: the upper triangle of xᵀ x and the column sums against long double, rows
// given in two calls (accumulation across calls), x padded after its last row as the kernel's
// contract asks (it reads up to tile_nr - 1 values past a row).
template <typename T> void check_gram(const Kernels<T>& k, std::size_t dim, std::mt19937& g) {
    std::normal_distribution<double> normal(0.0, 1.0);
    const std::size_t rows = 37, nr = k.tile_nr, ldg = dim + nr;
    std::vector<T> x(rows * dim + nr, T(0));
    for (std::size_t i = 0; i < rows * dim; ++i)
        x[i] = T(normal(g));
    std::vector<T> G(dim * ldg, T(0)), colsum(dim, T(0));
    k.gram.fn(x.data(), dim, 20, dim, G.data(), ldg, colsum.data());
    k.gram.fn(x.data() + 20 * dim, dim, rows - 20, dim, G.data(), ldg, colsum.data());
    for (std::size_t a = 0; a < dim; ++a) {
        long double sum = 0, abs_sum = 0;
        for (std::size_t r = 0; r < rows; ++r) {
            sum += x[r * dim + a];
            abs_sum += std::fabs((long double)x[r * dim + a]);
        }
        expect<T>("gram.colsum", dim, a, double(colsum[a]), double(sum), double(abs_sum));
        for (std::size_t b = a; b < dim; ++b) {
            long double want = 0, scale = 0;
            for (std::size_t r = 0; r < rows; ++r) {
                const long double p = (long double)x[r * dim + a] * x[r * dim + b];
                want += p;
                scale += std::fabs(p);
            }
            expect<T>("gram", dim, a * dim + b, double(G[a * ldg + b]), double(want),
                      double(scale));
        }
    }
}

template <typename T>
void check_table(const Kernels<T>& k, const Kernels<T>& scalar, std::mt19937& g) {
    const Isa isas[] = {k.dot.isa,       k.l2sq.isa,       k.norm2.isa,         k.dot_many.isa,
                        k.l2sq_many.isa, k.l2sq_panel.isa, k.dot_norm_many.isa, k.norms.isa,
                        k.pack.isa,      k.tile.isa,       k.scan_lt.isa,       k.gram.isa};
    for (Isa isa : isas) {
        ++checks;
        if (isa != Isa::neon && ++failures <= 20)
            std::printf("MISMATCH a %s slot is not NEON's\n", sizeof(T) == 4 ? "f32" : "f64");
    }
    const std::size_t dims[] = {1,  2,  3,  4,  5,  7,   8,   9,   15,  16,  17, 31,
                                32, 33, 63, 64, 65, 100, 127, 128, 129, 257, 784};
    for (std::size_t dim : dims) {
        check_vectors<T>(k, scalar, dim, g);
        check_tile<T>(k, dim, g);
        check_gram<T>(k, dim, g);
    }
    check_scan<T>(k, g);
}

// The mixed-precision kernels (float32 data, float64 arithmetic) against a long double sum.
void check_mixed(const MixedKernels& k, std::mt19937& g) {
    std::normal_distribution<double> normal(0.0, 1.0);
    const std::size_t dims[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 129, 257};
    for (std::size_t dim : dims) {
        std::vector<float> a(dim);
        std::vector<double> b(dim), y(dim + 1), y0;
        for (std::size_t j = 0; j < dim; ++j) {
            a[j] = float(normal(g));
            b[j] = normal(g);
            y[j] = normal(g);
        }
        y[dim] = 123.0; // past the end: must stay untouched
        long double want = 0, scale = 0;
        for (std::size_t j = 0; j < dim; ++j) {
            want += (long double)a[j] * b[j];
            scale += std::fabs((long double)a[j] * b[j]);
        }
        expect<double>("widen_dot", dim, 0, k.dot.fn(a.data(), b.data(), dim), double(want),
                       double(scale));
        y0 = y;
        const double s = normal(g);
        k.axpy.fn(s, a.data(), y.data(), dim);
        for (std::size_t j = 0; j < dim; ++j)
            expect<double>("widen_axpy", dim, j, y[j], y0[j] + s * double(a[j]),
                           std::fabs(y0[j]) + std::fabs(s * a[j]));
        expect<double>("widen_axpy tail", dim, dim, y[dim], 123.0, 0.0);
    }
}

// shifted_exp: within 2 ulp of a long double exp (rounded to double) over every tail length,
// and the contract's edge cases: below -708 and -inf give 0, above 708 saturates at exp(708),
// NaN stays NaN, exp(0) is exactly 1.
double ulps(double got, double want) {
    if (!std::isfinite(got))
        return std::numeric_limits<double>::infinity();
    const double a = std::fabs(want);
    const double spacing = std::nextafter(a, std::numeric_limits<double>::infinity()) - a;
    return std::fabs(got - want) / spacing;
}

double exp_want(double t) {
    if (t < -708.0)
        return 0.0;
    return double(std::exp(static_cast<long double>(t > 708.0 ? 708.0 : t)));
}

void check_shifted_exp(const KernelTable& t, std::mt19937& g) {
    ++checks;
    if (t.shifted_exp.isa != Isa::neon && ++failures <= 20)
        std::printf("MISMATCH the shifted_exp slot is not NEON's\n");
    std::uniform_real_distribution<double> u(-700.0, 700.0);
    for (std::size_t n = 0; n < 40; ++n) {
        std::vector<double> x(n), out(n + 1, -7.0);
        for (auto& v : x)
            v = u(g);
        const double shift = 1.25;
        t.shifted_exp.fn(x.data(), n, shift, out.data());
        for (std::size_t i = 0; i < n; ++i) {
            ++checks;
            const double want = exp_want(x[i] - shift);
            if (!(ulps(out[i], want) <= 2.0) && ++failures <= 20)
                std::printf("MISMATCH shifted_exp n=%zu x=%.17g got=%.17g want=%.17g\n", n, x[i],
                            out[i], want);
        }
        ++checks;
        if (out[n] != -7.0 && ++failures <= 20)
            std::printf("MISMATCH shifted_exp wrote past the end n=%zu\n", n);
    }
    const double inf = std::numeric_limits<double>::infinity();
    const double edge[] = {-inf,  -1e300, -746.0, -709.0, -708.0, -707.9, 0.0,
                           1e-10, 1.0,    707.9,  708.0,  708.5,  1e300,  inf};
    const std::size_t m = sizeof(edge) / sizeof(edge[0]);
    std::vector<double> out(m);
    t.shifted_exp.fn(edge, m, 0.0, out.data());
    for (std::size_t i = 0; i < m; ++i) {
        ++checks;
        const double want = exp_want(edge[i]);
        const bool ok = want == 0.0 ? out[i] == 0.0 : ulps(out[i], want) <= 2.0;
        if (!ok && ++failures <= 20)
            std::printf("MISMATCH shifted_exp edge x=%.17g got=%.17g want=%.17g\n", edge[i], out[i],
                        want);
    }
    ++checks;
    if (out[6] != 1.0 && ++failures <= 20)
        std::printf("MISMATCH shifted_exp exp(0) = %.17g\n", out[6]);
    const double nan_in[3] = {std::nan(""), 1.0, std::nan("")};
    double nan_out[3];
    t.shifted_exp.fn(nan_in, 3, 0.0, nan_out);
    ++checks;
    if (!(std::isnan(nan_out[0]) && std::isnan(nan_out[2]) && !std::isnan(nan_out[1])) &&
        ++failures <= 20)
        std::printf("MISMATCH shifted_exp NaN does not propagate\n");
}

} // namespace

int main() {
    KernelTable scalar, neon;
    fill_scalar(scalar);
    fill_scalar(neon);
    fill_neon(neon);
    std::mt19937 gen(11);
    check_table<float>(neon.f32, scalar.f32, gen);
    check_table<double>(neon.f64, scalar.f64, gen);
    if (neon.f32_f64.dot.isa != Isa::neon || neon.f32_f64.axpy.isa != Isa::neon) {
        std::printf("MISMATCH the mixed-precision kernels are not NEON's\n");
        ++failures;
    }
    check_mixed(neon.f32_f64, gen);
    check_shifted_exp(neon, gen);
    std::printf("%s (%ld checks, %d mismatches)\n", failures ? "FAIL" : "OK", checks, failures);
    return failures ? 1 : 0;
}
