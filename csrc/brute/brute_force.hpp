// Exact brute-force k-NN and radius search over a row-major matrix the caller owns.
//
// Blocked and fused: distance tiles of the blocked-scan engine (engine.hpp: the packed,
// register-blocked tile kernels of simd::active(); the one-to-many kernels for one or two
// queries) go straight into per-query candidate buffers (the kc smallest, Candidates in
// exact_rerank.hpp) or radius candidate lists (knn.cpp, radius.cpp, scans in scan.hpp),
// with a bounded heap (common/topk.hpp) for the exact final ranking. The (m x n) matrix never
// exists; the largest scratch is one (data block x query block) tile, a few tens of KiB.
//
// Roles in the tile kernel are swapped relative to cdist: the *queries* are packed (they are
// few and change every call) and the *data rows* are read in place as the A operand, so the
// index never copies or re-packs the caller's matrix. Threads split the queries when there
// are enough query blocks, and also the data rows (each split with its own heaps, merged at
// the end) when there are not: one query against a million rows uses every thread.
//
// Exactness. The tile path ranks by the expansion |x|^2 + |y|^2 - 2 x.y, whose rounding
// error in dtype T (unit roundoff u, dimension d, gamma_j = j u / (1 - j u)) is at most
//     |D~ - D| <= 2 gamma_(d+8) (|x|^2 + max_j |y_j|^2)                  (sq. Euclidean)
// because |fl(x.y) - x.y| <= gamma_d |x||y| and 2|x||y| <= |x|^2 + |y|^2. The direct kernels
// (sum (x - y)^2) are relatively accurate: |D~ - D| <= gamma_(d+8) D~. For "ip" the bound is
// gamma_(d+8) |x| max|y| + 2u, for "cosine" (2d + 26) u (exact_rerank.hpp; 5% added for the
// rounding of the bound itself). Each query keeps kc = k + max(16, k/2) approximate
// candidates. With tau the k-th approximate distance, every point whose exact distance can
// tie or beat the true k-th has D~ <= limit(tau) = (tau (1 + rel) + 2 abs) / (1 - rel). If
// the kc-th candidate lies beyond that limit, all such points are among the candidates and
// are re-ranked exactly (float64, direct (x - y)^2 / dot, ties by the smaller index).
// Otherwise: for the Euclidean metrics the query is rescanned with the direct kernels (rows
// far from the origin next to their spread make the expansion's bound wide in float32); if
// even that cannot separate them (heavy ties: duplicated or identical rows), or for cosine /
// ip, the query is answered by an exact float64 scan. Radius search collects every row with
// D~ <= (r + abs) / (1 - rel) and keeps those whose float64 distance is <= r; it picks the
// direct engine up front for a query whose expansion bound exceeds 5% of its radius.
// Results therefore equal a float64 reference's (up to float64 rounding of the sums), and
// returned distances are the float64 values rounded to T.
#pragma once

#include <cstddef>
#include <vector>

#include "common/types.hpp"

namespace pysim::brute {

/// A read-only view of the indexed rows plus what the search needs precomputed.
/// Mahalanobis never reaches the core (the Python layer maps rows through L: euclidean).
template <typename T> struct Dataset {
    const T* rows = nullptr; // (n, dim), C-contiguous, finite
    std::size_t n = 0;
    std::size_t dim = 0;
    const T* sqnorms = nullptr; // |row_j|^2, length n (brute::squared_norms)
    double max_sqnorm = 0.0;    // max_j sqnorms[j]: bounds the identity's rounding error
    Metric metric = Metric::sqeuclidean;
};

/// The k nearest rows of each of `m` queries (m, dim): dist/idx are (m, k), ascending, ties
/// by the smaller index, padded with inf / kNoIndex when k > n. Throws std::invalid_argument
/// for k == 0, a metric the core does not handle, or queries whose squared norm overflows T.
template <typename T>
void knn(const Dataset<T>& data, const T* queries, std::size_t m, std::size_t k, T* dist,
         index_t* idx, std::size_t threads);

/// Rows within distance radii[i] (inclusive, in the metric's own units) of query i, as CSR:
/// the neighbours of query i are indices[indptr[i] : indptr[i+1]] with their distances.
/// Within a query, results are in ascending row order, or by (distance, row) when `sort`.
/// A negative radius gives no results; radii must not be NaN.
template <typename T> struct RadiusResult {
    std::vector<index_t> indptr;
    std::vector<index_t> indices;
    std::vector<T> distances;
};

template <typename T>
RadiusResult<T> radius(const Dataset<T>& data, const T* queries, std::size_t m, const double* radii,
                       bool sort, std::size_t threads);

/// Largest squared norm a row may have: beyond it a distance could overflow T.
template <typename T> double max_safe_sqnorm() noexcept;

} // namespace pysim::brute
