// See itml.hpp. The update keeps A exactly symmetric (both triangles get the same product), so
// A v may be formed from rows instead of columns: (A v)_r = A[r, :] . v, one dispatched
// dot_many call (AVX2 where the CPU has it), and vᵀ A v one dispatched dot.
//
// Active set: a constraint that is satisfied with a zero dual variable gets alpha = 0 and
// changes nothing, yet costs the d² of A v to find that out. Such constraints are skipped on
// the following passes and all constraints are revisited on every kFullEvery-th pass; the
// solver only stops after a full pass meets the tolerance, so it stops at the same fixed
// point as visiting every constraint every time (most constraints of a supervised draw are
// idle after a few passes).
#include "metric/itml.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace pysim::metric {

ItmlResult itml_projections(double* A, std::size_t d, const double* V, const double* sign,
                            std::size_t m, double* bhat, double* lambda, double gamma,
                            std::size_t max_iter, double tol) {
    const bool hard = !(gamma > 0.0) || std::isinf(gamma);
    const double gamma_proj = hard ? 1.0 : gamma / (gamma + 1.0);
    const double inv_gamma = hard ? 0.0 : 1.0 / gamma;
    constexpr std::size_t kFullEvery = 8;
    const simd::Kernels<double>& k = simd::kernels<double>(simd::active()); // once per call
    std::vector<double> Av(d);
    std::vector<double> lambda_old(lambda, lambda + m);
    std::vector<unsigned char> idle(m, 0);
    ItmlResult result{0, std::numeric_limits<double>::infinity()};
    bool full = true; // the first pass visits every constraint
    for (std::size_t it = 0; it < max_iter; ++it) {
        for (std::size_t i = 0; i < m; ++i) {
            if (!full && idle[i])
                continue;
            const double* v = V + i * d;
            double* av = Av.data();
            k.dot_many.fn(v, A, d, d, av);
            const double wtw = k.dot.fn(av, v, d);
            if (!(wtw > 0.0)) {
                idle[i] = 1;
                continue;
            }
            double alpha;
            double beta;
            if (sign[i] > 0) {
                alpha = std::min(lambda[i], gamma_proj * (1.0 / wtw - 1.0 / bhat[i]));
                beta = alpha / (1.0 - alpha * wtw);
                bhat[i] = 1.0 / (1.0 / bhat[i] + alpha * inv_gamma);
            } else {
                alpha = std::min(lambda[i], gamma_proj * (1.0 / bhat[i] - 1.0 / wtw));
                beta = -alpha / (1.0 + alpha * wtw);
                bhat[i] = 1.0 / (1.0 / bhat[i] - alpha * inv_gamma);
            }
            lambda[i] -= alpha;
            idle[i] = (alpha == 0.0 && lambda[i] == 0.0) ? 1 : 0;
            if (beta == 0.0)
                continue;
            for (std::size_t r = 0; r < d; ++r) {
                double* row = A + r * d;
                const double scale = beta * Av[r];
                for (std::size_t c = 0; c < d; ++c)
                    row[c] += scale * Av[c];
            }
        }
        result.iterations = it + 1;
        double norm_new = 0.0;
        double norm_old = 0.0;
        double change = 0.0;
        for (std::size_t i = 0; i < m; ++i) {
            norm_new += lambda[i] * lambda[i];
            norm_old += lambda_old[i] * lambda_old[i];
            change += std::abs(lambda_old[i] - lambda[i]);
        }
        const double normsum = std::sqrt(norm_new) + std::sqrt(norm_old);
        if (normsum == 0.0) {
            result.convergence = std::numeric_limits<double>::infinity();
            if (full)
                break;
            full = true;
            continue;
        }
        result.convergence = change / normsum;
        if (result.convergence < tol && full)
            break;
        // A partial pass that meets the tolerance is confirmed by a full one.
        full = result.convergence < tol || (it + 2) % kFullEvery == 0;
        std::copy(lambda, lambda + m, lambda_old.begin());
        if ((it & 15) == 15)
            throw_if_interrupted();
    }
    return result;
}

} // namespace pysim::metric
