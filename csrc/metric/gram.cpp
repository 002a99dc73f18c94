// See gram.hpp.
#include "metric/gram.hpp"

#include <algorithm>
#include <vector>

#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace pysim::metric {

namespace {
constexpr std::size_t kRowsPerGroup = 256; // rows per partial sum (groups fixed by the shape)
constexpr std::size_t kMaxGroups = 32;
constexpr std::size_t kMaxPartialElems = std::size_t(1) << 22; // partial G's, 32 MiB of doubles
constexpr std::size_t kBlockBytes = 32 * 1024;                 // rows per kernel call: ~L1
} // namespace

template <typename T>
void gram(const T* X, std::size_t n, std::size_t dim, std::size_t threads, T* G, T* colsum) {
    const simd::Kernels<T>& k = simd::kernels<T>(simd::active()); // once per call
    const simd::GramFn<T> kernel = k.gram.fn;
    const std::size_t nr = k.tile_nr;
    const std::size_t ldg = dim + nr; // the kernel's blocks run up to nr - 1 columns past dim
    const std::size_t per = dim * ldg + dim;
    std::size_t groups = std::clamp<std::size_t>(n / kRowsPerGroup, 1, kMaxGroups);
    groups = std::max<std::size_t>(1, std::min(groups, kMaxPartialElems / per));
    const std::size_t block = std::max<std::size_t>(8, kBlockBytes / (sizeof(T) * dim));
    // The kernel reads each row up to nr - 1 values past its end: the next row, except after
    // the last row, which is therefore handed over as a zero-padded copy.
    std::vector<T> last(dim + nr, T(0));
    if (n > 0)
        std::copy(X + (n - 1) * dim, X + n * dim, last.begin());
    std::vector<T> part(groups * per, T(0));
    parallel_for(groups, threads, 1, [&](std::size_t g0, std::size_t g1) {
        for (std::size_t g = g0; g < g1; ++g) {
            const std::size_t r0 = n * g / groups;
            const std::size_t r1 = n * (g + 1) / groups;
            T* Gg = part.data() + g * per;
            T* cg = Gg + dim * ldg;
            const std::size_t body = r1 == n && r1 > r0 ? r1 - 1 : r1; // rows read in place
            for (std::size_t r = r0; r < body; r += block)
                kernel(X + r * dim, dim, std::min(block, body - r), dim, Gg, ldg, cg);
            if (body < r1)
                kernel(last.data(), dim, 1, dim, Gg, ldg, cg);
        }
    });
    std::fill(G, G + dim * dim, T(0));
    std::fill(colsum, colsum + dim, T(0));
    for (std::size_t g = 0; g < groups; ++g) {
        const T* Gg = part.data() + g * per;
        for (std::size_t a = 0; a < dim; ++a)
            for (std::size_t b = a; b < dim; ++b)
                G[a * dim + b] += Gg[a * ldg + b];
        for (std::size_t j = 0; j < dim; ++j)
            colsum[j] += Gg[dim * ldg + j];
    }
    for (std::size_t a = 0; a < dim; ++a)
        for (std::size_t b = a + 1; b < dim; ++b)
            G[b * dim + a] = G[a * dim + b];
}

template void gram<float>(const float*, std::size_t, std::size_t, std::size_t, float*, float*);
template void gram<double>(const double*, std::size_t, std::size_t, std::size_t, double*, double*);

} // namespace pysim::metric
