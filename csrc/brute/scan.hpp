// Internal to the brute-force search (knn.cpp, radius.cpp): prepared queries, the work plan,
// and the threshold scans that connect the blocked-scan engine (engine.hpp) to the k-NN and
// radius candidate sinks.
//
// A search sink ("hit sink") provides:
//   Ctx begin(s, q0, qc, T* thr)       task start: queries [q0, q0+qc) over data split s;
//                                      fills the initial thresholds
//   T   hit(Ctx&, c, T v, index_t j)    row j has D~ = v < thr[c] for query q0 + c; returns
//                                      the new threshold of that query
//   void end(Ctx&, s, q0, qc)           task end
// and three scans feed it:
//   scan_tiles : m > 2 queries. The engine's tile pass with the queries as the packed operand
//                and the data rows streamed DB at a time: each tile writes a DB x (query block)
//                slab into a task-local buffer (L1/L2), which the table's scan_lt kernel
//                compares with the per-query thresholds (hits are rare once the sets are full).
//   scan_many  : 1 or 2 queries, a memory-bound scan: the engine's one-to-many pass, the rows
//                split across threads, each split with its own candidates, merged when all
//                splits are done.
//   scan_direct: the rescan, by sum (x - y)^2, of L2 queries whose candidates the norm
//                expansion could not separate (rows far from the origin in float32): the
//                engine's direct pass over the tile pass's tasks.
// Query blocks are sized so the packed block stays in L2 and one task stays short (Ctrl-C
// is polled between tasks); data splits are added only when there are too few query blocks
// to keep every thread busy, because each split costs one set of candidate buffers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "brute/brute_force.hpp"
#include "brute/distances.hpp"
#include "brute/engine.hpp"
#include "brute/exact_rerank.hpp"
#include "common/errors.hpp"
#include "common/norms.hpp"
#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace pysim::brute::detail {

using engine::div_up;
using engine::round_up;

inline constexpr std::size_t kManyMaxQueries = 2;           // at or below: one-to-many engine
inline constexpr std::size_t kQueryBlockBytes = 512 * 1024; // packed query block kept in L2
inline constexpr std::size_t kMaxQueryBlock = 1024;
inline constexpr double kTaskMultiplyAdds = 4e9;   // about 0.1 s of work: Ctrl-C latency
inline constexpr std::size_t kMinSplitRows = 4096; // smaller splits cost more heaps than they save
inline constexpr std::size_t kMaxSplitRows = std::size_t{1} << 20; // one-to-many chunk (Ctrl-C)
inline constexpr std::size_t kDirectBlockBytes = 64 * 1024; // data block of the direct batch engine
inline constexpr double kDirectRadiusRatio = 0.05; // identity band / radius beyond which: direct
inline constexpr double kTaskHeapBytes = 64.0 * (1 << 20);   // heaps of one task (large k)
inline constexpr double kSplitHeapBytes = 256.0 * (1 << 20); // heaps kept across data splits

// ---------------------------------------------------------------------------------------------
// Prepared queries and the work plan.

template <typename T> struct Queries {
    const T* rows = nullptr;
    std::size_t m = 0;
    std::vector<T> sqn; // |q|^2
    std::vector<T> aux; // tile epilogue's per-query operand: |q|^2 (l2) or 1/|q| (cosine)
};

template <typename T>
Queries<T> prepare_queries(const Dataset<T>& data, const T* rows, std::size_t m,
                           std::size_t threads) {
    Queries<T> q;
    q.rows = rows;
    q.m = m;
    q.sqn.resize(m);
    squared_norms(rows, m, data.dim, q.sqn.data(), threads);
    for (T v : q.sqn) {
        require(static_cast<double>(v) <= max_safe_sqnorm<T>(),
                "Q: values too large for this dtype (a squared norm overflows); use float64");
    }
    if (is_l2(data.metric)) {
        q.aux = q.sqn;
    } else if (data.metric == Metric::cosine) {
        q.aux.resize(m);
        for (std::size_t i = 0; i < m; ++i)
            q.aux[i] = inverse_norm(q.sqn[i]);
    }
    return q;
}

struct Plan {
    bool many = false;      // one-to-many engine
    bool direct = false;    // distances by sum (x - y)^2, not the norm expansion
    std::size_t qblock = 0; // queries per block (tile engine)
    std::size_t qblocks = 0;
    std::size_t splits = 1; // data splits, each with its own heaps / lists
    std::size_t split_rows = 0;
};

// Cuts the n data rows into about `wanted` splits, no smaller than kMinSplitRows and no more
// than the heaps kept across splits allow.
inline void set_splits(Plan& p, std::size_t wanted, std::size_t m, std::size_t n,
                       double heap_bytes) {
    std::size_t splits = wanted;
    if (splits > 1) {
        splits = std::max<std::size_t>(1, std::min(splits, n / kMinSplitRows));
        if (heap_bytes > 0) {
            const double cap = kSplitHeapBytes / (heap_bytes * static_cast<double>(m));
            splits = std::max<std::size_t>(1, std::min<double>(splits, cap));
        }
    }
    p.split_rows = std::max<std::size_t>(1, div_up(n, splits));
    p.splits = std::max<std::size_t>(1, div_up(n, p.split_rows));
}

/// `heap_bytes`: per-query state of the sink (bounded heaps), 0 when negligible.
template <typename T>
Plan make_plan(std::size_t m, std::size_t n, std::size_t d, std::size_t threads,
               double heap_bytes) {
    Plan p;
    threads = std::max<std::size_t>(1, threads);
    if (m <= kManyMaxQueries) {
        p.many = true;
        p.direct = true;
        set_splits(p, std::max(threads > 1 ? threads * 4 : 1, div_up(n, kMaxSplitRows)), m, n,
                   heap_bytes);
        return p;
    }
    const std::size_t nr = simd::kernels<T>(simd::active()).tile_nr;
    std::size_t qb = kQueryBlockBytes / (d * sizeof(T));
    const double per_query = static_cast<double>(n) * static_cast<double>(d);
    // The scalar kernels run about 8x fewer multiply-adds per second than the vector ones, so
    // the same task budget would hold Ctrl-C back for most of a second there.
    const double budget =
        simd::active().isa == simd::Isa::scalar ? kTaskMultiplyAdds / 8 : kTaskMultiplyAdds;
    if (per_query > 0)
        qb = std::min<double>(qb, budget / per_query);
    if (threads > 1)
        qb = std::min(qb, round_up(div_up(m, threads), nr));
    if (heap_bytes > 0)
        qb = std::min<double>(qb, kTaskHeapBytes / heap_bytes);
    qb = std::min(kMaxQueryBlock, std::max(nr, qb / nr * nr));
    p.qblock = qb;
    p.qblocks = div_up(m, qb);
    set_splits(p, threads > 1 && p.qblocks < 4 * threads ? div_up(4 * threads, p.qblocks) : 1, m, n,
               heap_bytes);
    return p;
}

// ---------------------------------------------------------------------------------------------
// Threshold scans: the engine's sinks that feed a hit sink.

inline simd::Epilogue scan_epilogue(Metric metric) {
    if (metric == Metric::cosine)
        return simd::Epilogue::cosine;
    if (metric == Metric::ip)
        return simd::Epilogue::ip;
    return simd::Epilogue::l2sq; // euclidean is ranked by its square
}

/// Tile sink: each slab row (one data row against the task's queries) goes through scan_lt;
/// the direct pass hands over columns (one query against a chunk of rows) instead.
template <typename T, typename HitSink> class TileScan {
  public:
    struct Ctx {
        typename HitSink::Ctx inner;
        std::vector<T> out, thr;
        std::vector<std::uint32_t> hits;
        std::size_t qc = 0;
    };

    TileScan(HitSink& sink, std::size_t chunk)
        : sink_(sink), chunk_(chunk), scan_(simd::kernels<T>(simd::active()).scan_lt.fn) {}

    Ctx begin(std::size_t s, std::size_t q0, std::size_t qc) {
        Ctx ctx;
        ctx.qc = qc;
        ctx.out.resize(chunk_ * qc);
        ctx.thr.resize(qc);
        ctx.hits.resize(qc);
        ctx.inner = sink_.begin(s, q0, qc, ctx.thr.data());
        return ctx;
    }
    T* slab(Ctx& ctx, std::size_t, std::size_t, std::size_t& ld) {
        ld = ctx.qc;
        return ctx.out.data();
    }
    void take(Ctx& ctx, std::size_t j0, std::size_t rows, const T* slab, std::size_t ld) {
        T* thr = ctx.thr.data();
        for (std::size_t r = 0; r < rows; ++r) {
            const index_t j = static_cast<index_t>(j0 + r);
            const T* row = slab + r * ld;
            const std::size_t nh = scan_(row, thr, ctx.qc, ctx.hits.data());
            for (std::size_t h = 0; h < nh; ++h) {
                const std::size_t c = ctx.hits[h];
                thr[c] = sink_.hit(ctx.inner, c, row[c], j);
            }
        }
    }
    /// The direct pass: query c against data rows [j0, j0+rows).
    void take_column(Ctx& ctx, std::size_t j0, std::size_t rows, std::size_t c, const T* values) {
        T t = ctx.thr[c];
        for (std::size_t r = 0; r < rows; ++r)
            if (values[r] < t)
                t = sink_.hit(ctx.inner, c, values[r], static_cast<index_t>(j0 + r));
        ctx.thr[c] = t;
    }
    void end(Ctx& ctx, std::size_t s, std::size_t q0, std::size_t qc) {
        sink_.end(ctx.inner, s, q0, qc);
    }

  private:
    HitSink& sink_;
    std::size_t chunk_;
    simd::ScanLtFn<T> scan_;
};

/// Many sink: one query, one threshold, over a chunk of rows.
template <typename T, typename HitSink> class ManyScan {
  public:
    struct Ctx {
        typename HitSink::Ctx inner;
        T thr;
        T buf[engine::kManyChunk];
    };

    explicit ManyScan(HitSink& sink) : sink_(sink) {}

    Ctx begin(std::size_t s, std::size_t i) {
        Ctx ctx;
        T thr;
        ctx.inner = sink_.begin(s, i, 1, &thr);
        ctx.thr = thr;
        return ctx;
    }
    T* slab(Ctx& ctx, std::size_t, std::size_t) { return ctx.buf; }
    void take(Ctx& ctx, std::size_t j0, std::size_t rows, const T* values, const T*) {
        T thr = ctx.thr;
        for (std::size_t r = 0; r < rows; ++r)
            if (values[r] < thr)
                thr = sink_.hit(ctx.inner, 0, values[r], static_cast<index_t>(j0 + r));
        ctx.thr = thr;
    }
    void end(Ctx& ctx, std::size_t s, std::size_t i) { sink_.end(ctx.inner, s, i, 1); }

  private:
    HitSink& sink_;
};

// The searches' tile tasks: the queries are the packed operand (blocks of plan.qblock), the
// data rows the streamed one (splits of plan.split_rows), `chunk` data rows per kernel call.
template <typename T>
engine::TileOperands<T> search_operands(const Dataset<T>& data, const Queries<T>& q,
                                        simd::Epilogue epilogue) {
    engine::TileOperands<T> op;
    op.a = data.rows;
    op.n_a = data.n;
    op.b = q.rows;
    op.n_b = q.m;
    op.dim = data.dim;
    op.epilogue = epilogue;
    return op;
}

inline engine::TilePlan search_tasks(const Plan& plan, std::size_t chunk) {
    engine::TilePlan tp;
    tp.b_block = plan.qblock;
    tp.a_split = plan.split_rows;
    tp.a_chunk = chunk;
    tp.b_major = true;       // a task's queries stay packed while it walks its split
    tp.keep_scratch = false; // nothing outlives the call
    return tp;
}

template <typename T, typename Sink>
void scan_tiles(const Dataset<T>& data, const Queries<T>& q, const Plan& plan, Sink& sink,
                std::size_t threads) {
    engine::TileOperands<T> op = search_operands(data, q, scan_epilogue(data.metric));
    if (op.epilogue != simd::Epilogue::ip) {
        op.a_aux = data.sqnorms;
        op.a_aux_squared = true;
        op.b_aux = q.aux.empty() ? nullptr : q.aux.data();
    }
    // data rows per tile call
    const engine::TilePlan tp = search_tasks(plan, 4 * simd::kernels<T>(simd::active()).tile_mr);
    TileScan<T, Sink> scan(sink, tp.a_chunk);
    engine::run_tiles(op, tp, scan, threads);
}

// (Its operand setup has the shape of scan_tiles' - duplicates pairs them - but fills the
// other pass's struct.)
template <typename T, typename Sink>
void scan_many(const Dataset<T>& data, const Queries<T>& q, const Plan& plan, Sink& sink,
               std::size_t threads) {
    std::vector<T> q_inv;
    engine::ManyOperands<T> op;
    op.queries = q.rows;
    op.m = q.m;
    op.rows = data.rows;
    op.n = data.n;
    op.dim = data.dim;
    op.epilogue = scan_epilogue(data.metric);
    if (data.metric == Metric::cosine) {
        q_inv.resize(q.m);
        for (std::size_t i = 0; i < q.m; ++i)
            q_inv[i] = inverse_norm(q.sqn[i]);
        op.q_inv = q_inv.data();
        op.row_sqnorms = data.sqnorms;
    }
    ManyScan<T, Sink> scan(sink);
    engine::run_many(op, plan.split_rows, scan, threads);
}

// Squared Euclidean by the direct kernels for a batch of queries (the rescan of queries the
// norm expansion could not separate): the engine's direct pass over the same tasks, with one
// data block small enough for L2 reused by every query of the task.
template <typename T, typename Sink>
void scan_direct(const Dataset<T>& data, const Queries<T>& q, const Plan& plan, Sink& sink,
                 std::size_t threads) {
    const engine::TileOperands<T> op = search_operands(data, q, simd::Epilogue::l2sq);
    const engine::TilePlan tp =
        search_tasks(plan, std::max<std::size_t>(16, kDirectBlockBytes / (data.dim * sizeof(T))));
    TileScan<T, Sink> scan(sink, 0);
    engine::run_direct(op, tp, scan, threads);
}

template <typename T>
ErrorModel error_model(const Dataset<T>& data, const Queries<T>& q, std::size_t i, bool direct) {
    const double qn = static_cast<double>(q.sqn[i]);
    switch (data.metric) {
    case Metric::ip:
        return ip_error<T>(qn, data.max_sqnorm, data.dim);
    case Metric::cosine:
        return cosine_error<T>(data.dim);
    default:
        return direct ? direct_l2_error<T>(data.dim)
                      : identity_l2_error<T>(qn, data.max_sqnorm, data.dim);
    }
}

template <typename T> void check_dataset(const Dataset<T>& data) {
    require(data.dim > 0, "dim must be positive");
    require(data.n == 0 || (data.rows != nullptr && data.sqnorms != nullptr),
            "data and norms must be set");
    require(data.metric != Metric::mahalanobis,
            "metric: mahalanobis must be mapped to euclidean before the core");
}

} // namespace pysim::brute::detail
