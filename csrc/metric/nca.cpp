// See nca.hpp. Scratch is a handful of n x n and n x d buffers (n <= 512: at most 2 MiB each).
#include "metric/nca.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "brute/distances.hpp"
#include "simd/dispatch.hpp"

namespace pysim::metric {

namespace {

// min(x[0..n)) with eight independent chains (a single running minimum is a latency chain;
// the compiler may not reorder it without -ffast-math). A NaN entry is skipped.
double row_min(const double* x, std::size_t n) {
    const double inf = std::numeric_limits<double>::infinity();
    double m[8] = {inf, inf, inf, inf, inf, inf, inf, inf};
    std::size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (std::size_t l = 0; l < 8; ++l)
            m[l] = x[j + l] < m[l] ? x[j + l] : m[l];
    for (; j < n; ++j)
        m[0] = x[j] < m[0] ? x[j] : m[0];
    double r = m[0];
    for (std::size_t l = 1; l < 8; ++l)
        r = m[l] < r ? m[l] : r;
    return r;
}

// x[j] *= a and colsum[j] += x[j] for j in [j0, j1).
void scale_add(double* x, std::size_t j0, std::size_t j1, double a, double* colsum) {
    for (std::size_t j = j0; j < j1; ++j) {
        x[j] *= a;
        colsum[j] += x[j];
    }
}

} // namespace

double nca_dense_objective(const double* X, const double* XT, std::size_t n, std::size_t d,
                           const double* L, std::size_t k, const std::int64_t* starts,
                           std::size_t n_classes, std::size_t threads, double* grad) {
    const simd::KernelTable& table = simd::active(); // once per call
    const simd::ShiftedExpFn shifted_exp = table.shifted_exp.fn;
    const simd::PairFn<double> vdot = table.f64.dot.fn; // row sums as dots with ones (SIMD)
    std::vector<double> Z(n * k), E(n * n), WX(n * d), colsum(n, 0.0), YT(d * n), G(d * d);
    const std::vector<double> ones(n, 1.0);
    brute::dot(X, n, L, k, d, Z.data(), threads); // Z = X Lᵀ
    brute::cdist(Z.data(), n, Z.data(), n, k, Metric::sqeuclidean, E.data(), threads);
    const double inf = std::numeric_limits<double>::infinity();
    double total = 0.0;
    for (std::size_t c = 0; c < n_classes; ++c) {
        const auto c0 = static_cast<std::size_t>(starts[c]);
        const auto c1 = static_cast<std::size_t>(starts[c + 1]);
        for (std::size_t i = c0; i < c1; ++i) {
            double* row = E.data() + i * n;
            // exp(min_j D_ij - D_ij): the nearest neighbour gets weight 1, so s_i >= 1 and no
            // row underflows to all zeros; the self-pair (-inf) gives exactly 0.
            row[i] = inf;
            const double nearest = row_min(row, n);
            for (std::size_t j = 0; j < n; ++j)
                row[j] = -row[j];
            shifted_exp(row, n, -nearest, row);
            const double inv = 1.0 / vdot(row, ones.data(), n);
            const double p = vdot(row + c0, ones.data(), c1 - c0) * inv;
            total += p;
            // W_ij = E_ij / s_i ([same class] - p_i), in place, and its column sums.
            scale_add(row, 0, c0, -p * inv, colsum.data());
            scale_add(row, c0, c1, (1.0 - p) * inv, colsum.data());
            scale_add(row, c1, n, -p * inv, colsum.data());
        }
    }
    brute::dot(E.data(), n, XT, d, n, WX.data(), threads); // W X (n x d)
    // Yᵀ = (W X - ½ diag(colsum) X)ᵀ, then G = Xᵀ Y = XT · YT rows.
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t f = 0; f < d; ++f)
            YT[f * n + i] = WX[i * d + f] - 0.5 * colsum[i] * X[i * d + f];
    brute::dot(XT, d, YT.data(), d, n, G.data(), threads);
    // grad = 2 L (G + Gᵀ) (k x d, k, d small next to n).
    std::fill(grad, grad + k * d, 0.0);
    for (std::size_t r = 0; r < k; ++r) {
        const double* l = L + r * d;
        double* g = grad + r * d;
        for (std::size_t a = 0; a < d; ++a) {
            const double la = 2.0 * l[a];
            const double* ga = G.data() + a * d;
            for (std::size_t b = 0; b < d; ++b)
                g[b] += la * (ga[b] + G[b * d + a]);
        }
    }
    return total;
}

} // namespace pysim::metric
