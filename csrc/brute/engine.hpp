// The blocked-scan engine of csrc/brute/: cdist, dot and the exact k-NN and radius searches
// all run on it, so the tiling, the packing, the fused epilogue and the thread partition are
// written once. What differs between the jobs is the sink that receives each block of
// distances:
//   cdist / dot     the sink hands out the caller's (m, n) matrix: tiles are written in place
//                   (distances.cpp);
//   k-NN / radius   the sink hands out a task-local slab and threshold-scans it with the
//                   table's scan_lt kernel, feeding candidate sets (scan.hpp).
//
// Passes, each over the active kernel table (read once per pass):
//   run_tiles  compute-bound. Operand B is packed per task into the tile kernel's panel
//              layout (a per-thread buffer sized by the caller to stay in L2), operand A is
//              read in place. A task is (one block of B rows, one split of A rows); it walks
//              its split `a_chunk` rows per tile call. Packing per task (not once per call)
//              keeps memory at one block per thread; it costs 1 / (rows in the split) of the
//              task's arithmetic. cdist packs its right operand and streams its left one;
//              the searches pack the queries (few, new every call) and stream the indexed
//              rows, so the index never copies the caller's matrix.
//   run_direct the tile pass's tasks by sum (a - b)^2 instead of the norm expansion (the
//              searches' rescan of rows far from the origin, where the expansion is coarse).
//   run_many   memory-bound: one row against many. Packing would add a pass over the rows, so
//              the one-to-many kernels stream over them, `grain` rows per thread chunk, in
//              calls of kManyChunk rows.
// Sinks are templates (no virtual call per block) and see which task, split and rows each
// block belongs to; the engine owns no results. Chunks are short, so Ctrl-C (polled by the
// pool between chunks) stays responsive.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "common/norms.hpp"
#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace pysim::brute::engine {

inline std::size_t div_up(std::size_t a, std::size_t b) {
    return (a + b - 1) / b;
}
inline std::size_t round_up(std::size_t a, std::size_t b) {
    return div_up(a, b) * b;
}

/// Clamps a cosine distance to [0, 2] but lets NaN through, so non-finite input stays visible
/// to the caller's finiteness check (std::max(0, NaN) would return 0).
template <typename T> T clamp_cosine(T v) noexcept {
    return v < T(0) ? T(0) : (v > T(2) ? T(2) : v);
}

// ---------------------------------------------------------------------------------------------
// Tile pass.

/// The two operands of a tile pass and the epilogue's per-row operands (simd::TileArgs).
template <typename T> struct TileOperands {
    const T* a = nullptr; // (n_a, dim), read in place
    std::size_t n_a = 0;
    const T* b = nullptr; // (n_b, dim), packed per task
    std::size_t n_b = 0;
    std::size_t dim = 0;
    simd::Epilogue epilogue = simd::Epilogue::dot;
    const T* a_aux = nullptr;   // per A row: |a|^2 (l2) or 1/|a| (cosine); null for dot / ip
    bool a_aux_squared = false; // cosine with a_aux = |a|^2: inverted per tile call
    const T* b_aux = nullptr;   // per B row, as the epilogue wants it; null for dot / ip
};

/// How a tile pass is cut into tasks (see the header comment).
struct TilePlan {
    std::size_t b_block = 0;   // B rows packed per task (a multiple of tile_nr but the last)
    std::size_t a_split = 0;   // A rows per task
    std::size_t a_chunk = 0;   // A rows per tile call
    bool b_major = true;       // consecutive tasks share the B block (else the A split)
    bool keep_scratch = false; // the packing buffer outlives the call (thread_local)
};

/// The thread partition of a tile pass, once for every pass over (B block, A split) tasks:
/// fn(split, b0, bc, a_begin, a_end) for each task, one task per pool chunk.
template <typename Fn>
void for_each_task(std::size_t n_a, std::size_t n_b, const TilePlan& plan, std::size_t threads,
                   Fn&& fn) {
    const std::size_t b_blocks = div_up(n_b, plan.b_block);
    const std::size_t a_splits = div_up(n_a, plan.a_split);
    parallel_for(b_blocks * a_splits, threads, 1, [&](std::size_t begin, std::size_t end) {
        for (std::size_t task = begin; task < end; ++task) {
            const std::size_t bi = plan.b_major ? task / a_splits : task % b_blocks;
            const std::size_t s = plan.b_major ? task % a_splits : task / b_blocks;
            const std::size_t b0 = bi * plan.b_block;
            const std::size_t a_begin = s * plan.a_split;
            fn(s, b0, std::min(plan.b_block, n_b - b0), a_begin,
               std::min(n_a, a_begin + plan.a_split));
        }
    });
}

/// A tile sink provides:
///   Ctx  begin(split, b0, bc)                 task start: A split `split`, B rows [b0, b0+bc)
///   T*   slab(Ctx&, a0, rows, std::size_t& ld) where the tile writes A rows [a0, a0+rows)
///                                               x the task's bc B rows (row stride ld)
///   void take(Ctx&, a0, rows, const T* slab, ld) the slab is written
///   void end(Ctx&, split, b0, bc)               task end
template <typename T, typename Sink>
void run_tiles(const TileOperands<T>& op, const TilePlan& plan, Sink& sink, std::size_t threads) {
    const simd::Kernels<T>& K = simd::kernels<T>(simd::active());
    const std::size_t d = op.dim, nr = K.tile_nr;
    const bool invert_a = op.a_aux_squared && op.epilogue == simd::Epilogue::cosine;
    const auto pack = K.pack.fn;
    const auto tile = K.tile.fn;
    for_each_task(
        op.n_a, op.n_b, plan, threads,
        [&](std::size_t s, std::size_t b0, std::size_t bc, std::size_t a_begin, std::size_t a_end) {
            thread_local std::vector<T> kept;
            std::vector<T> local, inv;
            std::vector<T>& packed = plan.keep_scratch ? kept : local;
            const std::size_t need = round_up(bc, nr) * d;
            if (packed.size() < need)
                packed.resize(need);
            pack(op.b + b0 * d, d, bc, d, packed.data());
            auto ctx = sink.begin(s, b0, bc);
            for (std::size_t a0 = a_begin; a0 < a_end; a0 += plan.a_chunk) {
                const std::size_t rows = std::min(plan.a_chunk, a_end - a0);
                const T* a_aux = op.a_aux ? op.a_aux + a0 : nullptr;
                if (invert_a) {
                    if (inv.size() < rows)
                        inv.resize(rows);
                    for (std::size_t r = 0; r < rows; ++r)
                        inv[r] = inverse_norm(op.a_aux[a0 + r]);
                    a_aux = inv.data();
                }
                std::size_t ld = 0;
                T* out = sink.slab(ctx, a0, rows, ld);
                const simd::TileArgs<T> g{op.a + a0 * d, d,     rows,
                                          packed.data(), bc,    d,
                                          op.epilogue,   a_aux, op.b_aux ? op.b_aux + b0 : nullptr,
                                          out,           ld};
                tile(g);
                sink.take(ctx, a0, rows, out, ld);
            }
            sink.end(ctx, s, b0, bc);
        });
}

/// The same tasks by the direct formula sum (a - b)^2 (squared Euclidean, no packing, no norm
/// expansion): for each chunk of A rows, each B row of the task gets one l2sq_many call over
/// the chunk, a column of the block. The sink provides begin / end as above and
///   void take_column(Ctx&, a0, rows, c, const T* values)   B row b0 + c against A rows
///                                                           [a0, a0+rows)
/// `a_chunk` is sized by the caller so the chunk stays in L2 across the task's B rows: the
/// scan is then compute-bound rather than a pass over memory per B row.
template <typename T, typename Sink>
void run_direct(const TileOperands<T>& op, const TilePlan& plan, Sink& sink, std::size_t threads) {
    const auto l2sq_many = simd::kernels<T>(simd::active()).l2sq_many.fn;
    const std::size_t d = op.dim;
    for_each_task(
        op.n_a, op.n_b, plan, threads,
        [&](std::size_t s, std::size_t b0, std::size_t bc, std::size_t a_begin, std::size_t a_end) {
            std::vector<T> col(plan.a_chunk);
            auto ctx = sink.begin(s, b0, bc);
            for (std::size_t a0 = a_begin; a0 < a_end; a0 += plan.a_chunk) {
                const std::size_t rows = std::min(plan.a_chunk, a_end - a0);
                for (std::size_t c = 0; c < bc; ++c) {
                    l2sq_many(op.b + (b0 + c) * d, op.a + a0 * d, rows, d, col.data());
                    sink.take_column(ctx, a0, rows, c, col.data());
                }
            }
            sink.end(ctx, s, b0, bc);
        });
}

// ---------------------------------------------------------------------------------------------
// One-to-many pass.

inline constexpr std::size_t kManyChunk = 256; // rows per one-to-many kernel call

/// The metric's value of `query` against `count` contiguous rows, into out (the one-to-many
/// form of the tile kernel's fused epilogue: one case per Epilogue, alike by shape, as duplicates
/// reports). For cosine, `q_inv` is 1/|query| and the rows' squared norms come from
/// `row_sqnorms` when the caller has them (one dot pass), else they are computed in the same
/// pass into `norms_out`;
/// the norms used are returned (null for the other epilogues). Euclidean takes the root.
template <typename T>
const T* many_distances(const simd::Kernels<T>& K, simd::Epilogue ep, const T* query, T q_inv,
                        const T* rows, std::size_t count, std::size_t dim, const T* row_sqnorms,
                        T* out, T* norms_out) noexcept {
    switch (ep) {
    case simd::Epilogue::l2sq:
        K.l2sq_many.fn(query, rows, count, dim, out);
        return nullptr;
    case simd::Epilogue::l2:
        K.l2sq_many.fn(query, rows, count, dim, out);
        for (std::size_t j = 0; j < count; ++j)
            out[j] = std::sqrt(out[j]);
        return nullptr;
    case simd::Epilogue::dot:
        K.dot_many.fn(query, rows, count, dim, out);
        return nullptr;
    case simd::Epilogue::ip:
        K.dot_many.fn(query, rows, count, dim, out);
        for (std::size_t j = 0; j < count; ++j)
            out[j] = T(1) - out[j];
        return nullptr;
    case simd::Epilogue::cosine:
        break;
    }
    const T* norms = row_sqnorms;
    if (norms != nullptr) {
        K.dot_many.fn(query, rows, count, dim, out);
    } else {
        K.dot_norm_many.fn(query, rows, count, dim, out, norms_out);
        norms = norms_out;
    }
    for (std::size_t j = 0; j < count; ++j)
        out[j] = clamp_cosine(T(1) - out[j] * q_inv * inverse_norm(norms[j]));
    return norms;
}

/// The operands of a one-to-many pass: each of m queries against the n rows.
template <typename T> struct ManyOperands {
    const T* queries = nullptr; // (m, dim)
    std::size_t m = 0;
    const T* q_inv = nullptr; // 1/|q_i| for cosine, else unused
    const T* rows = nullptr;  // (n, dim)
    std::size_t n = 0;
    std::size_t dim = 0;
    simd::Epilogue epilogue = simd::Epilogue::dot;
    const T* row_sqnorms = nullptr; // |row_j|^2, optional (cosine)
};

/// A many sink provides:
///   Ctx  begin(split, i)                 query i over rows [split * grain, ...) starts
///   T*   slab(Ctx&, j0, rows)            where the values of rows [j0, j0+rows) go
///   void take(Ctx&, j0, rows, T* values, const T* norms)  (norms: cosine, else null); the
///                                       sink may rewrite the values in place
///   void end(Ctx&, split, i)
/// Queries run one after another, each with the threads splitting the rows `grain` at a time.
template <typename T, typename Sink>
void run_many(const ManyOperands<T>& op, std::size_t grain, Sink& sink, std::size_t threads) {
    const simd::Kernels<T>& K = simd::kernels<T>(simd::active());
    const std::size_t d = op.dim;
    for (std::size_t i = 0; i < op.m; ++i) {
        const T* query = op.queries + i * d;
        const T q_inv = op.q_inv ? op.q_inv[i] : T(1);
        parallel_for(op.n, threads, grain, [&](std::size_t b, std::size_t e) {
            T norms[kManyChunk];
            auto ctx = sink.begin(b / grain, i);
            for (std::size_t j0 = b; j0 < e; j0 += kManyChunk) {
                const std::size_t rows = std::min(kManyChunk, e - j0);
                T* out = sink.slab(ctx, j0, rows);
                const T* used =
                    many_distances(K, op.epilogue, query, q_inv, op.rows + j0 * d, rows, d,
                                   op.row_sqnorms ? op.row_sqnorms + j0 : nullptr, out, norms);
                sink.take(ctx, j0, rows, out, used);
            }
            sink.end(ctx, b / grain, i);
        });
    }
}

} // namespace pysim::brute::engine
