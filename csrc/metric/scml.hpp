// SCML's smoothed-hinge loss and its gradient over the triplet feature matrix Φ, one pass over
// Φ per evaluation: the inner loop of pysim.metric_learning.SCML's L-BFGS fit.
//
// Why it is built this way: an evaluation needs the margins z = 1 + Φ w and the gradient
// Φᵀ ℓ'(z). As two BLAS gemv calls on a float64 Φ that is two passes over 32 MB (the size cap
// of Φ), beyond the caches, so memory-bound. Here Φ is float32 (half the bytes, and 16 MB stays
// in a 32 MB L3) with every product and sum in float64, and each row is read once: its dot with
// w, then, while the row is still in L1, its gradient term ℓ'(z) Φ_t - skipped where ℓ'(z) = 0
// (triplets the margin already satisfies). Rows are split into `groups` fixed slices whose
// sums are added in slice order, so the result is the same bits at any thread count.
#pragma once

#include <cstddef>

namespace pysim::metric {

/// Σ_t ℓ(1 + Φ_t · w) over the rows of Φ (T x K, row-major float32), and the gradient
/// Σ_t ℓ'(·) Φ_t written to grad (K, float64). ℓ is max(z, 0) smoothed to z² / (2 width) on
/// [0, width] (so it is z - width / 2 beyond). Rows go in `groups` fixed slices on up to
/// `threads` threads.
double scml_hinge_loss_grad(const float* phi, std::size_t T, std::size_t K, const double* w,
                            double width, std::size_t groups, std::size_t threads, double* grad);

} // namespace pysim::metric
