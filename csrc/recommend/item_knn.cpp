// ItemKNN similarity rows and EASE's dense Gram matrix / weights (see recommend.hpp).
//
// Both products walk item i's users, and each user's items, into a float64 accumulator that
// belongs to the worker's chunk; only the touched columns are read back and cleared. The
// top-k of a row is taken from the touched columns alone, so a row costs O(co-occurrences +
// touched log k). Chunks are small (a few dozen rows) to keep Ctrl-C responsive.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "recommend/csr_check.hpp"
#include "recommend/recommend.hpp"

namespace pysim::recommend {

namespace {

// Accumulates rows of `user_items` weighted by item i's users into acc; `touched[0, count)`
// are the columns hit. Branch-free bookkeeping: every column is written to the next touched
// slot, and the slot is kept (count advances) only on its first hit, so the unpredictable
// "first time?" test costs no misprediction.
struct RowProduct {
    std::vector<double> acc;
    std::vector<std::uint8_t> mark;
    std::vector<std::int32_t> touched;
    std::size_t count = 0;

    explicit RowProduct(std::size_t n) : acc(n, 0.0), mark(n, 0), touched(n + 1) {}

    void run(const Csr<double>& item_users, const Csr<double>& user_items, std::size_t i) {
        std::size_t cnt = 0;
        double* a = acc.data();
        std::uint8_t* mk = mark.data();
        std::int32_t* t = touched.data();
        for (std::int64_t p = item_users.indptr[i]; p < item_users.indptr[i + 1]; ++p) {
            const std::int32_t u = item_users.indices[p];
            const double w = item_users.data[p];
            const std::int32_t* cols = user_items.indices;
            const double* vals = user_items.data;
            for (std::int64_t q = user_items.indptr[u]; q < user_items.indptr[u + 1]; ++q) {
                const std::int32_t j = cols[q];
                t[cnt] = j;
                cnt += static_cast<std::size_t>(1u - mk[j]);
                mk[j] = 1;
                a[j] += w * vals[q];
            }
        }
        count = cnt;
    }

    /// Calls f(j, acc[j]) for each touched column, clearing it.
    template <typename F> void drain(F&& f) {
        for (std::size_t c = 0; c < count; ++c) {
            const std::int32_t j = touched[c];
            const double v = acc[j];
            acc[j] = 0.0;
            mark[j] = 0;
            f(j, v);
        }
        count = 0;
    }
};

// Top-k selection of a row's candidates (similarity > 0), largest first, ties to the smaller
// column: a total order, so the kept set is unique. A quickselect over ~2,000 candidates per
// row mispredicts a branch per element and per pass; instead one branch-free pass builds a
// histogram over the top bits of the float32-rounded value (a monotone map, so bucket order
// is value order), the bucket holding the k-th value is found from the top, one branch-free
// pass keeps the candidates from that bucket up, and only those (about k) go to nth_element.
constexpr std::size_t kBuckets = 4096;

inline std::uint32_t bucket_of(double v) {
    const float f = static_cast<float>(v);
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return (bits >> 19) & (kBuckets - 1); // positive values: 8 exponent + 4 mantissa bits
}

using Cand = std::pair<double, std::int32_t>;

// `hist` holds the bucket counts of cand[0, count) (built while the candidates were made);
// leaves it zeroed, and the top k in cand[0, return value).
std::size_t select_top(Cand* cand, std::size_t count, std::size_t k,
                       std::vector<std::uint32_t>& hist, Cand* tmp) {
    if (count <= k) {
        for (std::size_t c = 0; c < count; ++c)
            hist[bucket_of(cand[c].first)] = 0;
        return count;
    }
    std::size_t b = kBuckets - 1, seen = 0;
    for (;; --b) {
        seen += hist[b];
        if (seen >= k || b == 0)
            break;
    }
    std::size_t w = 0;
    for (std::size_t c = 0; c < count; ++c) {
        const std::uint32_t bucket = bucket_of(cand[c].first);
        hist[bucket] = 0;
        tmp[w] = cand[c];
        w += static_cast<std::size_t>(bucket >= b);
    }
    auto better = [](const Cand& x, const Cand& y) {
        return x.first > y.first || (x.first == y.first && x.second < y.second);
    };
    if (w > k) {
        std::nth_element(tmp, tmp + k, tmp + w, better);
        w = k;
    }
    std::copy(tmp, tmp + w, cand);
    return w;
}

void check_pair(const Csr<double>& item_users, const Csr<double>& user_items) {
    check_csr(item_users, "item_users");
    check_csr(user_items, "user_items");
    require(item_users.rows == user_items.cols && item_users.cols == user_items.rows,
            "item_users must be the transpose of user_items");
}

} // namespace

SparseRows knn_similarity(const Csr<double>& item_users, const Csr<double>& user_items,
                          const double* sq_norms, const KnnParams& params, std::size_t begin,
                          std::size_t end, std::size_t threads) {
    check_pair(item_users, user_items);
    const std::size_t n = item_users.rows;
    require(begin <= end && end <= n, "rows [begin, end) out of range");
    require(params.k >= 1, "n_neighbors must be >= 1");
    require(params.shrinkage >= 0.0, "shrinkage must be >= 0");
    require(params.alpha >= 0.0 && params.alpha <= 1.0, "alpha must be in [0, 1]");
    const std::size_t rows = end - begin;
    const std::size_t k = std::min(params.k, n);
    std::vector<std::vector<std::pair<std::int32_t, float>>> out(rows);

    // Per-item factors of the denominators, computed once (the same values as inline).
    std::vector<double> fi(n, 1.0), fj(n, 1.0);
    for (std::size_t j = 0; j < n; ++j) {
        if (params.norm == Norm::cosine) {
            fi[j] = fj[j] = std::sqrt(sq_norms[j]);
        } else if (params.norm == Norm::asymmetric) {
            fi[j] = std::pow(sq_norms[j], params.alpha);
            fj[j] = std::pow(sq_norms[j], 1.0 - params.alpha);
        }
    }
    const Norm norm = params.norm;
    const double shrink = params.shrinkage;

    const std::size_t grain = balanced_grain(rows, threads, 8, 64);
    parallel_for(rows, threads, grain, [&](std::size_t b, std::size_t e) {
        RowProduct prod(n);
        std::vector<Cand> cand(n + 1), tmp(n + 1);
        std::vector<std::uint32_t> hist(kBuckets, 0);
        for (std::size_t r = b; r < e; ++r) {
            const std::size_t i = begin + r;
            prod.run(item_users, user_items, i);
            const double si = fi[i], sqi = sq_norms[i];
            std::size_t w = 0;
            Cand* cp = cand.data();
            std::uint32_t* hp = hist.data();
            // Branch-free: every candidate is written, kept (w advances) only when its
            // similarity is positive and finite; its histogram bucket is counted likewise.
            prod.drain([&](std::int32_t j, double dot) {
                double denom = 1.0;
                if (norm == Norm::cosine || norm == Norm::asymmetric)
                    denom = si * fj[j];
                else if (norm == Norm::jaccard)
                    denom = sqi + sq_norms[j] - dot;
                denom += shrink;
                const double s = denom > 0.0 ? dot / denom : 0.0;
                const bool keep = s > 0.0 && s <= std::numeric_limits<double>::max() &&
                                  static_cast<std::size_t>(j) != i;
                cp[w] = {s, j};
                hp[bucket_of(keep ? s : 0.0)] += static_cast<std::uint32_t>(keep);
                w += static_cast<std::size_t>(keep);
            });
            const std::size_t kept = select_top(cp, w, k, hist, tmp.data());
            std::sort(cp, cp + kept,
                      [](const Cand& x, const Cand& y) { return x.second < y.second; });
            auto& row = out[r];
            row.reserve(kept);
            for (std::size_t c = 0; c < kept; ++c)
                row.emplace_back(cp[c].second, static_cast<float>(cp[c].first));
        }
    });

    SparseRows res;
    res.indptr.resize(rows + 1);
    res.indptr[0] = 0;
    for (std::size_t r = 0; r < rows; ++r)
        res.indptr[r + 1] = res.indptr[r] + static_cast<std::int64_t>(out[r].size());
    const auto nnz = static_cast<std::size_t>(res.indptr[rows]);
    res.indices.resize(nnz);
    res.data.resize(nnz);
    for (std::size_t r = 0; r < rows; ++r) {
        auto pos = static_cast<std::size_t>(res.indptr[r]);
        for (const auto& [j, s] : out[r]) {
            res.indices[pos] = j;
            res.data[pos] = s;
            ++pos;
        }
        std::vector<std::pair<std::int32_t, float>>().swap(out[r]);
    }
    return res;
}

void gram_dense(const Csr<double>& item_users, const Csr<double>& user_items, float* out,
                std::size_t threads) {
    check_pair(item_users, user_items);
    const std::size_t n = item_users.rows;
    parallel_for(n, threads, balanced_grain(n, threads, 8, 64), [&](std::size_t b, std::size_t e) {
        RowProduct prod(n);
        for (std::size_t i = b; i < e; ++i) {
            float* row = out + i * n;
            std::fill(row, row + n, 0.0f);
            prod.run(item_users, user_items, i);
            prod.drain([&](std::int32_t j, double v) { row[j] = static_cast<float>(v); });
        }
    });
}

void ease_weights(float* p, std::size_t n, bool upper, std::size_t threads) {
    constexpr std::size_t kTile = 64;
    // Mirror the valid triangle tile by tile: tile (bi, bj) with bi < bj is copied into its
    // transpose (bj, bi); each task owns whole tile rows of the destination triangle.
    const std::size_t tiles = (n + kTile - 1) / kTile;
    parallel_for(tiles, threads, 1, [&](std::size_t tb, std::size_t te) {
        for (std::size_t ti = tb; ti < te; ++ti) {
            for (std::size_t tj = ti; tj < tiles; ++tj) {
                const std::size_t i0 = ti * kTile, i1 = std::min(n, i0 + kTile);
                const std::size_t j0 = tj * kTile, j1 = std::min(n, j0 + kTile);
                for (std::size_t i = i0; i < i1; ++i)
                    for (std::size_t j = std::max(j0, i + 1); j < j1; ++j) {
                        if (upper)
                            p[j * n + i] = p[i * n + j];
                        else
                            p[i * n + j] = p[j * n + i];
                    }
            }
        }
    });
    std::vector<float> diag(n);
    for (std::size_t j = 0; j < n; ++j) {
        diag[j] = p[j * n + j];
        require(diag[j] > 0.0f, "the regularised Gram matrix is not positive definite");
    }
    parallel_for(n, threads, balanced_grain(n, threads, 16, 256),
                 [&](std::size_t b, std::size_t e) {
                     for (std::size_t i = b; i < e; ++i) {
                         float* row = p + i * n;
                         for (std::size_t j = 0; j < n; ++j)
                             row[j] = -row[j] / diag[j];
                         row[i] = 0.0f;
                     }
                 });
}

} // namespace pysim::recommend
