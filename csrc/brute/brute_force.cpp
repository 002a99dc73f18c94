// Fused blocked search for brute_force.hpp: tiles or one-to-many distances -> per-query
// candidate buffers (k-NN) or candidate lists (radius) -> exact float64 re-rank of the few
// candidates the error bound cannot separate (helpers in exact_rerank.hpp).
//
// Three engines feed one interface (a "sink": begin / hit / end per task):
//   run_tiles  : m > 2 queries. Each task packs its query block into the tile
//                kernel's panel layout; a task is (query block, data split). It walks its data
//                rows DB at a time: one tile call writes a DB x (query block) slab into a
//                task-local buffer (L1/L2), which is scanned against per-query thresholds
//                at once (the table's scan_lt kernel: hits are rare once the buffers are full).
//   run_many   : 1 or 2 queries, a memory-bound scan. Packing would add a pass, so the
//                one-to-many kernels stream over the rows; the rows are split across threads,
//                each split with its own candidates, merged when all splits are done.
//   run_direct : the rescan, by sum (x - y)^2, of L2 queries whose candidates the norm
//                expansion could not separate (rows far from the origin in float32).
// Query blocks are sized so the packed block stays in L2 and one task stays short (Ctrl-C
// is polled between tasks); data splits are added only when there are too few query blocks
// to keep every thread busy, because each split costs one set of candidate buffers.
#include "brute/brute_force.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "brute/distances.hpp"
#include "brute/exact_rerank.hpp"
#include "common/errors.hpp"
#include "common/norms.hpp"
#include "common/parallel.hpp"
#include "common/topk.hpp"
#include "simd/dispatch.hpp"

namespace pysim::brute {
namespace {

using namespace detail; // NOLINT: this file is the only user of the detail helpers

constexpr std::size_t kManyMaxQueries = 2;           // at or below: one-to-many engine
constexpr std::size_t kQueryBlockBytes = 512 * 1024; // packed query block kept in L2
constexpr std::size_t kMaxQueryBlock = 1024;
constexpr double kTaskMultiplyAdds = 4e9;   // about 0.1 s of work: Ctrl-C latency
constexpr std::size_t kMinSplitRows = 4096; // smaller splits cost more heaps than they save
constexpr std::size_t kMaxSplitRows = std::size_t{1} << 20; // one-to-many chunk (Ctrl-C)
constexpr std::size_t kManyChunk = 256;                     // rows per one-to-many kernel call
constexpr std::size_t kDirectBlockBytes = 64 * 1024;        // data block of the direct batch engine
constexpr double kDirectRadiusRatio = 0.05;           // identity band / radius beyond which: direct
constexpr double kTaskHeapBytes = 64.0 * (1 << 20);   // heaps of one task (large k)
constexpr double kSplitHeapBytes = 256.0 * (1 << 20); // heaps kept across data splits

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

/// `heap_bytes`: per-query state of the sink (bounded heaps), 0 when negligible.
template <typename T>
Plan make_plan(std::size_t m, std::size_t n, std::size_t d, std::size_t threads,
               double heap_bytes) {
    Plan p;
    threads = std::max<std::size_t>(1, threads);
    if (m <= kManyMaxQueries) {
        p.many = true;
        p.direct = true;
        std::size_t splits = std::max(threads > 1 ? threads * 4 : 1, div_up(n, kMaxSplitRows));
        splits = std::max<std::size_t>(1, std::min(splits, n / kMinSplitRows));
        if (heap_bytes > 0) {
            const double cap = kSplitHeapBytes / (heap_bytes * static_cast<double>(m));
            splits = std::max<std::size_t>(1, std::min<double>(splits, cap));
        }
        p.split_rows = std::max<std::size_t>(1, div_up(n, splits));
        p.splits = std::max<std::size_t>(1, div_up(n, p.split_rows));
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
    std::size_t splits = 1;
    if (threads > 1 && p.qblocks < 4 * threads) {
        splits = div_up(4 * threads, p.qblocks);
        splits = std::max<std::size_t>(1, std::min(splits, n / kMinSplitRows));
        if (heap_bytes > 0) {
            const double cap = kSplitHeapBytes / (heap_bytes * static_cast<double>(m));
            splits = std::max<std::size_t>(1, std::min<double>(splits, cap));
        }
    }
    p.split_rows = std::max<std::size_t>(1, div_up(n, splits));
    p.splits = std::max<std::size_t>(1, div_up(n, p.split_rows));
    return p;
}

// ---------------------------------------------------------------------------------------------
// Engines. A Sink provides:
//   Ctx begin(s, q0, qc, T* thr)       task start: queries [q0, q0+qc) over data split s;
//                                      fills the initial thresholds
//   T   hit(Ctx&, c, T v, index_t j)    row j has D~ = v < thr[c] for query q0 + c; returns
//                                      the new threshold of that query
//   void end(Ctx&, s, q0, qc)           task end

template <typename T, typename Sink>
void run_tiles(const Dataset<T>& data, const Queries<T>& q, const Plan& plan, Sink& sink,
               std::size_t threads) {
    const simd::Kernels<T>& K = simd::kernels<T>(simd::active());
    const std::size_t d = data.dim, m = q.m, nr = K.tile_nr;
    const std::size_t db = 4 * K.tile_mr; // data rows per tile call
    simd::Epilogue ep = simd::Epilogue::l2sq;
    if (data.metric == Metric::cosine)
        ep = simd::Epilogue::cosine;
    if (data.metric == Metric::ip)
        ep = simd::Epilogue::ip;
    const auto tile = K.tile.fn;
    const auto scan = K.scan_lt.fn;
    parallel_for(plan.qblocks * plan.splits, threads, 1, [&](std::size_t b, std::size_t e) {
        std::vector<T> out, thr, inv, packed; // per chunk of tasks: nothing outlives the call
        std::vector<std::uint32_t> hits;
        for (std::size_t task = b; task < e; ++task) {
            const std::size_t qi = task / plan.splits, s = task % plan.splits;
            const std::size_t q0 = qi * plan.qblock, qc = std::min(plan.qblock, m - q0);
            // Packing per task (not once per call) keeps memory at one block per thread;
            // it costs 1 / (rows in the split) of the task's arithmetic.
            if (packed.size() < round_up(qc, nr) * d)
                packed.resize(round_up(qc, nr) * d);
            K.pack.fn(q.rows + q0 * d, d, qc, d, packed.data());
            const std::size_t j_begin = s * plan.split_rows;
            const std::size_t j_end = std::min(data.n, j_begin + plan.split_rows);
            if (out.size() < db * qc)
                out.resize(db * qc);
            if (thr.size() < qc) {
                thr.resize(qc);
                hits.resize(qc);
            }
            if (inv.size() < db)
                inv.resize(db);
            auto ctx = sink.begin(s, q0, qc, thr.data());
            for (std::size_t j0 = j_begin; j0 < j_end; j0 += db) {
                const std::size_t rows = std::min(db, j_end - j0);
                const T* a_aux = nullptr;
                if (ep == simd::Epilogue::l2sq) {
                    a_aux = data.sqnorms + j0;
                } else if (ep == simd::Epilogue::cosine) {
                    for (std::size_t r = 0; r < rows; ++r)
                        inv[r] = inverse_norm(data.sqnorms[j0 + r]);
                    a_aux = inv.data();
                }
                simd::TileArgs<T> g{data.rows + j0 * d,
                                    d,
                                    rows,
                                    packed.data(),
                                    qc,
                                    d,
                                    ep,
                                    a_aux,
                                    q.aux.empty() ? nullptr : q.aux.data() + q0,
                                    out.data(),
                                    qc};
                tile(g);
                for (std::size_t r = 0; r < rows; ++r) {
                    const index_t j = static_cast<index_t>(j0 + r);
                    const T* row = out.data() + r * qc;
                    const std::size_t nh = scan(row, thr.data(), qc, hits.data());
                    for (std::size_t h = 0; h < nh; ++h) {
                        const std::size_t c = hits[h];
                        thr[c] = sink.hit(ctx, c, row[c], j);
                    }
                }
            }
            sink.end(ctx, s, q0, qc);
        }
    });
}

template <typename T, typename Sink>
void run_many(const Dataset<T>& data, const Queries<T>& q, const Plan& plan, Sink& sink,
              std::size_t threads) {
    const simd::Kernels<T>& K = simd::kernels<T>(simd::active());
    const std::size_t d = data.dim;
    for (std::size_t i = 0; i < q.m; ++i) {
        const T* query = q.rows + i * d;
        const T q_inv = inverse_norm(q.sqn[i]);
        parallel_for(data.n, threads, plan.split_rows, [&](std::size_t b, std::size_t e) {
            const std::size_t s = b / plan.split_rows;
            T thr;
            T buf[kManyChunk];
            auto ctx = sink.begin(s, i, 1, &thr);
            for (std::size_t j0 = b; j0 < e; j0 += kManyChunk) {
                const std::size_t rows = std::min(kManyChunk, e - j0);
                const T* block = data.rows + j0 * d;
                switch (data.metric) {
                case Metric::ip:
                    K.dot_many.fn(query, block, rows, d, buf);
                    for (std::size_t r = 0; r < rows; ++r)
                        buf[r] = T(1) - buf[r];
                    break;
                case Metric::cosine:
                    K.dot_many.fn(query, block, rows, d, buf);
                    for (std::size_t r = 0; r < rows; ++r) {
                        const T v = T(1) - buf[r] * q_inv * inverse_norm(data.sqnorms[j0 + r]);
                        buf[r] = v < T(0) ? T(0) : (v > T(2) ? T(2) : v);
                    }
                    break;
                default:
                    K.l2sq_many.fn(query, block, rows, d, buf);
                    break;
                }
                for (std::size_t r = 0; r < rows; ++r)
                    if (buf[r] < thr)
                        thr = sink.hit(ctx, 0, buf[r], static_cast<index_t>(j0 + r));
            }
            sink.end(ctx, s, i, 1);
        });
    }
}

// Squared Euclidean by the direct kernels for a batch of queries (the rescan of queries the
// norm expansion could not separate): one data block, small enough for L2, is reused by every
// query of the task, so the scan is compute-bound rather than a pass over memory per query.
template <typename T, typename Sink>
void run_direct(const Dataset<T>& data, const Queries<T>& q, const Plan& plan, Sink& sink,
                std::size_t threads) {
    const simd::Kernels<T>& K = simd::kernels<T>(simd::active());
    const std::size_t d = data.dim, m = q.m;
    const std::size_t db = std::max<std::size_t>(16, kDirectBlockBytes / (d * sizeof(T)));
    parallel_for(plan.qblocks * plan.splits, threads, 1, [&](std::size_t b, std::size_t e) {
        std::vector<T> out, thr;
        for (std::size_t task = b; task < e; ++task) {
            const std::size_t qi = task / plan.splits, s = task % plan.splits;
            const std::size_t q0 = qi * plan.qblock, qc = std::min(plan.qblock, m - q0);
            const std::size_t j_begin = s * plan.split_rows;
            const std::size_t j_end = std::min(data.n, j_begin + plan.split_rows);
            if (out.size() < db)
                out.resize(db);
            if (thr.size() < qc)
                thr.resize(qc);
            auto ctx = sink.begin(s, q0, qc, thr.data());
            for (std::size_t j0 = j_begin; j0 < j_end; j0 += db) {
                const std::size_t rows = std::min(db, j_end - j0);
                for (std::size_t c = 0; c < qc; ++c) {
                    K.l2sq_many.fn(q.rows + (q0 + c) * d, data.rows + j0 * d, rows, d, out.data());
                    T t = thr[c];
                    for (std::size_t r = 0; r < rows; ++r)
                        if (out[r] < t)
                            t = sink.hit(ctx, c, out[r], static_cast<index_t>(j0 + r));
                    thr[c] = t;
                }
            }
            sink.end(ctx, s, q0, qc);
        }
    });
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

// ---------------------------------------------------------------------------------------------
// k-NN sink: the kc smallest approximate candidates per query, exact re-rank at the end.

template <typename T> class KnnSink {
  public:
    using Item = typename Candidates<T>::Item;
    /// One task's lists: owned by the task when the data is not split (freed when it ends),
    /// else views of the per-(split, query) lists that outlive the tasks.
    struct Ctx {
        Candidates<T>* lists = nullptr;
        std::vector<Candidates<T>> own_lists;
        std::vector<Item> own_storage;
    };

    /// Results of query i go to output row out_row[i] (i when out_row is null). With `retry`
    /// set, a query whose candidates cannot be separated is flagged there instead of being
    /// answered by the exact scan (the caller rescans it with the direct kernels).
    KnnSink(const Dataset<T>& data, const Queries<T>& q, const Plan& plan, std::size_t k, T* dist,
            index_t* idx, const std::size_t* out_row = nullptr, std::vector<char>* retry = nullptr)
        : data_(data), q_(q), plan_(plan), k_(k), kc_(candidates_for(k, data.n)), dist_(dist),
          idx_(idx), out_row_(out_row), retry_(retry) {
        if (plan.splits > 1) {
            storage_.resize(plan.splits * q.m * 2 * kc_);
            lists_.resize(plan.splits * q.m);
        }
    }

    Ctx begin(std::size_t s, std::size_t q0, std::size_t qc, T* thr) {
        Ctx ctx;
        Item* storage;
        if (plan_.splits == 1) {
            ctx.own_lists.resize(qc);
            ctx.own_storage.resize(qc * 2 * kc_);
            ctx.lists = ctx.own_lists.data();
            storage = ctx.own_storage.data();
        } else {
            ctx.lists = &lists_[s * q_.m + q0];
            storage = &storage_[(s * q_.m + q0) * 2 * kc_];
        }
        for (std::size_t c = 0; c < qc; ++c) {
            ctx.lists[c].init(storage + c * 2 * kc_, kc_);
            thr[c] = ctx.lists[c].bound();
        }
        return ctx;
    }

    T hit(Ctx& ctx, std::size_t c, T v, index_t j) { return ctx.lists[c].offer(v, j); }

    void end(Ctx& ctx, std::size_t, std::size_t q0, std::size_t qc) {
        if (plan_.splits != 1)
            return;
        Exact<T> exact(data_.metric, data_.dim);
        std::vector<Item> cand;
        for (std::size_t c = 0; c < qc; ++c) {
            cand.assign(ctx.lists[c].begin(), ctx.lists[c].end());
            finalize(q0 + c, cand, exact);
        }
    }

    /// Merges the splits' heaps and finalizes (only needed when the data was split).
    void finish(std::size_t threads) {
        if (plan_.splits == 1)
            return;
        const std::size_t m = q_.m;
        parallel_for(m, threads, balanced_grain(m, threads, 8), [&](std::size_t b, std::size_t e) {
            Exact<T> exact(data_.metric, data_.dim);
            std::vector<Item> cand;
            for (std::size_t i = b; i < e; ++i) {
                cand.clear();
                for (std::size_t s = 0; s < plan_.splits; ++s) {
                    const Candidates<T>& list = lists_[s * m + i];
                    cand.insert(cand.end(), list.begin(), list.end());
                }
                finalize(i, cand, exact);
            }
        });
    }

  private:
    void finalize(std::size_t i, std::vector<Item>& cand, Exact<T>& exact) {
        std::sort(cand.begin(), cand.end());
        if (cand.size() > kc_)
            cand.resize(kc_);
        const std::size_t have = cand.size();
        const std::size_t row = out_row_ ? out_row_[i] : i;
        T* od = dist_ + row * k_;
        index_t* oi = idx_ + row * k_;
        exact.set_query(q_.rows + i * data_.dim);
        double limit = std::numeric_limits<double>::infinity();
        const std::size_t kk = std::min(k_, have);
        if (kk > 0) {
            limit = knn_limit(static_cast<double>(cand[kk - 1].first),
                              error_model(data_, q_, i, plan_.direct));
        }
        // Fewer than kc candidates with n > kc: the rows never offered had a NaN or infinite
        // approximate distance (the caller's array changed under the index), never neighbours.
        const bool complete =
            data_.n <= kc_ || have < kc_ || static_cast<double>(cand[kc_ - 1].first) > limit;
        if (!complete && retry_ != nullptr) {
            (*retry_)[i] = 1;
            return;
        }
        const std::size_t kept = std::min(k_, data_.n); // at most n real results
        TopK<double> top(kept);
        if (complete) {
            for (const auto& [v, j] : cand) {
                if (static_cast<double>(v) > limit)
                    break;
                top.push(exact.distance(data_.rows + static_cast<std::size_t>(j) * data_.dim), j);
            }
        } else { // too many near-ties to separate: scan every row exactly
            for (std::size_t j = 0; j < data_.n; ++j)
                top.push(exact.distance(data_.rows + j * data_.dim), static_cast<index_t>(j));
        }
        std::vector<double> d64(kept);
        top.extract_sorted(d64.data(), oi, kept);
        for (std::size_t c = 0; c < kept; ++c)
            od[c] = static_cast<T>(d64[c]);
        for (std::size_t c = kept; c < k_; ++c) {
            od[c] = std::numeric_limits<T>::infinity();
            oi[c] = kNoIndex;
        }
    }

    const Dataset<T>& data_;
    const Queries<T>& q_;
    const Plan& plan_;
    std::size_t k_, kc_;
    T* dist_;
    index_t* idx_;
    const std::size_t* out_row_;
    std::vector<char>* retry_;
    std::vector<Candidates<T>> lists_; // splits x m, only when the data is split
    std::vector<Item> storage_;        // their buffers, 2 kc each
};

// ---------------------------------------------------------------------------------------------
// Radius sink: every row under the query's candidate limit is collected, then checked exactly.

template <typename T> class RadiusSink {
  public:
    using List = std::vector<std::pair<index_t, T>>;
    struct Ctx {
        List* lists;  // the task's queries' lists
        const T* thr; // and their fixed thresholds
    };

    RadiusSink(const Dataset<T>& data, const Queries<T>& q, const Plan& plan, const double* radii)
        : data_(data), q_(q), plan_(plan), radii_(radii), lists_(plan.splits * q.m) {
        thr_.resize(q.m);
        for (std::size_t i = 0; i < q.m; ++i) {
            double r = radii[i];
            if (data.metric == Metric::euclidean) {
                r = r < 0 ? -std::numeric_limits<double>::infinity()
                          : r * r * (1 + 4 * std::numeric_limits<double>::epsilon());
            }
            thr_[i] = threshold_above<T>(radius_limit(r, error_model(data, q, i, plan.direct)));
        }
    }

    Ctx begin(std::size_t s, std::size_t q0, std::size_t qc, T* thr) {
        for (std::size_t c = 0; c < qc; ++c)
            thr[c] = thr_[q0 + c];
        return {&lists_[s * q_.m + q0], thr_.data() + q0};
    }

    T hit(Ctx& ctx, std::size_t c, T v, index_t j) {
        ctx.lists[c].emplace_back(j, v);
        return ctx.thr[c];
    }

    void end(Ctx& ctx, std::size_t, std::size_t q0, std::size_t qc) {
        Exact<T> exact(data_.metric, data_.dim);
        for (std::size_t c = 0; c < qc; ++c) {
            List& list = ctx.lists[c];
            const double r = radii_[q0 + c];
            exact.set_query(q_.rows + (q0 + c) * data_.dim);
            std::size_t kept = 0;
            for (const auto& [j, v] : list) {
                (void)v;
                const double dj =
                    exact.distance(data_.rows + static_cast<std::size_t>(j) * data_.dim);
                if (dj <= r)
                    list[kept++] = {j, static_cast<T>(dj)};
            }
            list.resize(kept);
            list.shrink_to_fit();
        }
    }

    RadiusResult<T> collect(bool sort) {
        RadiusResult<T> res;
        const std::size_t m = q_.m;
        res.indptr.resize(m + 1);
        res.indptr[0] = 0;
        for (std::size_t i = 0; i < m; ++i) {
            std::size_t count = 0;
            for (std::size_t s = 0; s < plan_.splits; ++s)
                count += lists_[s * m + i].size();
            res.indptr[i + 1] = res.indptr[i] + static_cast<index_t>(count);
        }
        const auto total = static_cast<std::size_t>(res.indptr[m]);
        res.indices.resize(total);
        res.distances.resize(total);
        for (std::size_t i = 0; i < m; ++i) {
            auto pos = static_cast<std::size_t>(res.indptr[i]);
            const std::size_t first = pos;
            for (std::size_t s = 0; s < plan_.splits; ++s) {
                auto& list = lists_[s * m + i];
                for (const auto& [j, v] : list) {
                    res.indices[pos] = j;
                    res.distances[pos] = v;
                    ++pos;
                }
                List().swap(list);
            }
            if (sort && pos - first > 1) {
                std::vector<std::pair<T, index_t>> tmp(pos - first);
                for (std::size_t t = 0; t < tmp.size(); ++t)
                    tmp[t] = {res.distances[first + t], res.indices[first + t]};
                std::sort(tmp.begin(), tmp.end());
                for (std::size_t t = 0; t < tmp.size(); ++t) {
                    res.distances[first + t] = tmp[t].first;
                    res.indices[first + t] = tmp[t].second;
                }
            }
        }
        return res;
    }

  private:
    const Dataset<T>& data_;
    const Queries<T>& q_;
    const Plan& plan_;
    const double* radii_;
    std::vector<T> thr_;
    std::vector<List> lists_; // splits x m
};

template <typename T>
RadiusResult<T> radius_batch(const Dataset<T>& data, const T* queries, std::size_t m,
                             const double* radii, bool sort, std::size_t threads, bool direct) {
    const Queries<T> q = prepare_queries(data, queries, m, threads);
    Plan plan = make_plan<T>(m, data.n, data.dim, threads, 0.0);
    plan.direct = plan.direct || direct;
    RadiusSink<T> sink(data, q, plan, radii);
    if (plan.many) {
        run_many(data, q, plan, sink, threads);
    } else if (direct) {
        run_direct(data, q, plan, sink, threads);
    } else {
        run_tiles(data, q, plan, sink, threads);
    }
    return sink.collect(sort);
}

template <typename T> void check_dataset(const Dataset<T>& data) {
    require(data.dim > 0, "dim must be positive");
    require(data.n == 0 || (data.rows != nullptr && data.sqnorms != nullptr),
            "data and norms must be set");
    require(data.metric != Metric::mahalanobis,
            "metric: mahalanobis must be mapped to euclidean before the core");
}

} // namespace

template <typename T> double max_safe_sqnorm() noexcept {
    return static_cast<double>(std::numeric_limits<T>::max()) / 16;
}

template <typename T>
void knn(const Dataset<T>& data, const T* queries, std::size_t m, std::size_t k, T* dist,
         index_t* idx, std::size_t threads) {
    check_dataset(data);
    require(k >= 1, "k must be >= 1");
    if (m == 0)
        return;
    if (data.n == 0) {
        for (std::size_t t = 0; t < m * k; ++t) {
            dist[t] = std::numeric_limits<T>::infinity();
            idx[t] = kNoIndex;
        }
        return;
    }
    const Queries<T> q = prepare_queries(data, queries, m, threads);
    const double heap_bytes =
        2.0 * static_cast<double>(candidates_for(k, data.n)) * sizeof(std::pair<T, index_t>);
    const Plan plan = make_plan<T>(m, data.n, data.dim, threads, heap_bytes);
    // Squared Euclidean by the norm expansion can be too coarse to separate the candidates
    // (rows far from the origin next to their spread): such queries are rescanned below with
    // the direct kernels, whose error is relative to the distance itself.
    const bool rescan = !plan.many && is_l2(data.metric);
    std::vector<char> retry(rescan ? m : 0, 0);
    KnnSink<T> sink(data, q, plan, k, dist, idx, nullptr, rescan ? &retry : nullptr);
    if (plan.many) {
        run_many(data, q, plan, sink, threads);
    } else {
        run_tiles(data, q, plan, sink, threads);
    }
    sink.finish(threads);
    if (!rescan)
        return;
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < m; ++i)
        if (retry[i])
            rows.push_back(i);
    if (rows.empty())
        return;
    std::vector<T> sub(rows.size() * data.dim);
    for (std::size_t r = 0; r < rows.size(); ++r)
        std::copy_n(queries + rows[r] * data.dim, data.dim, sub.data() + r * data.dim);
    Queries<T> q2;
    q2.rows = sub.data();
    q2.m = rows.size();
    for (std::size_t i : rows)
        q2.sqn.push_back(q.sqn[i]);
    Plan direct = make_plan<T>(q2.m, data.n, data.dim, threads, heap_bytes);
    direct.direct = true;
    KnnSink<T> exact_sink(data, q2, direct, k, dist, idx, rows.data());
    if (direct.many) {
        run_many(data, q2, direct, exact_sink, threads);
    } else {
        run_direct(data, q2, direct, exact_sink, threads);
    }
    exact_sink.finish(threads);
}

template <typename T>
RadiusResult<T> radius(const Dataset<T>& data, const T* queries, std::size_t m, const double* radii,
                       bool sort, std::size_t threads) {
    check_dataset(data);
    for (std::size_t i = 0; i < m; ++i)
        require(!std::isnan(radii[i]), "r must not be NaN");
    if (m == 0 || data.n == 0) {
        RadiusResult<T> empty;
        empty.indptr.assign(m + 1, 0);
        return empty;
    }
    if (!is_l2(data.metric) || m <= kManyMaxQueries)
        return radius_batch(data, queries, m, radii, sort, threads, false);
    // The norm expansion's error is known before the scan: where it is not small next to the
    // radius (rows far from the origin in float32), the direct engine is used for that query
    // instead of collecting a flood of candidates to check in float64.
    std::vector<T> sqn(m);
    squared_norms(queries, m, data.dim, sqn.data(), threads);
    std::vector<char> direct(m, 0);
    std::size_t n_direct = 0;
    for (std::size_t i = 0; i < m; ++i) {
        double r = std::max(0.0, radii[i]);
        if (data.metric == Metric::euclidean)
            r *= r;
        const double band =
            identity_l2_error<T>(static_cast<double>(sqn[i]), data.max_sqnorm, data.dim).abs;
        direct[i] = band > kDirectRadiusRatio * r;
        n_direct += direct[i] ? 1 : 0;
    }
    if (n_direct == 0 || n_direct == m)
        return radius_batch(data, queries, m, radii, sort, threads, n_direct == m);
    RadiusResult<T> part[2];
    std::vector<std::size_t> rows[2];
    for (int which = 0; which < 2; ++which) {
        std::vector<T> sub;
        std::vector<double> sub_r;
        for (std::size_t i = 0; i < m; ++i) {
            if (static_cast<int>(direct[i] != 0) != which)
                continue;
            rows[which].push_back(i);
            sub.insert(sub.end(), queries + i * data.dim, queries + (i + 1) * data.dim);
            sub_r.push_back(radii[i]);
        }
        part[which] = radius_batch(data, sub.data(), rows[which].size(), sub_r.data(), sort,
                                   threads, which == 1);
    }
    RadiusResult<T> res;
    res.indptr.assign(m + 1, 0);
    std::size_t next[2] = {0, 0};
    for (std::size_t i = 0; i < m; ++i) {
        const int which = direct[i] ? 1 : 0;
        const std::size_t r = next[which]++;
        const auto& src = part[which];
        const auto b = static_cast<std::size_t>(src.indptr[r]);
        const auto e = static_cast<std::size_t>(src.indptr[r + 1]);
        res.indices.insert(res.indices.end(), src.indices.begin() + b, src.indices.begin() + e);
        res.distances.insert(res.distances.end(), src.distances.begin() + b,
                             src.distances.begin() + e);
        res.indptr[i + 1] = res.indptr[i] + static_cast<index_t>(e - b);
    }
    return res;
}

#define PYSIM_INSTANTIATE(T)                                                                       \
    template void knn<T>(const Dataset<T>&, const T*, std::size_t, std::size_t, T*, index_t*,      \
                         std::size_t);                                                             \
    template RadiusResult<T> radius<T>(const Dataset<T>&, const T*, std::size_t, const double*,    \
                                       bool, std::size_t);                                         \
    template double max_safe_sqnorm<T>() noexcept;
PYSIM_INSTANTIATE(float)
PYSIM_INSTANTIATE(double)
#undef PYSIM_INSTANTIATE

} // namespace pysim::brute
