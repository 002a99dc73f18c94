// recommend(): scoring and top-N selection fused per user (see recommend.hpp).
//
// A batch never materialises its (n_users, n_items) score matrix: each worker chunk owns one
// float64 accumulator of n_items, fills it from the user's interactions (the neighbour lists
// of the seen items for a sparse similarity, whole rows for EASE's dense weights), and feeds
// the candidates straight into a bounded heap. Seen items are marked in a per-chunk byte mask
// that is set and cleared with the user's row, so exclusion costs O(row length).
#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "common/topk.hpp"
#include "common/types.hpp"
#include "recommend/csr_check.hpp"
#include "recommend/recommend.hpp"

namespace pysim::recommend {

void recommend(const Scorer& scorer, const Csr<double>& users, const std::uint8_t* banned,
               bool exclude_seen, std::size_t n, float* scores, std::int64_t* ids,
               std::size_t threads) {
    const std::size_t n_items = scorer.n_items;
    check_csr(users, "user_items");
    require(users.cols == n_items, "user_items must have one column per item");
    require(n >= 1, "N must be >= 1");
    if (scorer.dense == nullptr) {
        // Row pointers here (O(n_items)); column numbers where they are read (a predictable
        // branch), so a one-user call does not pay a scan of the whole similarity.
        const Csr<float>& s = scorer.sparse;
        require(s.rows == n_items && s.cols == n_items, "similarity must be (n_items, n_items)");
        require(s.indptr[0] == 0, "similarity: indptr must start at 0");
        for (std::size_t r = 0; r < n_items; ++r)
            require(s.indptr[r] <= s.indptr[r + 1], "similarity: indptr must be non-decreasing");
    }
    // Dense weights: item id -> row of the weights (-1 for an item without any), and the
    // items without weights, which score 0 for every user with a history.
    std::vector<std::int32_t> position, inactive;
    if (scorer.dense != nullptr) {
        position.assign(n_items, -1);
        for (std::size_t a = 0; a < scorer.n_active; ++a) {
            const std::int32_t j = scorer.active[a];
            require(j >= 0 && static_cast<std::size_t>(j) < n_items &&
                        (a == 0 || scorer.active[a - 1] < j),
                    "active must be ascending item ids");
            position[j] = static_cast<std::int32_t>(a);
        }
        for (std::size_t j = 0; j < n_items; ++j)
            if (position[j] < 0)
                inactive.push_back(static_cast<std::int32_t>(j));
    }
    const std::size_t m = users.rows;
    const std::size_t k = std::min(n, n_items);
    const std::size_t grain = balanced_grain(m, threads, 4, 64);
    parallel_for(m, threads, grain, [&](std::size_t b, std::size_t e) {
        std::vector<double> acc(n_items, 0.0);
        std::vector<std::uint8_t> mark(n_items, 0); // bit 0: touched, bit 1: seen
        std::vector<std::int32_t> touched(n_items + 1);
        TopK<double> top(k);
        std::vector<double> out_d(k);
        std::vector<index_t> out_i(k);
        for (std::size_t u = b; u < e; ++u) {
            const std::int64_t r0 = users.indptr[u], r1 = users.indptr[u + 1];
            for (std::int64_t p = r0; p < r1; ++p)
                mark[users.indices[p]] |= 2;
            auto offer = [&](std::size_t j, double score) {
                if (mark[j] & 2 && exclude_seen)
                    return;
                if (banned != nullptr && banned[j])
                    return;
                top.push(-score, static_cast<index_t>(j));
            };
            if (scorer.dense != nullptr) {
                if (r1 > r0) {
                    const std::size_t na = scorer.n_active;
                    for (std::int64_t p = r0; p < r1; ++p) {
                        const std::int32_t row_of = position[users.indices[p]];
                        if (row_of < 0)
                            continue;
                        const double w = users.data[p];
                        const float* row = scorer.dense + static_cast<std::size_t>(row_of) * na;
                        for (std::size_t a = 0; a < na; ++a)
                            acc[a] += w * static_cast<double>(row[a]);
                    }
                    for (std::size_t a = 0; a < na; ++a)
                        offer(static_cast<std::size_t>(scorer.active[a]), acc[a]);
                    for (std::int32_t j : inactive)
                        offer(static_cast<std::size_t>(j), 0.0);
                    std::fill(acc.begin(), acc.begin() + static_cast<std::ptrdiff_t>(na), 0.0);
                }
            } else {
                // Branch-free first-touch bookkeeping, as in item_knn.cpp's RowProduct.
                // Pointers and bounds in locals: through the Csr struct the compiler reloaded
                // them after every store (they might alias the accumulator).
                const std::int64_t* const sp = scorer.sparse.indptr;
                const std::int32_t* const sj = scorer.sparse.indices;
                const float* const sv = scorer.sparse.data;
                const auto n_cols = static_cast<std::uint32_t>(n_items);
                std::size_t cnt = 0;
                double* __restrict a = acc.data();
                std::uint8_t* __restrict mk = mark.data();
                std::int32_t* __restrict t = touched.data();
                for (std::int64_t p = r0; p < r1; ++p) {
                    const double w = users.data[p];
                    const std::int32_t i = users.indices[p];
                    const std::int64_t q0 = sp[i], q1 = sp[i + 1];
                    for (std::int64_t q = q0; q < q1; ++q) {
                        const std::int32_t j = sj[q];
                        if (static_cast<std::uint32_t>(j) >= n_cols)
                            throw std::invalid_argument("similarity: column index out of range");
                        t[cnt] = j;
                        cnt += static_cast<std::size_t>(1u - (mk[j] & 1u));
                        mk[j] |= 1;
                        a[j] += w * static_cast<double>(sv[q]);
                    }
                }
                // One pass offers and clears; a candidate scoring below the heap's current
                // k-th (its negated score above worst(): no tie, so it cannot enter) is
                // dropped before the seen / banned look-ups.
                for (std::size_t c = 0; c < cnt; ++c) {
                    const std::int32_t j = t[c];
                    const double score = a[j];
                    a[j] = 0.0;
                    mk[j] &= static_cast<std::uint8_t>(~1u);
                    if (-score > top.worst())
                        continue;
                    offer(static_cast<std::size_t>(j), score);
                }
            }
            for (std::int64_t p = r0; p < r1; ++p)
                mark[users.indices[p]] = 0;
            top.extract_sorted(out_d.data(), out_i.data(), k);
            float* srow = scores + u * n;
            std::int64_t* irow = ids + u * n;
            for (std::size_t c = 0; c < n; ++c) {
                const bool have = c < k && out_i[c] != kNoIndex;
                srow[c] =
                    have ? static_cast<float>(-out_d[c]) : -std::numeric_limits<float>::infinity();
                irow[c] = have ? out_i[c] : kNoIndex;
            }
        }
    });
}

} // namespace pysim::recommend
