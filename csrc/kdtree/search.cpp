// KD-tree queries: k nearest neighbours and radius search (see kdtree.hpp for the design).
//
// One traversal serves both, parameterised by what it collects (result_sets.hpp). Hot-path
// choices, each measured (callgrind instruction counts and thread CPU time):
// - squared distances throughout; the square root is taken once per returned neighbour;
// - an iterative depth-first walk with an explicit stack of deferred far children and an
//   undo log for the per-dimension cell gaps (a fifth fewer instructions than recursion);
// - leaves are scanned by one SIMD panel kernel, read from the dispatch table once per call;
//   a vectorised count skips leaves with no point within the bound, and the others offer
//   their candidates from a branch-free list;
// - k <= 32 keeps results in a sorted array (no heap sifts, no final sort);
// - queries are visited in the leaf order of their home cell, results written back to their
//   own rows, so neighbouring queries share cache lines of nodes and leaves.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "kdtree/kdtree.hpp"
#include "kdtree/result_sets.hpp"
#include "simd/dispatch.hpp"

namespace pysim::kdtree {
namespace {

template <typename X> struct TypeTag {
    using type = X;
};

// Depth-first search of one query at a time; owns the per-thread scratch.
template <typename T, class Result, typename Id> class Traversal {
  public:
    Traversal(const KdTree<T>& tree, const Id* ids, simd::ManyFn<T> panel)
        : nodes_(tree.nodes().data()), pts_(tree.points().data()), ids_(ids),
          leaf_start_(tree.leaf_starts().data()), bbox_(tree.bbox().data()), d_(tree.dim()),
          first_leaf_((std::size_t{1} << tree.levels()) - 1), panel_(panel), gaps_(tree.dim()),
          buf_(tree.max_leaf()), hits_(tree.max_leaf()) {
        // A cell is skipped only if its incrementally updated bound, lowered by its worst-case
        // relative rounding error (a few ulps per level and per dimension), still exceeds the
        // current bound: exact pruning in spite of floating point.
        const T eps = std::numeric_limits<T>::epsilon();
        shrink_ =
            std::max(T(0), T(1) - eps * static_cast<T>(4 * (tree.levels() + tree.dim()) + 16));
    }

    void run(const T* q, Result& res) {
        T mind = 0;
        const T* lo = bbox_;
        const T* hi = bbox_ + d_;
        T* gaps = gaps_.data();
        for (std::size_t j = 0; j < d_; ++j) {
            T g = 0;
            if (q[j] < lo[j]) {
                g = lo[j] - q[j];
            } else if (q[j] > hi[j]) {
                g = q[j] - hi[j];
            }
            gaps[j] = g * g;
            mind += gaps[j];
        }
        if (mind * shrink_ > res.bound())
            return;

        // Iterative depth-first search, nearer child first (the order of the recursive
        // formulation, without its call overhead). A deferred far child remembers its cell
        // bound and the gap it sets in its split dimension; `undo` records the gaps changed on
        // the way to the current cell, tagged with depth, so that resuming a deferred child at
        // depth t first restores every gap set at depth >= t.
        std::size_t sp = 0, undo_sp = 0;
        std::size_t node = 0, depth = 0;
        for (;;) {
            while (node < first_leaf_) {
                const Node<T>& nd = nodes_[node];
                const T v = q[nd.dim];
                const T diff_lo = v - nd.lo;
                const T diff_hi = v - nd.hi;
                const bool left = diff_lo + diff_hi < T(0);
                const T cut = left ? diff_hi * diff_hi : diff_lo * diff_lo;
                const T far_mind = mind + cut - gaps[nd.dim];
                ++depth;
                // The bound only shrinks: a cell that fails now will fail when popped.
                if (far_mind * shrink_ <= res.bound()) {
                    stack_[sp++] = Deferred{2 * node + (left ? 2 : 1), far_mind, cut, nd.dim,
                                            static_cast<std::uint32_t>(depth)};
                }
                node = 2 * node + (left ? 1 : 2);
            }
            scan(q, node - first_leaf_, res);
            for (;;) {
                if (sp == 0)
                    return;
                const Deferred e = stack_[--sp];
                if (e.mind * shrink_ > res.bound())
                    continue;
                while (undo_sp > 0 && undo_[undo_sp - 1].depth >= e.depth) {
                    --undo_sp;
                    gaps[undo_[undo_sp].dim] = undo_[undo_sp].old;
                }
                undo_[undo_sp++] = Undo{gaps[e.dim], e.dim, e.depth};
                gaps[e.dim] = e.cut;
                node = e.node;
                mind = e.mind;
                depth = e.depth;
                break;
            }
        }
    }

  private:
    struct Deferred {
        std::size_t node;
        T mind;
        T cut;
        std::uint32_t dim;
        std::uint32_t depth;
    };
    struct Undo {
        T old;
        std::uint32_t dim;
        std::uint32_t depth;
    };

    // Distances of the leaf's points, then the ones within the bound (read once: it can only
    // shrink, and add() re-checks against the current k-th) are offered. The candidate list
    // is built without branches, so sparse, unpredictable hits cost no mispredictions.
    void scan(const T* q, std::size_t leaf, Result& res) {
        const std::size_t s = static_cast<std::size_t>(leaf_start_[leaf]);
        const std::size_t cnt = static_cast<std::size_t>(leaf_start_[leaf + 1]) - s;
        T* buf = buf_.data();
        std::uint32_t* hits = hits_.data();
        panel_(q, pts_ + s * d_, cnt, d_, buf);
        const T bound = res.bound();
        std::uint32_t any = 0; // a count the compiler vectorises: most leaves offer nothing
        for (std::size_t i = 0; i < cnt; ++i)
            any += buf[i] <= bound ? 1 : 0;
        if (any == 0)
            return;
        std::size_t nh = 0;
        for (std::size_t i = 0; i < cnt; ++i) {
            hits[nh] = static_cast<std::uint32_t>(i);
            nh += buf[i] <= bound ? 1 : 0;
        }
        for (std::size_t h = 0; h < nh; ++h) {
            const std::size_t i = hits[h];
            if (buf[i] <= res.bound())
                res.add(buf[i], static_cast<index_t>(ids_[s + i]));
        }
    }

    const Node<T>* nodes_;
    const T* pts_;
    const Id* ids_;
    const index_t* leaf_start_;
    const T* bbox_;
    std::size_t d_;
    std::size_t first_leaf_;
    simd::ManyFn<T> panel_;
    std::vector<T> gaps_;
    std::vector<T> buf_;
    std::vector<std::uint32_t> hits_;
    T shrink_;
    Deferred stack_[64]; // one deferred child per level at most; levels <= 62
    Undo undo_[64];
};

// Processing order: queries sorted (stably) by the leaf their descent ends in. Empty means
// the identity (tiny batches, or a single-leaf tree).
template <typename T>
std::vector<std::size_t> query_order(const KdTree<T>& tree, const T* queries, std::size_t m,
                                     std::size_t threads) {
    std::vector<std::size_t> order;
    if (m < 64 || tree.levels() == 0)
        return order;
    const std::size_t d = tree.dim();
    std::vector<std::size_t> leaf(m);
    parallel_for(m, threads, balanced_grain(m, threads, 4096), [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i)
            leaf[i] = tree.leaf_of(queries + i * d);
    });
    const std::size_t leaves = std::size_t{1} << tree.levels();
    order.resize(m);
    if (leaves <= 4 * m) { // counting sort
        std::vector<std::size_t> start(leaves + 1, 0);
        for (std::size_t i = 0; i < m; ++i)
            ++start[leaf[i] + 1];
        std::partial_sum(start.begin(), start.end(), start.begin());
        for (std::size_t i = 0; i < m; ++i)
            order[start[leaf[i]]++] = i;
    } else {
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return leaf[a] < leaf[b]; });
    }
    return order;
}

// Queries per chunk: enough to amortise the chunk set-up, few enough that Ctrl-C is polled
// often and two threads balance. A query may visit every point (high dimensions defeat the
// tree: at d = 16 one k-NN query on 10^5 points costs milliseconds), so a chunk holds at most
// about 2^22 point visits' worth of queries, however large the batch.
std::size_t query_grain(std::size_t m, std::size_t threads, std::size_t n_points) noexcept {
    const std::size_t by_work =
        std::max<std::size_t>(1, (std::size_t{1} << 22) / std::max<std::size_t>(1, n_points));
    const std::size_t cap = std::min<std::size_t>(256, by_work);
    return std::clamp<std::size_t>(m / (8 * std::max<std::size_t>(1, threads)), 1, cap);
}

// The largest squared distance whose square root (as returned) is <= r, so that a point is
// reported exactly when its returned Euclidean distance is <= r.
template <typename T> T euclidean_threshold(T r) noexcept {
    const T inf = std::numeric_limits<T>::infinity();
    if (!(r >= T(0)))
        return T(-1);
    if (r == inf)
        return inf;
    T t = r * r;
    if (t == inf)
        return inf;
    while (t > T(0) && std::sqrt(t) > r)
        t = std::nextafter(t, T(0));
    for (;;) {
        const T up = std::nextafter(t, inf);
        if (up == inf || std::sqrt(up) > r)
            break;
        t = up;
    }
    return t;
}

} // namespace

template <typename T>
void KdTree<T>::knn(const T* queries, std::size_t m, std::size_t k, bool euclidean, T* dist,
                    index_t* idx, std::size_t threads) const {
    require(k >= 1, "k must be >= 1");
    if (m == 0)
        return;
    threads = std::max<std::size_t>(1, threads);
    const simd::ManyFn<T> panel = simd::kernels<T>(simd::active()).l2sq_panel.fn;
    const std::size_t k_eff = std::min(k, n_);
    const std::vector<std::size_t> order = query_order(*this, queries, m, threads);
    // Generic over the id width (IdMap) and the result set: one traversal instantiation each.
    auto search = [&](const auto* ids, auto tag) {
        using Id = std::remove_cv_t<std::remove_pointer_t<decltype(ids)>>;
        using Set = typename decltype(tag)::type;
        parallel_for(m, threads, query_grain(m, threads, n_), [&](std::size_t b, std::size_t e) {
            Set best(k_eff);
            Traversal<T, Set, Id> walk(*this, ids, panel);
            for (std::size_t i = b; i < e; ++i) {
                const std::size_t qi = order.empty() ? i : order[i];
                best.clear();
                walk.run(queries + qi * dim_, best);
                best.extract(dist + qi * k, idx + qi * k, k, euclidean);
            }
        });
    };
    auto run = [&](auto tag) {
        if (ids_.wide()) {
            search(ids_.wide_ids().data(), tag);
        } else {
            search(ids_.narrow().data(), tag);
        }
    };
    if (k_eff <= kSortedMaxK) {
        run(TypeTag<KnnSorted<T>>{});
    } else {
        run(TypeTag<KnnHeap<T>>{});
    }
}

template <typename T>
RadiusResult<T> KdTree<T>::radius(const T* queries, std::size_t m, const T* radii, bool euclidean,
                                  bool want_distances, bool sort, std::size_t threads) const {
    RadiusResult<T> out;
    out.indptr.assign(m + 1, 0);
    if (m == 0)
        return out;
    threads = std::max<std::size_t>(1, threads);
    const simd::ManyFn<T> panel = simd::kernels<T>(simd::active()).l2sq_panel.fn;
    const std::vector<std::size_t> order = query_order(*this, queries, m, threads);
    const std::size_t grain = query_grain(m, threads, n_);
    const std::size_t n_chunks = (m + grain - 1) / grain;

    // Each chunk of queries appends to its own buffers; the final CSR arrays are filled
    // once all counts are known. Memory: the output plus the chunk buffers holding it.
    struct Chunk {
        std::vector<index_t> ids;
        std::vector<T> dists;
    };
    std::vector<Chunk> chunks(n_chunks);
    std::vector<std::size_t> local(m);
    auto run = [&](const auto* ids) {
        using Id = std::remove_cv_t<std::remove_pointer_t<decltype(ids)>>;
        parallel_for(m, threads, grain, [&](std::size_t b, std::size_t e) {
            Chunk& c = chunks[b / grain];
            RadiusCollector<T> collect(c.ids, c.dists);
            Traversal<T, RadiusCollector<T>, Id> walk(*this, ids, panel);
            std::vector<std::pair<T, index_t>> tmp;
            for (std::size_t i = b; i < e; ++i) {
                const std::size_t qi = order.empty() ? i : order[i];
                const std::size_t start = c.ids.size();
                collect.reset(euclidean ? euclidean_threshold(radii[qi]) : radii[qi]);
                walk.run(queries + qi * dim_, collect);
                const std::size_t cnt = c.ids.size() - start;
                if (sort && cnt > 1) {
                    tmp.resize(cnt);
                    for (std::size_t r = 0; r < cnt; ++r)
                        tmp[r] = {c.dists[start + r], c.ids[start + r]};
                    std::sort(tmp.begin(), tmp.end());
                    for (std::size_t r = 0; r < cnt; ++r) {
                        c.dists[start + r] = tmp[r].first;
                        c.ids[start + r] = tmp[r].second;
                    }
                }
                local[qi] = start;
                out.indptr[qi + 1] = static_cast<index_t>(cnt);
            }
        });
    };
    if (ids_.wide()) {
        run(ids_.wide_ids().data());
    } else {
        run(ids_.narrow().data());
    }
    std::partial_sum(out.indptr.begin(), out.indptr.end(), out.indptr.begin());
    const std::size_t total = static_cast<std::size_t>(out.indptr[m]);
    out.indices.resize(total);
    if (want_distances)
        out.distances.resize(total);
    parallel_for(n_chunks, threads, 1, [&](std::size_t cb, std::size_t ce) {
        for (std::size_t ci = cb; ci < ce; ++ci) {
            Chunk& c = chunks[ci];
            for (std::size_t i = ci * grain; i < std::min(m, (ci + 1) * grain); ++i) {
                const std::size_t qi = order.empty() ? i : order[i];
                const std::size_t dst = static_cast<std::size_t>(out.indptr[qi]);
                const std::size_t cnt = static_cast<std::size_t>(out.indptr[qi + 1]) - dst;
                std::copy_n(c.ids.begin() + local[qi], cnt, out.indices.begin() + dst);
                if (want_distances) {
                    for (std::size_t r = 0; r < cnt; ++r) {
                        const T v = c.dists[local[qi] + r];
                        out.distances[dst + r] = euclidean ? std::sqrt(v) : v;
                    }
                }
            }
            std::vector<index_t>().swap(c.ids); // release as we go
            std::vector<T>().swap(c.dists);
        }
    });
    return out;
}

// The class itself is instantiated in build.cpp; these are the members defined here.
#define PYSIM_KDTREE_SEARCH(T)                                                                     \
    template void KdTree<T>::knn(const T*, std::size_t, std::size_t, bool, T*, index_t*,           \
                                 std::size_t) const;                                               \
    template RadiusResult<T> KdTree<T>::radius(const T*, std::size_t, const T*, bool, bool, bool,  \
                                               std::size_t) const;
PYSIM_KDTREE_SEARCH(float)
PYSIM_KDTREE_SEARCH(double)
#undef PYSIM_KDTREE_SEARCH

} // namespace pysim::kdtree
