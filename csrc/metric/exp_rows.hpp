// Row-shifted exponentials, the softmax step of NCA's and MLKR's blocked loss / gradient.
//
// out[i, j] = exp(x[i, j] - shifts[i]) through the dispatch table's shifted_exp kernel
// (csrc/simd/isa/exp_kernels.inl). The learners pass each row's maximum as its shift, so the
// largest entry of a row is 1 and nothing overflows. A block is split over threads by rows
// only when it is large enough (kMinParallelElems) to pay for the hand-off.
#pragma once

#include <cstddef>

namespace pysim::metric {

/// Elements below which a call runs on the calling thread whatever `threads` says.
inline constexpr std::size_t kMinParallelElems = std::size_t(1) << 16;

/// out[i * cols + j] = exp(x[i * cols + j] - shifts[i]) for a C-contiguous rows x cols
/// matrix (out may be x). Call with the GIL released.
void shifted_exp_rows(const double* x, std::size_t rows, std::size_t cols, const double* shifts,
                      double* out, std::size_t threads);

} // namespace pysim::metric
