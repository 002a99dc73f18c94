// The Gram matrix Xᵀ X and the column sums of a row-major X, for the closed-form learners
// (Whitening's covariance) when X has many rows and few columns.
//
// Why it is built this way: for X of 5,000 x 50 OpenBLAS's dsyrk ran at about 30% of a core's
// FMA peak (it is built for large square products) and needs X's column sums from a second
// pass. Here the dispatch table's gram kernel (simd/isa/generic_kernels.inl) reads X in place
// - broadcasts of a row's entries against vectors of the same row, no packing or transpose -
// into the upper triangle, L1-sized row blocks at a time, and adds the column sums on the way.
// Rows are cut into groups fixed by the shape (not by the thread count), each accumulated in
// order into its own partial G, and the groups are summed in order: the same bits on any
// number of threads.
#pragma once

#include <cstddef>

namespace pysim::metric {

/// G (dim x dim, row-major, symmetric) = Xᵀ X and colsum = the column sums of X (n x dim,
/// C-contiguous). Runs on up to `threads` pool threads; call with the GIL released.
template <typename T>
void gram(const T* X, std::size_t n, std::size_t dim, std::size_t threads, T* G, T* colsum);

} // namespace pysim::metric
