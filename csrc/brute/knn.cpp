// Exact k-NN of the brute-force index (brute_force.hpp): the engine's scans (scan.hpp) feed
// per-query candidate buffers, the kc smallest approximate distances; a query whose buffer
// the error bound separates is re-ranked exactly in float64 from those few candidates, a
// query whose L2 candidates the norm expansion could not separate is rescanned with the
// direct kernels, and heavy ties fall back to an exact scan (exact_rerank.hpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "brute/brute_force.hpp"
#include "brute/exact_rerank.hpp"
#include "brute/scan.hpp"
#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "common/topk.hpp"

namespace pysim::brute {
namespace {

using namespace detail; // NOLINT: the brute-force search's internal helpers

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
        scan_many(data, q, plan, sink, threads);
    } else {
        scan_tiles(data, q, plan, sink, threads);
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
        scan_many(data, q2, direct, exact_sink, threads);
    } else {
        scan_direct(data, q2, direct, exact_sink, threads);
    }
    exact_sink.finish(threads);
}

#define PYSIM_INSTANTIATE(T)                                                                       \
    template void knn<T>(const Dataset<T>&, const T*, std::size_t, std::size_t, T*, index_t*,      \
                         std::size_t);                                                             \
    template double max_safe_sqnorm<T>() noexcept;
PYSIM_INSTANTIATE(float)
PYSIM_INSTANTIATE(double)
#undef PYSIM_INSTANTIATE

} // namespace pysim::brute
