// ITML's cyclic Bregman projections (Davis et al., ICML 2007), the sequential core of
// pysim.metric_learning.ITML.
//
// Each projection reads the current metric (A v, vᵀ A v) and applies a rank-one update, so the
// constraints must be visited one after the other: the cost per constraint is 2 d² multiply-
// adds, and in Python it is dominated by interpreter overhead instead. Here the whole sweep
// runs in one call without the GIL. Plain loops over contiguous rows: the compiler vectorises
// them at the baseline ISA; d is small (tens to a few hundred), so nothing is blocked.
#pragma once

#include <cstddef>

namespace pysim::metric {

struct ItmlResult {
    std::size_t iterations; ///< passes over the constraints run
    double convergence;     ///< last relative change of the dual variables
};

/// Runs up to `max_iter` passes of ITML projections over `m` constraints, in place.
///
/// A: d x d row-major symmetric metric (updated); V: m x d constraint differences (a - b);
/// sign: +1 similar / -1 dissimilar per constraint; bhat: per-constraint target (updated);
/// lambda: dual variables, start at 0 (updated). gamma <= 0 means hard constraints (gamma = inf).
/// Constraints with vᵀ A v == 0 are skipped. Constraints left idle (satisfied, dual 0) are
/// skipped on the following passes and revisited on every 8th; the result stops when the
/// relative change of the duals over a full pass falls below `tol`, or when all duals are 0
/// (convergence = inf). `iterations` counts passes, partial ones included.
ItmlResult itml_projections(double* A, std::size_t d, const double* V, const double* sign,
                            std::size_t m, double* bhat, double* lambda, double gamma,
                            std::size_t max_iter, double tol);

} // namespace pysim::metric
