// cdist / dot / paired (kernels: simd/isa/*). cdist and dot run on the blocked-scan engine
// (engine.hpp) with matrix sinks: the engine's tiles and one-to-many chunks are written in place
// into the caller's output; this file chooses the blocking and does the fix-ups.
//
// cdist tiles: the output is cut into tasks of (a split of A's rows) x (one block of B rows). A
// block of B is packed into the tile kernel's panel layout in a per-thread scratch buffer sized
// to stay in L2 (about 256 KiB), then every row of the task's A split is run against it, 128
// rows per tile call. The packing is repeated per task, so the splits are as few as still give
// every thread several tasks.
// Norms (squared for L2, inverse for cosine) are computed once per operand before the tiles,
// so the epilogue only reads them.
//
// One-to-many: when A has very few rows, packing B would double the memory traffic of what is a
// bandwidth-bound scan, so each A row streams over B once with the many kernels instead, and
// the threads split B's rows.
#include "brute/distances.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "brute/engine.hpp"
#include "common/errors.hpp"
#include "common/norms.hpp"
#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace pysim::brute {
namespace {

using engine::clamp_cosine;
using simd::Epilogue;

constexpr std::size_t kRowsPerTask = 128;
constexpr std::size_t kTasksPerThread = 8; // tile tasks per thread at least (load balance)
constexpr std::size_t kMaxTaskMacs = std::size_t(1) << 25; // per 8 panel columns (see tiled)
constexpr std::size_t kPackedBytes = 256 * 1024;
constexpr std::size_t kManyMaxRows = 2; // A rows at or below this use the one-to-many path
// Streaming loops (one-to-many, norms, paired) read at most this much per chunk: a chunk is
// the unit of Ctrl-C latency (the pool polls between chunks), so it must stay short however
// large the operands are; a few MiB is still far above the per-chunk overhead.
constexpr std::size_t kMaxChunkBytes = std::size_t{4} << 20;

// Chunk size for a loop that reads `row_bytes` per item: balanced over the threads, at least
// `min_rows` (overhead) unless that would exceed kMaxChunkBytes, never above kMaxChunkBytes.
std::size_t stream_grain(std::size_t n, std::size_t threads, std::size_t min_rows,
                         std::size_t row_bytes) {
    const std::size_t cap =
        std::max<std::size_t>(1, kMaxChunkBytes / std::max<std::size_t>(1, row_bytes));
    return balanced_grain(n, threads, std::min(min_rows, cap), cap);
}

Epilogue epilogue_for(Metric metric) {
    switch (metric) {
    case Metric::sqeuclidean:
        return Epilogue::l2sq;
    case Metric::euclidean:
        return Epilogue::l2;
    case Metric::cosine:
        return Epilogue::cosine;
    case Metric::ip:
        return Epilogue::ip;
    case Metric::mahalanobis:
        break;
    }
    throw std::invalid_argument("metric: mahalanobis must be mapped to euclidean before the core");
}

// A squared norm that under- or overflowed (|x| below ~1e-154 or above ~1e154 in float64,
// 1e-19 / 1e19 in float32; NaN excluded) makes the fused cosine meaningless: a tiny vector
// would count as zero, or get a norm with a few significant bits. Such rows are rare, so their
// outputs are recomputed afterwards on vectors rescaled by their largest |x_j|, as BLAS nrm2
// does, which keeps cosine scale invariant.
template <typename T> bool needs_rescale(T squared, const T* x, std::size_t dim) {
    if (std::isnan(squared) ||
        (squared >= std::numeric_limits<T>::min() && squared <= std::numeric_limits<T>::max()))
        return false;
    if (squared != T(0))
        return true;
    for (std::size_t j = 0; j < dim; ++j) // a true zero vector is fine as it is
        if (x[j] != T(0))
            return true;
    return false;
}

template <typename T> T cosine_rescaled(const T* x, const T* y, std::size_t dim) {
    T sx = 0, sy = 0;
    for (std::size_t j = 0; j < dim; ++j) {
        sx = std::max(sx, std::abs(x[j]));
        sy = std::max(sy, std::abs(y[j]));
    }
    if (!std::isfinite(sx) || !std::isfinite(sy))
        return std::numeric_limits<T>::quiet_NaN();
    if (sx == T(0) || sy == T(0))
        return T(1); // a zero vector: distance 1 to everything
    T d = 0, nx = 0, ny = 0;
    for (std::size_t j = 0; j < dim; ++j) {
        const T u = x[j] / sx, v = y[j] / sy;
        d += u * v;
        nx += u * u;
        ny += v * v;
    }
    return clamp_cosine(T(1) - d / (std::sqrt(nx) * std::sqrt(ny)));
}

// Recomputes the cosine outputs of flagged rows of a and of b (out is m x n, row-major).
template <typename T>
void rescale_fixups(const T* a, std::size_t m, const T* b, std::size_t n, std::size_t dim,
                    const std::vector<std::size_t>& rows, const std::vector<std::size_t>& cols,
                    T* out) {
    for (const std::size_t i : rows)
        for (std::size_t j = 0; j < n; ++j)
            out[i * n + j] = cosine_rescaled(a + i * dim, b + j * dim, dim);
    for (const std::size_t j : cols)
        for (std::size_t i = 0; i < m; ++i)
            out[i * n + j] = cosine_rescaled(a + i * dim, b + j * dim, dim);
}

// Euclidean from the norm expansion loses precision when the distance is tiny next to the
// norms (catastrophic cancellation, then sqrt magnifies it: an absolute error e in the square
// becomes sqrt(e) in the distance). Entries whose square falls below a small fraction of
// |a|^2 + |b|^2 are recomputed directly as sqrt(sum (a - b)^2), which keeps euclidean within the
// dtype's accuracy relative to the norms. Only near pairs qualify, so the cost is a scan of
// the tile's outputs, which are still in cache.
template <typename T>
void refine_near_pairs(const T* a, std::size_t i0, std::size_t rows, const T* b, std::size_t j0,
                       std::size_t cols, std::size_t dim, const std::vector<T>& a_sq,
                       const std::vector<T>& b_sq, T* out, std::size_t ldo, simd::PairFn<T> l2sq) {
    const T ratio = sizeof(T) == 4 ? T(1e-3) : T(1e-7);
    for (std::size_t i = i0; i < i0 + rows; ++i) {
        T* o = out + i * ldo;
        for (std::size_t j = j0; j < j0 + cols; ++j) {
            if (o[j] * o[j] < ratio * (a_sq[i] + b_sq[j]))
                o[j] = std::sqrt(l2sq(a + i * dim, b + j * dim, dim));
        }
    }
}

// The matrix sink of the engine's tile pass: tiles go straight into the caller's output;
// euclidean's near pairs are refined while the block is still in cache.
template <typename T> class MatrixTiles {
  public:
    struct Ctx {
        std::size_t b0, bc;
    };
    MatrixTiles(const T* a, const T* b, std::size_t n, std::size_t dim, Epilogue ep,
                const std::vector<T>& a_sq, const std::vector<T>& b_sq, T* out)
        : a_(a), b_(b), n_(n), dim_(dim), ep_(ep), a_sq_(a_sq), b_sq_(b_sq), out_(out),
          l2sq_(simd::kernels<T>(simd::active()).l2sq.fn) {}

    Ctx begin(std::size_t, std::size_t b0, std::size_t bc) { return {b0, bc}; }
    T* slab(Ctx& ctx, std::size_t a0, std::size_t, std::size_t& ld) {
        ld = n_;
        return out_ + a0 * n_ + ctx.b0;
    }
    void take(Ctx& ctx, std::size_t a0, std::size_t rows, const T*, std::size_t) {
        if (ep_ == Epilogue::l2)
            refine_near_pairs(a_, a0, rows, b_, ctx.b0, ctx.bc, dim_, a_sq_, b_sq_, out_, n_,
                              l2sq_);
    }
    void end(Ctx&, std::size_t, std::size_t, std::size_t) {}

  private:
    const T* a_;
    const T* b_;
    std::size_t n_, dim_;
    Epilogue ep_;
    const std::vector<T>& a_sq_;
    const std::vector<T>& b_sq_;
    T* out_;
    simd::PairFn<T> l2sq_;
};

template <typename T>
void tiled(const T* a, std::size_t m, const T* b, std::size_t n, std::size_t dim, Epilogue ep,
           T* out, std::size_t threads) {
    const simd::Kernels<T>& k = simd::kernels<T>(simd::active());
    std::vector<T> a_aux, b_aux;
    std::vector<std::size_t> tiny_rows, tiny_cols; // cosine rows / columns to recompute
    if (ep == Epilogue::l2sq || ep == Epilogue::l2 || ep == Epilogue::cosine) {
        a_aux.resize(m);
        b_aux.resize(n);
        squared_norms(a, m, dim, a_aux.data(), threads);
        squared_norms(b, n, dim, b_aux.data(), threads);
        if (ep == Epilogue::cosine) {
            for (std::size_t i = 0; i < m; ++i) {
                if (needs_rescale(a_aux[i], a + i * dim, dim))
                    tiny_rows.push_back(i);
                a_aux[i] = inverse_norm(a_aux[i]);
            }
            for (std::size_t j = 0; j < n; ++j) {
                if (needs_rescale(b_aux[j], b + j * dim, dim))
                    tiny_cols.push_back(j);
                b_aux[j] = inverse_norm(b_aux[j]);
            }
        }
    }
    const std::size_t nr = k.tile_nr;
    std::size_t block = kPackedBytes / (sizeof(T) * std::max<std::size_t>(1, dim));
    block = std::max(nr, std::min<std::size_t>(4096, block / nr * nr));
    engine::TileOperands<T> op;
    op.a = a;
    op.n_a = m;
    op.b = b;
    op.n_b = n;
    op.dim = dim;
    op.epilogue = ep;
    op.a_aux = a_aux.empty() ? nullptr : a_aux.data();
    op.b_aux = b_aux.empty() ? nullptr : b_aux.data();
    engine::TilePlan plan;
    // As few A splits as keep every thread fed (kTasksPerThread tasks each): each task repacks
    // its B block, and the packing is a scalar transpose that costs about as much per element
    // as a few hundred multiply-adds, so one split per 128 A rows spent over a third of a
    // 1000 x 10000 x 768 call packing. A task walks its split kRowsPerTask rows per tile call.
    // A task stays under a time budget, though: the pool polls for Ctrl-C between tasks, and
    // one split of 3000 rows against a 32-row block at d = 2048 was seconds on the scalar
    // kernels under ASan. The budget is kMaxTaskMacs multiply-adds per 8 columns of the tile
    // kernel's panel (its vector width: wider kernels do proportionally more in the same time).
    const std::size_t b_blocks = engine::div_up(n, block);
    const std::size_t most_splits = engine::div_up(m, kRowsPerTask);
    const std::size_t task_macs = kMaxTaskMacs * std::max<std::size_t>(1, nr / 8);
    const std::size_t max_split_rows =
        std::max(kRowsPerTask, task_macs / std::max<std::size_t>(1, block * dim));
    const std::size_t splits = std::min(
        most_splits,
        std::max(engine::div_up(m, max_split_rows),
                 engine::div_up(kTasksPerThread * std::max<std::size_t>(1, threads), b_blocks)));
    plan.b_block = block;
    plan.a_split = engine::div_up(m, splits);
    plan.a_chunk = kRowsPerTask;
    plan.b_major = false;     // consecutive tasks reuse the A rows (in L2), repack B
    plan.keep_scratch = true; // one packed block per thread, reused by later calls
    MatrixTiles<T> sink(a, b, n, dim, ep, a_aux, b_aux, out);
    engine::run_tiles(op, plan, sink, threads);
    rescale_fixups(a, m, b, n, dim, tiny_rows, tiny_cols, out);
}

// The matrix sink of the engine's one-to-many pass: values go straight into row i of the
// output; cosine entries of rows whose norm under- or overflowed are recomputed rescaled.
template <typename T> class MatrixMany {
  public:
    struct Ctx {
        std::size_t i;
    };
    MatrixMany(const T* a, const T* b, std::size_t n, std::size_t dim, T* out)
        : a_(a), b_(b), n_(n), dim_(dim), out_(out) {}

    Ctx begin(std::size_t, std::size_t i) { return {i}; }
    T* slab(Ctx& ctx, std::size_t j0, std::size_t) { return out_ + ctx.i * n_ + j0; }
    void take(Ctx& ctx, std::size_t j0, std::size_t rows, T* values, const T* norms) {
        if (norms == nullptr)
            return;
        T* o = values;
        const T* q = a_ + ctx.i * dim_;
        for (std::size_t j = 0; j < rows; ++j) {
            const T* row = b_ + (j0 + j) * dim_;
            if (needs_rescale(norms[j], row, dim_))
                o[j] = cosine_rescaled(q, row, dim_);
        }
    }
    void end(Ctx&, std::size_t, std::size_t) {}

  private:
    const T* a_;
    const T* b_;
    std::size_t n_, dim_;
    T* out_;
};

template <typename T>
void one_to_many(const T* a, std::size_t m, const T* b, std::size_t n, std::size_t dim, Epilogue ep,
                 T* out, std::size_t threads) {
    const simd::Kernels<T>& k = simd::kernels<T>(simd::active());
    std::vector<T> q_sq(m, T(1)), q_inv(m);
    for (std::size_t i = 0; i < m; ++i) {
        if (ep == Epilogue::cosine)
            q_sq[i] = k.norm2.fn(a + i * dim, a + i * dim, dim);
        q_inv[i] = inverse_norm(q_sq[i]);
    }
    engine::ManyOperands<T> op;
    op.queries = a;
    op.m = m;
    op.q_inv = q_inv.data();
    op.rows = b;
    op.n = n;
    op.dim = dim;
    op.epilogue = ep;
    MatrixMany<T> sink(a, b, n, dim, out);
    engine::run_many(op, stream_grain(n, threads, 4096, dim * sizeof(T)), sink, threads);
    for (std::size_t i = 0; i < m; ++i) {
        const T* q = a + i * dim;
        if (ep == Epilogue::cosine && needs_rescale(q_sq[i], q, dim)) {
            for (std::size_t j = 0; j < n; ++j)
                out[i * n + j] = cosine_rescaled(q, b + j * dim, dim);
        }
    }
}

template <typename T>
void run(const T* a, std::size_t m, const T* b, std::size_t n, std::size_t dim, Epilogue ep, T* out,
         std::size_t threads) {
    require(dim > 0, "dim must be positive");
    if (m == 0 || n == 0)
        return;
    if (m <= kManyMaxRows) {
        one_to_many(a, m, b, n, dim, ep, out, threads);
    } else {
        tiled(a, m, b, n, dim, ep, out, threads);
    }
}

} // namespace

template <typename T>
void cdist(const T* a, std::size_t m, const T* b, std::size_t n, std::size_t dim, Metric metric,
           T* out, std::size_t threads) {
    run(a, m, b, n, dim, epilogue_for(metric), out, threads);
}

template <typename T>
void dot(const T* a, std::size_t m, const T* b, std::size_t n, std::size_t dim, T* out,
         std::size_t threads) {
    run(a, m, b, n, dim, Epilogue::dot, out, threads);
}

template <typename T>
void paired(const T* a, const T* b, std::size_t m, std::size_t dim, Metric metric, T* out,
            std::size_t threads) {
    const Epilogue ep = epilogue_for(metric);
    const simd::Kernels<T>& k = simd::kernels<T>(simd::active());
    parallel_for(m, threads, stream_grain(m, threads, 1024, 2 * dim * sizeof(T)),
                 [&](std::size_t begin, std::size_t end) {
                     for (std::size_t i = begin; i < end; ++i) {
                         const T* x = a + i * dim;
                         const T* y = b + i * dim;
                         T v;
                         switch (ep) {
                         case Epilogue::l2sq:
                             v = k.l2sq.fn(x, y, dim);
                             break;
                         case Epilogue::l2:
                             v = std::sqrt(k.l2sq.fn(x, y, dim));
                             break;
                         case Epilogue::ip:
                             v = T(1) - k.dot.fn(x, y, dim);
                             break;
                         case Epilogue::cosine: {
                             const T xx = k.norm2.fn(x, x, dim), yy = k.norm2.fn(y, y, dim);
                             const T sim =
                                 k.dot.fn(x, y, dim) * inverse_norm(xx) * inverse_norm(yy);
                             v = clamp_cosine(T(1) - sim);
                             if (needs_rescale(xx, x, dim) || needs_rescale(yy, y, dim))
                                 v = cosine_rescaled(x, y, dim);
                             break;
                         }
                         default:
                             v = k.dot.fn(x, y, dim);
                             break;
                         }
                         out[i] = v;
                     }
                 });
}

template <typename T>
void squared_norms(const T* rows, std::size_t n, std::size_t dim, T* out, std::size_t threads) {
    const simd::Kernels<T>& k = simd::kernels<T>(simd::active());
    parallel_for(n, threads, stream_grain(n, threads, 2048, dim * sizeof(T)),
                 [&](std::size_t begin, std::size_t end) {
                     k.norms.fn(rows + begin * dim, end - begin, dim, out + begin);
                 });
}

#define PYSIM_INSTANTIATE(T)                                                                       \
    template void cdist<T>(const T*, std::size_t, const T*, std::size_t, std::size_t, Metric, T*,  \
                           std::size_t);                                                           \
    template void dot<T>(const T*, std::size_t, const T*, std::size_t, std::size_t, T*,            \
                         std::size_t);                                                             \
    template void paired<T>(const T*, const T*, std::size_t, std::size_t, Metric, T*,              \
                            std::size_t);                                                          \
    template void squared_norms<T>(const T*, std::size_t, std::size_t, T*, std::size_t);
PYSIM_INSTANTIATE(float)
PYSIM_INSTANTIATE(double)
#undef PYSIM_INSTANTIATE

} // namespace pysim::brute
