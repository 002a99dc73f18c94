// ItemKNN similarity rows and EASE's dense Gram matrix / weights (see recommend.hpp).
//
// Both products walk item i's users, and each user's items, into an accumulator that belongs
// to the worker thread (thread_local scratch, reused across chunks and calls: a fresh ~0.4 MB
// per chunk was served by mmap, so every chunk paid page faults); only the touched columns
// are read back. The top-k of a row is taken from the touched columns alone, so a row costs
// O(co-occurrences + touched). The candidate passes only read the accumulator (their one
// store per candidate is the survivor's column); it is cleared once per row, by a memset when
// the row touched much of it (clear_row): clearing inside the first pass, with a copy of the
// values for a second try, cost two more stores per candidate (callgrind, MovieLens-small
// cosine: -12% instructions in the row pass).
//
// Three accumulation kernels, chosen by the caller's data (profiled on MovieLens-small, one
// thread: the inner loop is ~30% of a fit, the candidate pass and top-k the rest; Python's
// own work in fit is ~2 ms):
//   - counts: a 0/1 interaction pattern without weights (cosine, jaccard, ... on implicit
//     feedback): integer counts, uint16 when no item has more than 65,535 users, so the
//     accumulator of 10k items fits in L1 and the inner loop has no multiply and no value load;
//   - user weights: a pattern whose weights factor as f_i * g_u (TF-IDF and BM25 of 0/1
//     data): dot(i, j) = f_i f_j sum_u c_u over the common users, c_u = g_u^2 one add each;
//   - general: float64 w_ui * w_uj products.
// Top-k of a row (largest first, ties to the smaller column: a total order, so the kept set
// is unique and independent of threads): a threshold guessed from 64 sampled candidates lets
// one branch-free pass keep about 2k of the ~2,000 candidates, and nth_element picks the k
// (a histogram pass plus a second pass over every candidate cost a third more instructions).
// That pass divides nothing: it compares dot >= T' * denominator, T' a hair below T, so it
// keeps a superset of the columns whose rounded similarity reaches T, and only those few get
// the exact division (a divide per candidate was most of the pass's time). The kept row is
// put in column order through a bitset of the columns (a 9,724-column row: 152 words to scan,
// cheaper than sorting 100 keys); wide catalogues fall back to the sort. A branch-free
// quickselect in place of nth_element removed its branch misses but cost more instructions
// than they did (callgrind, MovieLens-small), so nth_element stays.
// A column is "first touched" when its accumulator is still zero: every addition is strictly
// positive (counts, c_u > 0, products clamped below at the smallest denormal), so a sum never
// returns to zero and no separate mark array is needed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "recommend/csr_check.hpp"
#include "recommend/recommend.hpp"

#if defined(_MSC_VER)
#include <intrin.h>
#endif

namespace pysim::recommend {

namespace {

// Index of the lowest set bit of a non-zero word.
inline unsigned ctz64(std::uint64_t m) {
#if defined(_MSC_VER)
    unsigned long idx;
    _BitScanForward64(&idx, m);
    return static_cast<unsigned>(idx);
#else
    return static_cast<unsigned>(__builtin_ctzll(m));
#endif
}

// Accumulates rows of `user_items` weighted by item i's users into acc; `touched[0, count)`
// are the columns hit (EASE's Gram matrix; the float64 general kernel).
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
        const std::int64_t* uip = user_items.indptr;
        const std::int32_t* cols = user_items.indices;
        const double* vals = user_items.data;
        for (std::int64_t p = item_users.indptr[i]; p < item_users.indptr[i + 1]; ++p) {
            const std::int32_t u = item_users.indices[p];
            const double w = item_users.data[p];
            const std::int64_t q0 = uip[u], q1 = uip[u + 1];
            for (std::int64_t q = q0; q < q1; ++q) {
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

using Cand = std::pair<double, std::int32_t>;

void check_pair(const Csr<double>& item_users, const Csr<double>& user_items) {
    check_csr(item_users, "item_users");
    check_csr(user_items, "user_items");
    require(item_users.rows == user_items.cols && item_users.cols == user_items.rows,
            "item_users must be the transpose of user_items");
}

// Per-thread scratch of knn_similarity. Invariant between rows: every accumulator entry is
// zero; `clean` is false only while a row is in flight, so scratch left
// dirty by an exception (bad_alloc) is zeroed before its next use.
struct Scratch {
    std::vector<double> acc;
    std::vector<std::uint32_t> cnt32;
    std::vector<std::uint16_t> cnt16;
    std::vector<std::int32_t> touched;
    std::vector<Cand> cand;
    std::vector<Cand> cand2;         // the candidates left by the second threshold
    std::vector<std::uint32_t> pos;  // the prefilter's surviving columns
    std::vector<std::uint64_t> bits; // one bit per column, all zero between rows
    std::vector<float> vals;         // the kept similarities by column (bits set only)
    bool clean = true;

    void prepare(std::size_t n) {
        if (!clean) {
            std::fill(acc.begin(), acc.end(), 0.0);
            std::fill(cnt32.begin(), cnt32.end(), 0u);
            std::fill(cnt16.begin(), cnt16.end(), std::uint16_t{0});
            std::fill(bits.begin(), bits.end(), std::uint64_t{0});
            clean = true;
        }
        if (touched.size() < n + 1) {
            touched.resize(n + 1);
            cand.resize(n + 1);
            cand2.resize(n + 1);
            pos.resize(n + 1);
        }
        bits.assign((n + 63) / 64, 0);
        if (vals.size() < n)
            vals.resize(n);
    }
    template <typename A> A* grow(std::vector<A>& v, std::size_t n) {
        if (v.size() < n)
            v.resize(n, A{0});
        return v.data();
    }
};

thread_local Scratch tls_scratch;

enum class Kernel : std::uint8_t { counts16, counts32, user_weights, general };

// Fills acc with row i of the product and touched[0, return) with its columns (see top).
template <Kernel K, typename A>
std::size_t accumulate(const Csr<double>& iu, const Csr<double>& ui, const double* user_weight,
                       std::size_t i, A* __restrict a, std::int32_t* __restrict t) {
    std::size_t cnt = 0;
    const std::int64_t* uip = ui.indptr;
    const std::int32_t* cols = ui.indices;
    const std::int64_t p0 = iu.indptr[i], p1 = iu.indptr[i + 1];
    for (std::int64_t p = p0; p < p1; ++p) {
        const std::int32_t u = iu.indices[p];
        const std::int32_t* c = cols + uip[u];
        const std::int32_t* const e = cols + uip[u + 1];
        if constexpr (K == Kernel::counts16 || K == Kernel::counts32) {
            // Four columns at a time, all loaded before any store: a user's columns are
            // distinct (check_csr), so the four updates never alias.
            for (; e - c >= 4; c += 4) {
                const std::int32_t j0 = c[0], j1 = c[1], j2 = c[2], j3 = c[3];
                const A v0 = a[j0], v1 = a[j1], v2 = a[j2], v3 = a[j3];
                t[cnt] = j0;
                cnt += static_cast<std::size_t>(v0 == 0);
                t[cnt] = j1;
                cnt += static_cast<std::size_t>(v1 == 0);
                t[cnt] = j2;
                cnt += static_cast<std::size_t>(v2 == 0);
                t[cnt] = j3;
                cnt += static_cast<std::size_t>(v3 == 0);
                a[j0] = static_cast<A>(v0 + 1);
                a[j1] = static_cast<A>(v1 + 1);
                a[j2] = static_cast<A>(v2 + 1);
                a[j3] = static_cast<A>(v3 + 1);
            }
            for (; c != e; ++c) {
                const std::int32_t j = *c;
                t[cnt] = j;
                cnt += static_cast<std::size_t>(a[j] == 0);
                a[j] = static_cast<A>(a[j] + 1);
            }
        } else if constexpr (K == Kernel::user_weights) {
            const double cu = user_weight[u];
            // The counts branch's four-wide unroll with a double increment (duplicates pairs
            // them by shape): element type and increment differ, and each is its kernel's
            // hot loop, so neither goes through a shared helper with a branch inside.
            for (; e - c >= 4; c += 4) {
                const std::int32_t j0 = c[0], j1 = c[1], j2 = c[2], j3 = c[3];
                const double v0 = a[j0], v1 = a[j1], v2 = a[j2], v3 = a[j3];
                t[cnt] = j0;
                cnt += static_cast<std::size_t>(v0 == 0.0);
                t[cnt] = j1;
                cnt += static_cast<std::size_t>(v1 == 0.0);
                t[cnt] = j2;
                cnt += static_cast<std::size_t>(v2 == 0.0);
                t[cnt] = j3;
                cnt += static_cast<std::size_t>(v3 == 0.0);
                a[j0] = v0 + cu;
                a[j1] = v1 + cu;
                a[j2] = v2 + cu;
                a[j3] = v3 + cu;
            }
            for (; c != e; ++c) {
                const std::int32_t j = *c;
                t[cnt] = j;
                cnt += static_cast<std::size_t>(a[j] == 0.0);
                a[j] += cu;
            }
        } else {
            const double w = iu.data[p];
            const double* v = ui.data + uip[u];
            constexpr double tiny = std::numeric_limits<double>::denorm_min();
            for (; c != e; ++c, ++v) {
                const std::int32_t j = *c;
                t[cnt] = j;
                cnt += static_cast<std::size_t>(a[j] == 0.0);
                a[j] += std::max(w * *v, tiny);
            }
        }
    }
    return cnt;
}

// Zeroes the accumulator after a row: column by column through the touched list, or one
// memset of the whole accumulator when the row touched more than one column per 32 bytes of
// it (memset writes ~32 bytes a cycle, a scattered store costs about a cycle: a wide row of
// a 10k-item catalogue clears 20 KB of uint16 in a few hundred cycles, not thousands).
template <typename A>
void clear_row(A* __restrict a, const std::int32_t* __restrict t, std::size_t cnt, std::size_t n) {
    if (n * sizeof(A) <= 32 * cnt) {
        std::memset(a, 0, n * sizeof(A));
    } else {
        for (std::size_t c = 0; c < cnt; ++c)
            a[t[c]] = A{0};
    }
}

struct RowContext {
    const double* sq_norms;
    const double* fi;          // per item: the row factor of the denominator
    const double* fj;          // per item: the column factor of the denominator
    const double* item_factor; // f_i of the user-weights kernel, or null
    double shrink;
    std::size_t k;
};

// One similarity row: the product, its candidates, their top k into `row` (column-sorted).
template <Kernel K, typename A, Norm N>
void similarity_row(const Csr<double>& iu, const Csr<double>& ui, const double* user_weight,
                    const RowContext& ctx, std::size_t i, Scratch& s, A* a,
                    std::vector<std::uint64_t>& row) {
    s.clean = false;
    std::int32_t* t = s.touched.data();
    const std::size_t cnt = accumulate<K>(iu, ui, user_weight, i, a, t);
    const double si = ctx.fi[i], sqi = ctx.sq_norms[i];
    const double* fj = ctx.fj;
    const double* sq = ctx.sq_norms;
    const double shrink = ctx.shrink;
    const double scale_i = ctx.item_factor != nullptr ? ctx.item_factor[i] : 1.0;
    Cand* __restrict cp = s.cand.data();
    const std::size_t k = ctx.k;
    // The dot product of column j as the similarity uses it, and the denominator.
    auto dot_of = [&](std::int32_t j, double dot) {
        if constexpr (K == Kernel::user_weights) {
            if (ctx.item_factor != nullptr)
                dot *= scale_i * ctx.item_factor[j];
        }
        return dot;
    };
    auto denom_of = [&](std::int32_t j, double dot) {
        double denom = 1.0;
        if constexpr (N == Norm::cosine || N == Norm::asymmetric)
            denom = si * fj[j];
        else if constexpr (N == Norm::jaccard)
            denom = sqi + sq[j] - dot;
        return denom + shrink;
    };
    // The similarity of column j (0 when it is no candidate: not positive, not finite, or i).
    auto similarity = [&](std::int32_t j, double raw) {
        const double dot = dot_of(j, raw);
        const double denom = denom_of(j, dot);
        const double sim = denom > 0.0 ? dot / denom : 0.0;
        const bool keep = sim > 0.0 && sim <= std::numeric_limits<double>::max() &&
                          static_cast<std::size_t>(j) != i;
        return keep ? sim : 0.0;
    };
    // A speculative threshold from a sample of the candidates: the r-th largest of kSample
    // evenly spaced ones, r chosen so that about 2k candidates reach it. Keeping only the
    // candidates >= T is exact whenever at least k of them are (the k-th largest is then
    // >= T, and every tie of it is kept); otherwise (rare) the 3r-th largest is tried, and
    // then every candidate is kept.
    constexpr std::size_t kSample = 64;
    double thr = 0.0, thr2 = 0.0;
    if (cnt > 8 * k) {
        const std::size_t stride = cnt / kSample;
        const std::size_t r = std::max<std::size_t>(1, (2 * k * kSample + cnt - 1) / cnt);
        const std::size_t r2 = std::min(kSample, 3 * r);
        double best[kSample];
        std::size_t have = 0;
        for (std::size_t c = 0; c < kSample; ++c) {
            const std::int32_t j = t[c * stride];
            const double v = similarity(j, static_cast<double>(a[j]));
            if (v <= 0.0 || (have == r2 && v <= best[r2 - 1]))
                continue;
            std::size_t pos = have < r2 ? have++ : r2 - 1;
            while (pos > 0 && best[pos - 1] < v) {
                best[pos] = best[pos - 1];
                --pos;
            }
            best[pos] = v;
        }
        if (have >= r)
            thr = best[r - 1];
        if (have == r2 && r2 > r)
            thr2 = best[r2 - 1];
    }
    // The candidates reaching `cut` into cp[0, return), exact similarities. Division-free
    // prefilter first: dot >= cut' * denom with cut' a hair below cut keeps every column
    // whose rounded dot / denom reaches cut (and a few below it, which the exact pass drops);
    // a non-positive or non-finite denominator passes and is dropped there too. The passes
    // only read the accumulator (one store per candidate, the survivor's position); it is
    // cleared once the row's candidates are taken (see clear_row).
    std::uint32_t* __restrict pos = s.pos.data();
    auto reaching = [&](double cut) {
        const double cut_lo = cut * (1.0 - 1e-12);
        // cut' * denominator, with the constant parts folded (a few roundings' difference,
        // far inside the 1e-12 margin).
        const double c_si = cut_lo * si, c_shrink = cut_lo * shrink,
                     c_one = cut_lo * (1.0 + shrink);
        auto bound = [&](std::int32_t j, double dot) {
            if constexpr (N == Norm::cosine || N == Norm::asymmetric)
                return c_si * fj[j] + c_shrink;
            else if constexpr (N == Norm::jaccard)
                return cut_lo * denom_of(j, dot);
            else
                return c_one;
        };
        std::size_t w = 0;
        for (std::size_t c = 0; c < cnt; ++c) {
            const std::int32_t j = t[c];
            const double dot = dot_of(j, static_cast<double>(a[j]));
            pos[w] = static_cast<std::uint32_t>(j);
            w += static_cast<std::size_t>(!(dot < bound(j, dot)));
        }
        std::size_t exact = 0;
        for (std::size_t c = 0; c < w; ++c) {
            const auto j = static_cast<std::int32_t>(pos[c]);
            const double sim = similarity(j, static_cast<double>(a[j]));
            cp[exact] = {sim, j};
            exact += static_cast<std::size_t>(sim > 0.0 && sim >= cut);
        }
        return exact;
    };
    std::size_t w = 0;
    if (thr > 0.0) {
        w = reaching(thr);
        if (w < k && thr2 > 0.0)
            w = reaching(thr2);
    }
    if (w < k) { // no guess, or too few reached it: every candidate
        w = 0;
        for (std::size_t c = 0; c < cnt; ++c) {
            const std::int32_t j = t[c];
            const double sim = similarity(j, static_cast<double>(a[j]));
            cp[w] = {sim, j};
            w += static_cast<std::size_t>(sim > 0.0);
        }
    }
    clear_row(a, t, cnt, iu.rows);
    // Fewer candidates for nth_element (whose comparisons mispredict about half the time):
    // a second sampled threshold on the exact similarities, aimed at ~1.15k (then ~1.4k),
    // applied when at least k candidates reach it (the same argument as the first).
    Cand* sel = cp;
    if (w >= 2 * k && w >= 64) {
        constexpr std::size_t kRefine = 32;
        const std::size_t r1 = (kRefine * (k + 15 * k / 100) + w - 1) / w;
        const std::size_t r2 = (kRefine * (k + 40 * k / 100) + w - 1) / w; // < kRefine
        double best[kRefine];
        std::size_t have = 0;
        for (std::size_t q = 0; q < kRefine; ++q) {
            const double v = cp[(2 * q + 1) * w / (2 * kRefine)].first;
            if (have == r2 && v <= best[r2 - 1])
                continue;
            std::size_t at = have < r2 ? have++ : r2 - 1;
            while (at > 0 && best[at - 1] < v) {
                best[at] = best[at - 1];
                --at;
            }
            best[at] = v;
        }
        Cand* __restrict dst = s.cand2.data();
        for (const std::size_t r : {r1, r2}) {
            const double cut = best[r - 1];
            std::size_t w2 = 0;
            for (std::size_t c = 0; c < w; ++c) {
                dst[w2] = cp[c];
                w2 += static_cast<std::size_t>(cp[c].first >= cut);
            }
            if (w2 >= k) {
                sel = dst;
                w = w2;
                break;
            }
        }
    }
    std::size_t kept = w;
    if (w > k) {
        std::nth_element(sel, sel + k, sel + w, [](const Cand& x, const Cand& y) {
            return x.first > y.first || (x.first == y.first && x.second < y.second);
        });
        kept = k;
    }
    s.clean = true;
    // (column << 32 | float bits), in column order: through a bitset of the columns when its
    // scan is cheaper than sorting the row, else one integer sort.
    row.resize(kept);
    auto key = [](std::int32_t j, float v) {
        std::uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(j)) << 32) | bits;
    };
    const std::size_t words = s.bits.size();
    if (words <= 16 * kept) {
        std::uint64_t* __restrict bits = s.bits.data();
        float* __restrict val = s.vals.data();
        for (std::size_t c = 0; c < kept; ++c) {
            const auto j = static_cast<std::uint32_t>(sel[c].second);
            bits[j >> 6] |= std::uint64_t{1} << (j & 63);
            val[j] = static_cast<float>(sel[c].first);
        }
        std::size_t pos = 0;
        for (std::size_t wd = 0; wd < words && pos < kept; ++wd) {
            std::uint64_t m = bits[wd];
            if (m == 0)
                continue;
            bits[wd] = 0;
            do {
                const auto j = static_cast<std::int32_t>(wd * 64 + ctz64(m));
                row[pos++] = key(j, val[j]);
                m &= m - 1;
            } while (m != 0);
        }
    } else {
        for (std::size_t c = 0; c < kept; ++c)
            row[c] = key(sel[c].second, static_cast<float>(sel[c].first));
        std::sort(row.begin(), row.end());
    }
}

template <Kernel K, typename A, Norm N>
void similarity_rows(const Csr<double>& iu, const Csr<double>& ui, const double* user_weight,
                     const RowContext& ctx, std::size_t begin, std::size_t rows,
                     std::size_t threads, std::vector<std::vector<std::uint64_t>>& out) {
    const std::size_t n = iu.rows;
    const std::size_t grain = balanced_grain(rows, threads, 8, 64);
    parallel_for(rows, threads, grain, [&](std::size_t b, std::size_t e) {
        Scratch& s = tls_scratch;
        s.prepare(n);
        A* a;
        if constexpr (std::is_same_v<A, std::uint16_t>)
            a = s.grow(s.cnt16, n);
        else if constexpr (std::is_same_v<A, std::uint32_t>)
            a = s.grow(s.cnt32, n);
        else
            a = s.grow(s.acc, n);
        for (std::size_t r = b; r < e; ++r)
            similarity_row<K, A, N>(iu, ui, user_weight, ctx, begin + r, s, a, out[r]);
    });
}

template <Kernel K, typename A>
void similarity_rows_norm(Norm norm, const Csr<double>& iu, const Csr<double>& ui,
                          const double* user_weight, const RowContext& ctx, std::size_t begin,
                          std::size_t rows, std::size_t threads,
                          std::vector<std::vector<std::uint64_t>>& out) {
    switch (norm) {
    case Norm::none:
        return similarity_rows<K, A, Norm::none>(iu, ui, user_weight, ctx, begin, rows, threads,
                                                 out);
    case Norm::cosine:
        return similarity_rows<K, A, Norm::cosine>(iu, ui, user_weight, ctx, begin, rows, threads,
                                                   out);
    case Norm::asymmetric:
        return similarity_rows<K, A, Norm::asymmetric>(iu, ui, user_weight, ctx, begin, rows,
                                                       threads, out);
    case Norm::jaccard:
        return similarity_rows<K, A, Norm::jaccard>(iu, ui, user_weight, ctx, begin, rows, threads,
                                                    out);
    }
    throw std::invalid_argument("unknown similarity normalisation");
}

} // namespace

SparseRows knn_similarity(const Csr<double>& item_users, const Csr<double>& user_items,
                          const double* sq_norms, const KnnParams& params, std::size_t begin,
                          std::size_t end, std::size_t threads) {
    const bool pattern = params.pattern;
    // The pattern kernels read no values (data may be null there).
    check_pair(item_users, user_items);
    if (!pattern) {
        require(item_users.data != nullptr && user_items.data != nullptr, "weights missing");
        const auto nnz = static_cast<std::size_t>(item_users.indptr[item_users.rows]);
        for (std::size_t q = 0; q < nnz; ++q)
            require(item_users.data[q] >= 0.0 && user_items.data[q] >= 0.0,
                    "interaction weights must be >= 0");
    }
    const std::size_t n = item_users.rows;
    require(begin <= end && end <= n, "rows [begin, end) out of range");
    require(params.k >= 1, "n_neighbors must be >= 1");
    require(params.shrinkage >= 0.0, "shrinkage must be >= 0");
    require(params.alpha >= 0.0 && params.alpha <= 1.0, "alpha must be in [0, 1]");
    require(pattern || (params.user_weight == nullptr && params.item_factor == nullptr),
            "user_weight and item_factor apply to pattern input only");
    if (params.user_weight != nullptr)
        for (std::size_t u = 0; u < item_users.cols; ++u)
            require(params.user_weight[u] > 0.0 &&
                        params.user_weight[u] <= std::numeric_limits<double>::max(),
                    "user_weight must be positive and finite");
    if (params.item_factor != nullptr)
        for (std::size_t j = 0; j < n; ++j)
            require(params.item_factor[j] > 0.0 &&
                        params.item_factor[j] <= std::numeric_limits<double>::max(),
                    "item_factor must be positive and finite");
    const std::size_t rows = end - begin;
    const std::size_t k = std::min(params.k, n);

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
    RowContext ctx{sq_norms, fi.data(), fj.data(), params.item_factor, params.shrinkage, k};
    std::vector<std::vector<std::uint64_t>> out(rows);
    const Norm norm = params.norm;
    const double* uw = params.user_weight;
    if (pattern && uw == nullptr && params.item_factor == nullptr) {
        // A count never exceeds the row's number of users.
        std::int64_t widest = 0;
        for (std::size_t i = begin; i < end; ++i)
            widest = std::max(widest, item_users.indptr[i + 1] - item_users.indptr[i]);
        if (widest <= std::numeric_limits<std::uint16_t>::max())
            similarity_rows_norm<Kernel::counts16, std::uint16_t>(norm, item_users, user_items, uw,
                                                                  ctx, begin, rows, threads, out);
        else
            similarity_rows_norm<Kernel::counts32, std::uint32_t>(norm, item_users, user_items, uw,
                                                                  ctx, begin, rows, threads, out);
    } else if (pattern) {
        std::vector<double> ones;
        if (uw == nullptr) {
            ones.assign(item_users.cols, 1.0);
            uw = ones.data();
        }
        similarity_rows_norm<Kernel::user_weights, double>(norm, item_users, user_items, uw, ctx,
                                                           begin, rows, threads, out);
    } else {
        similarity_rows_norm<Kernel::general, double>(norm, item_users, user_items, uw, ctx, begin,
                                                      rows, threads, out);
    }

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
        for (const std::uint64_t key : out[r]) {
            const auto bits = static_cast<std::uint32_t>(key);
            float v;
            std::memcpy(&v, &bits, sizeof v);
            res.indices[pos] = static_cast<std::int32_t>(key >> 32);
            res.data[pos] = v;
            ++pos;
        }
        std::vector<std::uint64_t>().swap(out[r]);
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
