// Exact k-nearest-neighbour and radius search over a KD-tree, float32 or float64, squared
// Euclidean distance inside (Euclidean is its square root, taken only on output).
//
// Layout (after scikit-learn's BinaryTree): the tree is *implicit*. Every split is at the
// median position of its node's range, so the shape depends only on n and the number of
// levels L: node i has children 2i+1 and 2i+2, all 2^L leaves sit on level L, and each leaf
// holds floor or ceil of n / 2^L points (at most `leaf_size`). Internal nodes are three
// numbers (split dimension, largest left coordinate, smallest right coordinate), leaf ranges
// follow from n, and the points are one reordered copy of the data in leaf order plus the
// permutation `ids`. Flat arrays make save/load and pickling a copy of five arrays, and the
// build needs no memory beyond that copy (partitioning moves rows in place).
//
// Inside a leaf the points are stored dimension-major (coordinate j of the leaf's i-th point
// at leaf_base + j * count + i), so a leaf scan is one call of the SIMD `l2sq_panel` kernel:
// W points per vector instruction and no horizontal sums. Measured on (10^5 x 3) float32,
// k = 10: 47k queries/s with row-major leaves and the one-point-at-a-time l2sq_many kernel,
// 810k with panels (AVX-512; 770k even with the 4-lane scalar panel kernel, so the layout,
// not the ISA, is what matters at tiny d). That kernel also fixes the arithmetic: a distance is
// the sum over dimensions, in order, of fl((x_j - q_j)^2), in the storage dtype. Ranking uses
// these squared values with ties broken by the smaller original index; so the result is the
// exact k smallest under that arithmetic, independent of the tree shape, thread count and ISA.
//
// Search (after nanoflann): depth-first, nearer child first, with the squared distance from
// the query to a cell updated incrementally, one dimension per level (Arya & Mount), never
// recomputed. The incremental bound carries rounding error of a few ulps per level, so a cell
// is skipped only when its bound exceeds the current k-th distance by more than that error
// (the `shrink_` factor in search.cpp): pruning is conservative and can never drop a true
// neighbour or a tie.
//
// Batches of queries are processed in leaf order of the cell each query falls into, so
// consecutive queries walk the same nodes and leaves while they are still in cache (measured:
// 1.5x on (10^6 x 3) uniform, 3x on (10^6 x 8) clustered, 100,000 queries).
//
// Thread safety: a built tree is immutable; queries are const and may run concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/types.hpp"

namespace pysim::kdtree {

/// An internal node: points of the left child have x[dim] <= lo, of the right child >= hi.
template <typename T> struct Node {
    T lo;
    T hi;
    std::uint32_t dim;
};

/// Number of levels below the root so that every leaf holds at most `leaf_size` points and
/// at least one (so leaves may exceed leaf_size only when leaf_size == 1).
std::size_t levels_for(std::size_t n, std::size_t leaf_size) noexcept;

/// Original row of each stored point: 4 bytes per point while n < 2^32 (the common case; it
/// saves a fifth of a float32 3-D tree), 8 bytes beyond. Exactly one of the vectors is used.
class IdMap {
  public:
    /// `force_wide` exists for tests: the 64-bit path otherwise needs 2^32 points.
    void assign_iota(std::size_t n, bool force_wide = false);
    void assign(const index_t* ids, std::size_t n, bool force_wide = false);
    bool wide() const noexcept { return !wide_.empty(); }
    std::size_t size() const noexcept { return wide() ? wide_.size() : narrow_.size(); }
    index_t operator[](std::size_t i) const noexcept {
        return wide() ? wide_[i] : static_cast<index_t>(narrow_[i]);
    }
    std::vector<std::uint32_t>& narrow() noexcept { return narrow_; }
    std::vector<index_t>& wide_ids() noexcept { return wide_; }
    const std::vector<std::uint32_t>& narrow() const noexcept { return narrow_; }
    const std::vector<index_t>& wide_ids() const noexcept { return wide_; }

  private:
    std::vector<std::uint32_t> narrow_;
    std::vector<index_t> wide_;
};

/// Radius-search output in CSR form, in query order.
template <typename T> struct RadiusResult {
    std::vector<index_t> indptr;  // m + 1
    std::vector<index_t> indices; // indptr[m]
    std::vector<T> distances;     // indptr[m], empty unless asked for
};

template <typename T> class KdTree {
  public:
    /// Builds the tree over `data` (n rows, dim columns, C order), copying it into leaf order.
    /// Throws std::invalid_argument if n == 0, dim == 0 or leaf_size == 0.
    KdTree(const T* data, std::size_t n, std::size_t dim, std::size_t leaf_size,
           std::size_t threads, bool wide_ids = false);

    /// Rebuilds a tree from the arrays of a saved one, checking that they are consistent
    /// (sizes, split dimensions in range, ids a permutation, finite points, and the bounding
    /// box and every split bound exactly what the builder derives from the points).
    /// Throws std::invalid_argument.
    KdTree(std::size_t n, std::size_t dim, std::size_t leaf_size, std::vector<T> points,
           const index_t* ids, const std::int32_t* split_dims, const T* split_bounds,
           std::size_t n_internal, std::vector<T> bbox);

    /// k nearest points of each of the m queries (m x dim, C order), written ascending to
    /// dist/idx (m x k); slots beyond n are padded with inf / kNoIndex. `euclidean` takes the
    /// square root of the returned distances (ranking is identical).
    void knn(const T* queries, std::size_t m, std::size_t k, bool euclidean, T* dist, index_t* idx,
             std::size_t threads) const;

    /// Every point within radii[i] of query i (distance <= radius, in the metric's units).
    /// Results of a query are in tree order, or ascending by (distance, index) when `sort`.
    RadiusResult<T> radius(const T* queries, std::size_t m, const T* radii, bool euclidean,
                           bool want_distances, bool sort, std::size_t threads) const;

    std::size_t size() const noexcept { return n_; }
    std::size_t dim() const noexcept { return dim_; }
    std::size_t leaf_size() const noexcept { return leaf_size_; }
    std::size_t levels() const noexcept { return levels_; }
    std::size_t n_internal() const noexcept { return nodes_.size(); }
    /// Points in leaf order, dimension-major inside each leaf (n * dim values).
    const std::vector<T>& points() const noexcept { return points_; }
    /// Original row of each stored point.
    const IdMap& ids() const noexcept { return ids_; }
    const std::vector<Node<T>>& nodes() const noexcept { return nodes_; }
    /// Bounding box of all points: dim minima followed by dim maxima.
    const std::vector<T>& bbox() const noexcept { return bbox_; }
    /// First position of leaf l (l in [0, 2^levels]; the last entry is n).
    std::size_t leaf_begin(std::size_t l) const noexcept {
        return static_cast<std::size_t>(leaf_start_[l]);
    }
    const std::vector<index_t>& leaf_starts() const noexcept { return leaf_start_; }
    std::size_t max_leaf() const noexcept { return max_leaf_; }
    /// The leaf (0 .. 2^levels - 1) a query falls into when descending by split midpoints.
    std::size_t leaf_of(const T* q) const noexcept;

  private:
    void init_leaf_ranges();
    void check_bounds() const;
    void build(std::size_t threads);
    template <typename Id> void build_with(Id* ids, std::size_t threads);
    template <class Builder, typename Id> void build_levels(Id* ids, std::size_t threads);

    std::size_t n_ = 0;
    std::size_t dim_ = 0;
    std::size_t leaf_size_ = 0;
    std::size_t levels_ = 0;
    std::size_t max_leaf_ = 0;
    std::vector<T> points_;
    IdMap ids_;
    std::vector<Node<T>> nodes_;      // 2^levels - 1 internal nodes
    std::vector<index_t> leaf_start_; // 2^levels + 1
    std::vector<T> bbox_;             // 2 * dim
};

extern template class KdTree<float>;
extern template class KdTree<double>;

} // namespace pysim::kdtree
