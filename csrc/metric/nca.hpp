// NCA's loss and gradient on small data (n <= 512 rows), one compiled call per evaluation.
//
// Why it is built this way: on a dataset like wine (124 x 13) the arithmetic of an evaluation
// is a few hundred thousand multiply-adds, and the numpy formulation (a dozen whole-matrix
// calls: distances, exponentials, two products, the d x d gradient) spent most of its ~80 µs
// in per-call overhead. Here the whole evaluation is one call on the dispatch table's kernels:
//   Z = X Lᵀ and W X by the tiled dot kernel, the squared distances of Z by the tiled l2sq
//   kernel, the softmax by the shifted-exp kernel, and the d x d gradient from one more tile.
// With E the row-shifted exponentials (self-pair 0), s_i their row sums, p_i the same-class
// share of row i and W_ij = E_ij / s_i ([y_i = y_j] - p_i):
//   f = Σ_i p_i,   ∂f/∂L = 2 L (G + Gᵀ),   G = Xᵀ Y,   Y = W X - ½ diag(colsum W) X,
// which is the blocked path's 2 L (M + Mᵀ - Xᵀ diag(colsum W) X) with M = Xᵀ W X.
// Rows are sorted by class, so the same-class entries of row i are one contiguous range.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pysim::metric {

/// Σ_i p_i (the NCA objective, not negated) for X (n x d, rows sorted by class), XT its
/// transpose (d x n), L (k x d) and the class boundaries `starts` (n_classes + 1 entries,
/// starts[c] .. starts[c + 1] are the rows of class c); writes ∂f/∂L (k x d) to grad.
/// Runs on up to `threads` pool threads (the products); call with the GIL released.
double nca_dense_objective(const double* X, const double* XT, std::size_t n, std::size_t d,
                           const double* L, std::size_t k, const std::int64_t* starts,
                           std::size_t n_classes, std::size_t threads, double* grad);

} // namespace pysim::metric
