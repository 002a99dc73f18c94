// Exact radius search of the brute-force index (brute_force.hpp): the engine's scans
// (scan.hpp) collect every row whose approximate distance is under the query's limit (the
// radius widened by the error bound), and each is then checked in float64 (exact_rerank.hpp).
// Queries whose norm-expansion bound is wide next to their radius go to the direct engine.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "brute/brute_force.hpp"
#include "brute/exact_rerank.hpp"
#include "brute/scan.hpp"
#include "common/errors.hpp"

namespace pysim::brute {
namespace {

using namespace detail; // NOLINT: the brute-force search's internal helpers

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
        scan_many(data, q, plan, sink, threads);
    } else if (direct) {
        scan_direct(data, q, plan, sink, threads);
    } else {
        scan_tiles(data, q, plan, sink, threads);
    }
    return sink.collect(sort);
}

} // namespace

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
    template RadiusResult<T> radius<T>(const Dataset<T>&, const T*, std::size_t, const double*,    \
                                       bool, std::size_t);
PYSIM_INSTANTIATE(float)
PYSIM_INSTANTIATE(double)
#undef PYSIM_INSTANTIATE

} // namespace pysim::brute
