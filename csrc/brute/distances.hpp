// The three batched shapes of the distance kernels, for every metric and both dtypes:
//   cdist  : (m, d) x (n, d) -> (m, n), compute-bound: register-blocked tiles over packed
//            blocks of B with norms fused into the epilogue, each output written once;
//            one-to-many when A has very few rows (memory-bound: one pass over B).
//   dot    : raw inner products through the same tiles.
//   paired : row i of A against row i of B.
// Mahalanobis never arrives here (the Python layer maps rows through L and asks for euclidean).
// All functions run on the active kernel table, read once per call, and use at most `threads`
// threads from the pool (common/parallel.hpp). Call them with the GIL released.
#pragma once

#include <cstddef>

#include "common/types.hpp"

namespace pysim::brute {

/// out[i * n + j] = distance(a_i, b_j). cosine: zero rows give distance 1; results clamped to
/// [0, 2]. sqeuclidean/euclidean: clamped at 0.
template <typename T>
void cdist(const T* a, std::size_t m, const T* b, std::size_t n, std::size_t dim, Metric metric,
           T* out, std::size_t threads);

/// out[i * n + j] = a_i . b_j.
template <typename T>
void dot(const T* a, std::size_t m, const T* b, std::size_t n, std::size_t dim, T* out,
         std::size_t threads);

/// out[i] = distance(a_i, b_i), i in [0, m).
template <typename T>
void paired(const T* a, const T* b, std::size_t m, std::size_t dim, Metric metric, T* out,
            std::size_t threads);

/// out[i] = |rows_i|^2.
template <typename T>
void squared_norms(const T* rows, std::size_t n, std::size_t dim, T* out, std::size_t threads);

} // namespace pysim::brute
