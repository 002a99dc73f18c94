// The one inverse norm of pysim: 1 / |x| from a squared norm, 0 for a zero (or negative, i.e.
// cancelled) one, so a zero vector gets cosine similarity 0 to everything instead of a NaN.
// Used by the cosine epilogues of brute force and by the normalisation of the HNSW and
// quantised stores (the float32 overload sums in float64, so the normalised vector is then
// correctly rounded to float32).
#pragma once

#include <cmath>
#include <cstddef>

namespace pysim {

template <typename T> T inverse_norm(T squared) noexcept {
    return squared > T(0) ? T(1) / std::sqrt(squared) : T(0);
}

/// 1 / |x| of a float32 vector, summed in float64.
inline double inverse_norm(const float* x, std::size_t dim) noexcept {
    double s = 0.0;
    for (std::size_t i = 0; i < dim; ++i)
        s += double(x[i]) * double(x[i]);
    return inverse_norm(s);
}

} // namespace pysim
