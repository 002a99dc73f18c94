// See exp_rows.hpp: rows split over the pool, each through the dispatched shifted_exp kernel.
#include "metric/exp_rows.hpp"

#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace pysim::metric {

void shifted_exp_rows(const double* x, std::size_t rows, std::size_t cols, const double* shifts,
                      double* out, std::size_t threads) {
    const simd::ShiftedExpFn kernel = simd::active().shifted_exp.fn;
    auto run = [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i)
            kernel(x + i * cols, cols, shifts[i], out + i * cols);
    };
    if (threads <= 1 || rows * cols < kMinParallelElems) {
        run(0, rows);
        return;
    }
    // Chunks of at least ~16k elements (a few microseconds each), several per thread.
    const std::size_t min_rows = cols ? (std::size_t(1) << 14) / cols + 1 : rows;
    parallel_for(rows, threads, balanced_grain(rows, threads, min_rows), run);
}

} // namespace pysim::metric
