// See itml.hpp. The update keeps A exactly symmetric (both triangles get the same product), so
// A v may be formed from rows instead of columns.
#include "metric/itml.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/parallel.hpp"

namespace pysim::metric {

ItmlResult itml_projections(double* A, std::size_t d, const double* V, const double* sign,
                            std::size_t m, double* bhat, double* lambda, double gamma,
                            std::size_t max_iter, double tol) {
    const bool hard = !(gamma > 0.0) || std::isinf(gamma);
    const double gamma_proj = hard ? 1.0 : gamma / (gamma + 1.0);
    const double inv_gamma = hard ? 0.0 : 1.0 / gamma;
    std::vector<double> Av(d);
    std::vector<double> lambda_old(lambda, lambda + m);
    ItmlResult result{0, std::numeric_limits<double>::infinity()};
    for (std::size_t it = 0; it < max_iter; ++it) {
        for (std::size_t i = 0; i < m; ++i) {
            const double* v = V + i * d;
            // A v as a sum of rows (A is symmetric): contiguous multiply-adds with no
            // reduction, which the compiler vectorises without reassociating anything.
            double* av = Av.data();
            std::fill(av, av + d, 0.0);
            for (std::size_t c = 0; c < d; ++c) {
                const double* row = A + c * d;
                const double vc = v[c];
                for (std::size_t r = 0; r < d; ++r)
                    av[r] += vc * row[r];
            }
            double wtw = 0.0;
            for (std::size_t r = 0; r < d; ++r)
                wtw += av[r] * v[r];
            if (!(wtw > 0.0))
                continue;
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
            break;
        }
        result.convergence = change / normsum;
        if (result.convergence < tol)
            break;
        std::copy(lambda, lambda + m, lambda_old.begin());
        if ((it & 15) == 15)
            throw_if_interrupted();
    }
    return result;
}

} // namespace pysim::metric
