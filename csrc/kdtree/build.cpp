// KD-tree construction (see kdtree.hpp for the layout) and reconstruction from saved arrays.
//
// Memory: the only large allocations are the reordered copy of the points and the ids, which
// the finished tree keeps; partitioning swaps rows of that copy in place (a quickselect on
// rows, cache-friendly because every pass is sequential), and each leaf is transposed to its
// dimension-major layout through a buffer of one leaf. Peak = the tree's own size.
//
// Splits: the dimension of largest extent of the node's points (of an evenly spaced sample
// of 1,024 of them in nodes over 8,192 points), at the median position, so the tree is
// balanced and implicit. Median-of-three pivots from hashed positions keep the
// quickselect linear on sorted, reversed and duplicate-heavy input (Hoare partitioning stops
// on equal keys, so a column of identical values still splits in the middle).
//
// Parallelism: the top levels are built level by level, the nodes of a level in parallel,
// until there are a few subtrees per thread; those subtrees are then built depth-first in
// parallel (each stays in one core's cache). Every node is split the same way whatever the
// thread count, so the tree, and with it every result, does not depend on `threads`.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "kdtree/kdtree.hpp"

namespace pysim::kdtree {

std::size_t levels_for(std::size_t n, std::size_t leaf_size) noexcept {
    if (leaf_size == 0)
        leaf_size = 1;
    std::size_t levels = 0;
    while (levels < 62) {
        const std::size_t width = std::size_t{1} << levels;
        const std::size_t max_leaf = (n + width - 1) / width;
        if (max_leaf <= leaf_size)
            break;
        if ((width << 1) > n)
            break; // one more level would leave a leaf empty
        ++levels;
    }
    return levels;
}

void IdMap::assign_iota(std::size_t n, bool force_wide) {
    narrow_.clear();
    wide_.clear();
    if (n <= std::numeric_limits<std::uint32_t>::max() && !force_wide) {
        narrow_.resize(n);
        std::iota(narrow_.begin(), narrow_.end(), std::uint32_t{0});
    } else {
        wide_.resize(n);
        std::iota(wide_.begin(), wide_.end(), index_t{0});
    }
}

void IdMap::assign(const index_t* ids, std::size_t n, bool force_wide) {
    narrow_.clear();
    wide_.clear();
    if (n <= std::numeric_limits<std::uint32_t>::max() && !force_wide) {
        narrow_.resize(n);
        for (std::size_t i = 0; i < n; ++i)
            narrow_[i] = static_cast<std::uint32_t>(ids[i]);
    } else {
        wide_.assign(ids, ids + n);
    }
}

namespace {

// splitmix64: a cheap deterministic hash for pivot positions.
inline std::uint64_t mix(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// D > 0 fixes the dimension at compile time (row swaps and bounding-box scans unroll; half
// the build's instructions for d = 3); D == 0 reads it at run time.
template <typename T, typename Id, std::size_t D> class Builder {
  public:
    static constexpr std::size_t kSample = 1024;

    Builder(T* pts, Id* ids, std::size_t dim, Node<T>* nodes, const index_t* leaf_start,
            std::size_t levels)
        : pts_(pts), ids_(ids), d_(D ? D : dim), nodes_(nodes), leaf_start_(leaf_start),
          levels_(levels) {}

    // Rows [s, e) of the node at (level, node).
    std::size_t node_begin(std::size_t node, std::size_t level) const noexcept {
        const std::size_t first_leaf = (node - ((std::size_t{1} << level) - 1))
                                       << (levels_ - level);
        return static_cast<std::size_t>(leaf_start_[first_leaf]);
    }
    std::size_t node_end(std::size_t node, std::size_t level) const noexcept {
        const std::size_t span = std::size_t{1} << (levels_ - level);
        const std::size_t first_leaf = (node - ((std::size_t{1} << level) - 1))
                                       << (levels_ - level);
        return static_cast<std::size_t>(leaf_start_[first_leaf + span]);
    }

    // Chooses the split dimension, partitions around the median and records the node.
    void split(std::size_t node, std::size_t level, std::vector<T>& scratch) {
        const std::size_t s = node_begin(node, level), e = node_end(node, level);
        const std::size_t d = dims();
        scratch.resize(2 * d);
        T* lo = scratch.data();
        T* hi = lo + d;
        // Large nodes choose their split dimension from the extent of an evenly spaced sample
        // of kSample rows (the choice, not the split, is approximate): the top levels then
        // cost one partition pass instead of two passes.
        const std::size_t len = e - s;
        const std::size_t step = len > 8 * kSample ? len / kSample : 1;
        const std::size_t count = len > 8 * kSample ? kSample : len;
        // Registers, not memory, for the running bounds when the width is known at compile time;
        // the run-time-width branch repeats the loop over memory (duplicates pairs the two).
        if constexpr (D > 0) {
            T l[D], h[D];
            for (std::size_t j = 0; j < D; ++j)
                l[j] = h[j] = pts_[s * D + j];
            for (std::size_t c = 1; c < count; ++c) {
                const T* row = pts_ + (s + c * step) * D;
                for (std::size_t j = 0; j < D; ++j) {
                    l[j] = row[j] < l[j] ? row[j] : l[j];
                    h[j] = row[j] > h[j] ? row[j] : h[j];
                }
            }
            for (std::size_t j = 0; j < D; ++j) {
                lo[j] = l[j];
                hi[j] = h[j];
            }
        } else {
            for (std::size_t j = 0; j < d; ++j)
                lo[j] = hi[j] = pts_[s * d + j];
            for (std::size_t c = 1; c < count; ++c) {
                const T* row = pts_ + (s + c * step) * d;
                for (std::size_t j = 0; j < d; ++j) {
                    lo[j] = row[j] < lo[j] ? row[j] : lo[j];
                    hi[j] = row[j] > hi[j] ? row[j] : hi[j];
                }
            }
        }
        std::size_t dim = 0;
        T best = hi[0] - lo[0];
        for (std::size_t j = 1; j < d; ++j) {
            if (hi[j] - lo[j] > best) {
                best = hi[j] - lo[j];
                dim = j;
            }
        }
        const std::size_t mid = s + (e - s) / 2;
        select(s, e, mid, dim);
        T left_max = key(s, dim);
        for (std::size_t i = s + 1; i < mid; ++i)
            left_max = std::max(left_max, key(i, dim));
        nodes_[node] = Node<T>{left_max, key(mid, dim), static_cast<std::uint32_t>(dim)};
    }

    // Builds the whole subtree below `node` depth-first and lays out its leaves.
    void subtree(std::size_t node, std::size_t level, std::vector<T>& scratch) {
        if (level == levels_) {
            transpose_leaf(node - ((std::size_t{1} << levels_) - 1), scratch);
            return;
        }
        split(node, level, scratch);
        subtree(2 * node + 1, level + 1, scratch);
        subtree(2 * node + 2, level + 1, scratch);
    }

    // Row-major rows of a leaf -> dimension-major panel, in place through `scratch`.
    void transpose_leaf(std::size_t leaf, std::vector<T>& scratch) {
        const std::size_t s = static_cast<std::size_t>(leaf_start_[leaf]);
        const std::size_t cnt = static_cast<std::size_t>(leaf_start_[leaf + 1]) - s;
        const std::size_t d = dims();
        if (cnt < 2 || d == 1)
            return;
        T* base = pts_ + s * d;
        scratch.assign(base, base + cnt * d);
        for (std::size_t i = 0; i < cnt; ++i)
            for (std::size_t j = 0; j < d; ++j)
                base[j * cnt + i] = scratch[i * d + j];
    }

  private:
    std::size_t dims() const noexcept { return D ? D : d_; }
    T key(std::size_t i, std::size_t dim) const noexcept { return pts_[i * dims() + dim]; }

    void swap_rows(std::size_t a, std::size_t b) noexcept {
        const std::size_t d = dims();
        T* ra = pts_ + a * d;
        T* rb = pts_ + b * d;
        for (std::size_t j = 0; j < d; ++j)
            std::swap(ra[j], rb[j]);
        std::swap(ids_[a], ids_[b]);
    }

    // Rearranges rows [s, e) so that row kth holds the kth smallest key of column `dim`, no
    // row before it has a larger key and no row after it a smaller one.
    void select(std::size_t s, std::size_t e, std::size_t kth, std::size_t dim) {
        std::uint64_t seed = mix((static_cast<std::uint64_t>(s) << 32) ^ e ^ dim);
        while (e - s > 16) {
            // Median of three hashed positions, moved to s (classic Hoare needs the pivot
            // there to guarantee both sides are non-empty).
            const std::size_t len = e - s;
            std::size_t a = s + (seed = mix(seed)) % len;
            std::size_t b = s + (seed = mix(seed)) % len;
            std::size_t c = s + (seed = mix(seed)) % len;
            if (key(a, dim) > key(b, dim))
                std::swap(a, b);
            if (key(b, dim) > key(c, dim))
                std::swap(b, c);
            if (key(a, dim) > key(b, dim))
                std::swap(a, b);
            swap_rows(s, b);
            const T pivot = key(s, dim);
            std::size_t i = s, j = e; // Hoare, with i pre-incremented past s below
            std::size_t left_end;
            bool first = true;
            for (;;) {
                if (first) {
                    first = false; // key(s) == pivot stops the left scan at s
                } else {
                    ++i;
                    while (key(i, dim) < pivot)
                        ++i;
                }
                --j;
                while (key(j, dim) > pivot)
                    --j;
                if (i >= j) {
                    left_end = j;
                    break;
                }
                swap_rows(i, j);
            }
            // [s, left_end] <= pivot <= (left_end, e), and s <= left_end < e - 1.
            if (kth <= left_end) {
                e = left_end + 1;
            } else {
                s = left_end + 1;
            }
        }
        for (std::size_t i = s + 1; i < e; ++i) { // insertion sort of the last few rows
            for (std::size_t j = i; j > s && key(j - 1, dim) > key(j, dim); --j) {
                swap_rows(j - 1, j);
            }
        }
    }

    T* pts_;
    Id* ids_;
    std::size_t d_;
    Node<T>* nodes_;
    const index_t* leaf_start_;
    std::size_t levels_;
};

// fn(std::integral_constant<std::size_t, W>{}) for the W in 1..8 that equals dim; false (fn not
// called) for any other dim.
template <class Fn, std::size_t... W>
bool with_row_width_in(std::size_t dim, Fn&& fn, std::index_sequence<W...>) {
    return ((dim == W + 1 ? (fn(std::integral_constant<std::size_t, W + 1>{}), true) : false) ||
            ...);
}
template <class Fn> bool with_row_width(std::size_t dim, Fn&& fn) {
    return with_row_width_in(dim, fn, std::make_index_sequence<8>{});
}

} // namespace

template <typename T> void KdTree<T>::init_leaf_ranges() {
    levels_ = levels_for(n_, leaf_size_);
    std::vector<index_t> bounds{0, static_cast<index_t>(n_)};
    for (std::size_t level = 0; level < levels_; ++level) {
        std::vector<index_t> next(2 * (bounds.size() - 1) + 1);
        for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
            next[2 * i] = bounds[i];
            next[2 * i + 1] = bounds[i] + (bounds[i + 1] - bounds[i]) / 2;
        }
        next.back() = static_cast<index_t>(n_);
        bounds.swap(next);
    }
    leaf_start_ = std::move(bounds);
    max_leaf_ = 0;
    for (std::size_t l = 0; l + 1 < leaf_start_.size(); ++l) {
        max_leaf_ =
            std::max(max_leaf_, static_cast<std::size_t>(leaf_start_[l + 1] - leaf_start_[l]));
    }
}

template <typename T>
KdTree<T>::KdTree(const T* data, std::size_t n, std::size_t dim, std::size_t leaf_size,
                  std::size_t threads, bool wide_ids)
    : n_(n), dim_(dim), leaf_size_(leaf_size) {
    require(n >= 1, "data must have at least one row");
    require(dim >= 1, "data must have at least one column");
    require(leaf_size >= 1, "leaf_size must be >= 1");
    require(dim < (std::size_t{1} << 31), "data has too many columns");
    init_leaf_ranges();
    points_.assign(data, data + n * dim);
    ids_.assign_iota(n, wide_ids);
    bbox_.assign(2 * dim, T(0));
    for (std::size_t j = 0; j < dim; ++j)
        bbox_[j] = bbox_[dim + j] = data[j];
    for (std::size_t i = 1; i < n; ++i) {
        const T* row = data + i * dim;
        for (std::size_t j = 0; j < dim; ++j) {
            bbox_[j] = std::min(bbox_[j], row[j]);
            bbox_[dim + j] = std::max(bbox_[dim + j], row[j]);
        }
    }
    build(std::max<std::size_t>(1, threads));
}

template <typename T> void KdTree<T>::build(std::size_t threads) {
    nodes_.assign((std::size_t{1} << levels_) - 1, Node<T>{T(0), T(0), 0});
    if (ids_.wide()) { // beyond 2^32 points: rare enough for the generic builder
        build_levels<Builder<T, index_t, 0>>(ids_.wide_ids().data(), threads);
    } else {
        build_with(ids_.narrow().data(), threads);
    }
}

template <typename T>
template <typename Id>
void KdTree<T>::build_with(Id* ids, std::size_t threads) {
    // The usual KD-tree dimensions (1..8) get a compile-time row width, the rest width 0
    // (read at run time): one instantiation per width, chosen by a fold over the widths.
    const bool fixed = with_row_width(dim_, [&](auto width) {
        build_levels<Builder<T, Id, decltype(width)::value>>(ids, threads);
    });
    if (!fixed)
        build_levels<Builder<T, Id, 0>>(ids, threads);
}

template <typename T>
template <class B, typename Id>
void KdTree<T>::build_levels(Id* ids, std::size_t threads) {
    B b(points_.data(), ids, dim_, nodes_.data(), leaf_start_.data(), levels_);
    // Level-synchronous until there are >= 4 subtrees per thread, and at least 8 subtrees
    // even when serial: the pool polls for Ctrl-C between chunks.
    std::size_t top = 0;
    while (top < levels_ && (std::size_t{1} << top) < std::max<std::size_t>(8, 4 * threads))
        ++top;
    for (std::size_t level = 0; level < top; ++level) {
        const std::size_t first = (std::size_t{1} << level) - 1;
        parallel_for(std::size_t{1} << level, threads, 1, [&](std::size_t lo, std::size_t hi) {
            std::vector<T> scratch;
            for (std::size_t i = lo; i < hi; ++i)
                b.split(first + i, level, scratch);
        });
    }
    const std::size_t first = (std::size_t{1} << top) - 1;
    parallel_for(std::size_t{1} << top, threads, 1, [&](std::size_t lo, std::size_t hi) {
        std::vector<T> scratch;
        for (std::size_t i = lo; i < hi; ++i)
            b.subtree(first + i, top, scratch);
    });
}

template <typename T>
KdTree<T>::KdTree(std::size_t n, std::size_t dim, std::size_t leaf_size, std::vector<T> points,
                  const index_t* ids, const std::int32_t* split_dims, const T* split_bounds,
                  std::size_t n_internal, std::vector<T> bbox)
    : n_(n), dim_(dim), leaf_size_(leaf_size) {
    require(n >= 1 && dim >= 1 && leaf_size >= 1, "tree state: empty tree or zero leaf_size");
    require(dim < (std::size_t{1} << 31), "tree state: too many columns");
    require(n <= std::numeric_limits<std::size_t>::max() / dim, "tree state: size overflow");
    init_leaf_ranges();
    require(points.size() == n * dim, "tree state: points array has the wrong size");
    require(bbox.size() == 2 * dim, "tree state: bounding box has the wrong size");
    require(n_internal == (std::size_t{1} << levels_) - 1,
            "tree state: node count does not match n and leaf_size");
    std::vector<bool> seen(n, false);
    for (std::size_t i = 0; i < n; ++i) {
        const index_t id = ids[i];
        require(id >= 0 && static_cast<std::size_t>(id) < n && !seen[static_cast<std::size_t>(id)],
                "tree state: ids are not a permutation");
        seen[static_cast<std::size_t>(id)] = true;
    }
    nodes_.resize(n_internal);
    for (std::size_t i = 0; i < n_internal; ++i) {
        require(split_dims[i] >= 0 && static_cast<std::size_t>(split_dims[i]) < dim,
                "tree state: split dimension out of range");
        nodes_[i] = Node<T>{split_bounds[2 * i], split_bounds[2 * i + 1],
                            static_cast<std::uint32_t>(split_dims[i])};
    }
    points_ = std::move(points);
    ids_.assign(ids, n);
    bbox_ = std::move(bbox);
    check_bounds();
}

// The relations the builder establishes, checked on a loaded tree: the points are finite, the
// bounding box is their exact per-dimension range, and every internal node's (lo, hi) are the
// largest left and the smallest right coordinate in its split dimension. The search prunes
// cells with exactly these numbers, so a file that moved one (to NaN, to a huge value, or just
// inward) could make it skip true neighbours; equality is what the builder writes, so a saved
// tree always passes. Cost: one pass over each level's points in one dimension (n * levels).
template <typename T> void KdTree<T>::check_bounds() const {
    for (const T v : points_)
        require(std::isfinite(v), "tree state: a point is NaN or infinite");
    const std::size_t d = dim_, leaves = leaf_start_.size() - 1;
    // Range of coordinate j over leaves [first, last): contiguous runs (dimension-major leaves).
    const auto range = [&](std::size_t first, std::size_t last, std::size_t j, T& lo, T& hi) {
        bool any = false;
        for (std::size_t l = first; l < last; ++l) {
            const std::size_t s = static_cast<std::size_t>(leaf_start_[l]);
            const std::size_t cnt = static_cast<std::size_t>(leaf_start_[l + 1]) - s;
            const T* p = points_.data() + s * d + j * cnt;
            for (std::size_t i = 0; i < cnt; ++i) {
                lo = any ? std::min(lo, p[i]) : p[i];
                hi = any ? std::max(hi, p[i]) : p[i];
                any = true;
            }
        }
        return any;
    };
    for (std::size_t j = 0; j < d; ++j) {
        T lo{}, hi{};
        range(0, leaves, j, lo, hi);
        require(bbox_[j] == lo && bbox_[d + j] == hi,
                "tree state: the bounding box does not match the points");
    }
    for (std::size_t level = 0; level < levels_; ++level) {
        const std::size_t first_node = (std::size_t{1} << level) - 1;
        const std::size_t span = std::size_t{1} << (levels_ - level);
        for (std::size_t k = 0; k < (std::size_t{1} << level); ++k) {
            const Node<T>& nd = nodes_[first_node + k];
            const std::size_t first = k * span, mid = first + span / 2;
            T left_lo{}, left_hi{}, right_lo{}, right_hi{};
            const bool ok = range(first, mid, nd.dim, left_lo, left_hi) &&
                            range(mid, first + span, nd.dim, right_lo, right_hi);
            require(ok && nd.lo == left_hi && nd.hi == right_lo,
                    "tree state: a split bound does not match the points");
        }
    }
}

template <typename T> std::size_t KdTree<T>::leaf_of(const T* q) const noexcept {
    std::size_t node = 0;
    for (std::size_t level = 0; level < levels_; ++level) {
        const Node<T>& nd = nodes_[node];
        const T v = q[nd.dim];
        node = 2 * node + 1 + (((v - nd.lo) + (v - nd.hi)) >= T(0) ? 1 : 0);
    }
    return node - ((std::size_t{1} << levels_) - 1);
}

template class KdTree<float>;
template class KdTree<double>;

} // namespace pysim::kdtree
