// ItemKNN similarity rows and EASE's dense Gram matrix / weights (see recommend.hpp).
//
// Both products walk item i's users, and each user's items, into a float64 accumulator that
// belongs to the worker's chunk; only the touched columns are read back and cleared. The
// top-k of a row is taken from the touched columns alone, so a row costs O(co-occurrences +
// touched log k). Chunks are small (a few dozen rows) to keep Ctrl-C responsive.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "common/topk.hpp"
#include "recommend/csr_check.hpp"
#include "recommend/recommend.hpp"

namespace pysim::recommend {

namespace {

// Accumulates rows of `user_items` weighted by item i's users into acc; returns touched cols.
struct RowProduct {
    std::vector<double> acc;
    std::vector<std::uint8_t> mark;
    std::vector<std::int32_t> touched;

    explicit RowProduct(std::size_t n) : acc(n, 0.0), mark(n, 0) {}

    void run(const Csr<double>& item_users, const Csr<double>& user_items, std::size_t i) {
        touched.clear();
        for (std::int64_t p = item_users.indptr[i]; p < item_users.indptr[i + 1]; ++p) {
            const std::int32_t u = item_users.indices[p];
            const double w = item_users.data[p];
            for (std::int64_t q = user_items.indptr[u]; q < user_items.indptr[u + 1]; ++q) {
                const std::int32_t j = user_items.indices[q];
                if (!mark[j]) {
                    mark[j] = 1;
                    touched.push_back(j);
                }
                acc[j] += w * user_items.data[q];
            }
        }
    }

    void clear() {
        for (std::int32_t j : touched) {
            acc[j] = 0.0;
            mark[j] = 0;
        }
        touched.clear();
    }
};

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

    auto similarity = [&](std::size_t i, std::size_t j, double dot) {
        double denom = 1.0;
        switch (params.norm) {
        case Norm::none:
            break;
        case Norm::cosine:
            denom = std::sqrt(sq_norms[i]) * std::sqrt(sq_norms[j]);
            break;
        case Norm::asymmetric:
            denom = std::pow(sq_norms[i], params.alpha) * std::pow(sq_norms[j], 1.0 - params.alpha);
            break;
        case Norm::jaccard:
            denom = sq_norms[i] + sq_norms[j] - dot;
            break;
        }
        denom += params.shrinkage;
        return denom > 0.0 ? dot / denom : 0.0;
    };

    const std::size_t grain = balanced_grain(rows, threads, 8, 64);
    parallel_for(rows, threads, grain, [&](std::size_t b, std::size_t e) {
        RowProduct prod(n);
        TopK<double> top(k);
        std::vector<std::pair<double, index_t>> kept;
        for (std::size_t r = b; r < e; ++r) {
            const std::size_t i = begin + r;
            prod.run(item_users, user_items, i);
            for (std::int32_t j : prod.touched) {
                if (static_cast<std::size_t>(j) == i)
                    continue;
                const double s = similarity(i, static_cast<std::size_t>(j), prod.acc[j]);
                if (s != 0.0 && std::isfinite(s))
                    top.push(-s, j);
            }
            prod.clear();
            kept.assign(top.items().begin(), top.items().end());
            top.reset();
            std::sort(kept.begin(), kept.end(),
                      [](const auto& x, const auto& y) { return x.second < y.second; });
            auto& row = out[r];
            row.reserve(kept.size());
            for (const auto& [neg, j] : kept)
                row.emplace_back(static_cast<std::int32_t>(j), static_cast<float>(-neg));
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
            for (std::int32_t j : prod.touched)
                row[j] = static_cast<float>(prod.acc[j]);
            prod.clear();
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
