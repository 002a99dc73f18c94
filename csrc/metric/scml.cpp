// See scml.hpp. Each slice keeps its own loss and gradient buffer (K doubles, L1/L2-resident)
// and walks its rows in order; the slices' sums are then added in slice order. The row work is
// two dispatched mixed-precision kernels (simd/kernels.hpp: float32 rows, float64 arithmetic).
#include "metric/scml.hpp"

#include <algorithm>
#include <vector>

#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace pysim::metric {

double scml_hinge_loss_grad(const float* phi, std::size_t T, std::size_t K, const double* w,
                            double width, std::size_t groups, std::size_t threads, double* grad) {
    groups = std::max<std::size_t>(1, std::min(groups, T));
    const simd::MixedKernels& k = simd::active().f32_f64; // once per call
    std::vector<double> loss(groups, 0.0);
    std::vector<double> part(groups * K, 0.0);
    const double half = 0.5 * width;
    const double inv = 1.0 / width;
    parallel_for(groups, threads, 1, [&](std::size_t g0, std::size_t g1) {
        for (std::size_t g = g0; g < g1; ++g) {
            const std::size_t r0 = T * g / groups;
            const std::size_t r1 = T * (g + 1) / groups;
            double* acc = part.data() + g * K;
            double sum = 0.0;
            for (std::size_t r = r0; r < r1; ++r) {
                const float* row = phi + r * K;
                const double z = 1.0 + k.dot.fn(row, w, K);
                if (!(z > 0.0))
                    continue; // satisfied with room to spare: no loss, no gradient
                double dz = 1.0;
                if (z >= width) {
                    sum += z - half;
                } else {
                    sum += z * z * (0.5 * inv);
                    dz = z * inv;
                }
                k.axpy.fn(dz, row, acc, K);
            }
            loss[g] = sum;
        }
    });
    std::fill(grad, grad + K, 0.0);
    double total = 0.0;
    for (std::size_t g = 0; g < groups; ++g) {
        total += loss[g];
        const double* acc = part.data() + g * K;
        for (std::size_t c = 0; c < K; ++c)
            grad[c] += acc[c];
    }
    return total;
}

} // namespace pysim::metric
