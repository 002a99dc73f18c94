// Bounded top-k selection: keeps the k smallest (distance, index) pairs seen so far. The one
// k-NN heap of pysim: brute force's exact re-rank, the HNSW result sets and the KD-tree's
// large-k policy (kdtree/result_sets.hpp) all use it.
//
// A fixed-capacity binary max-heap on (distance, index) in lexicographic order, so among equal
// distances the smaller index wins, which is the tie rule of every exact search in pysim.
// Distances and indices sit in separate arrays (a sift compares distances first and touches an
// index only on a tie), sifts move a hole instead of swapping, and `worst()` is cached: the
// pruning bound callers compare against before pushing is one load on the hot path. It is
// +inf until k items have been seen. A NaN distance is refused: it would break the heap's
// ordering (and did crash a sort when a caller's referenced array turned NaN under an index),
// and NaN is never a neighbour. extract_sorted() writes ascending results and pads missing
// slots with inf / kNoIndex.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "common/types.hpp"

namespace pysim {

template <typename T> class TopK {
  public:
    explicit TopK(std::size_t k) : k_(k), dist_(k), id_(k) {}

    /// Empties the heap (capacity kept).
    void reset() noexcept {
        size_ = 0;
        worst_ = std::numeric_limits<T>::infinity();
    }
    std::size_t size() const noexcept { return size_; }
    std::size_t k() const noexcept { return k_; }
    bool full() const noexcept { return size_ >= k_; }

    /// The distance a new candidate must beat (or tie with a smaller index) to enter.
    T worst() const noexcept { return worst_; }

    /// Offers a candidate; returns true if it was kept.
    bool push(T dist, index_t id) noexcept {
        if (dist != dist)
            return false;
        if (size_ < k_) {
            sift_up(size_++, dist, id);
            if (size_ == k_)
                worst_ = dist_[0];
            return true;
        }
        if (k_ == 0 || !less(dist, id, dist_[0], id_[0]))
            return false;
        sift_down(dist, id);
        worst_ = dist_[0];
        return true;
    }

    /// Writes the kept items ascending by (distance, index) into dist/idx (length `out_k` >=
    /// size()), padding with inf / kNoIndex; `take_sqrt` writes their square roots (squared
    /// Euclidean kept, Euclidean returned). Leaves the heap empty.
    void extract_sorted(T* dist, index_t* idx, std::size_t out_k, bool take_sqrt = false) noexcept {
        for (std::size_t i = size_; i < out_k; ++i) {
            dist[i] = std::numeric_limits<T>::infinity();
            idx[i] = kNoIndex;
        }
        while (size_ > 0) { // heap sort: the root is the largest of what is left
            const std::size_t last = size_ - 1;
            if (last < out_k) {
                dist[last] = take_sqrt ? std::sqrt(dist_[0]) : dist_[0];
                idx[last] = id_[0];
            }
            const T d = dist_[last];
            const index_t id = id_[last];
            size_ = last;
            if (size_ > 0)
                sift_down(d, id);
        }
        worst_ = std::numeric_limits<T>::infinity();
    }

  private:
    static bool less(T da, index_t ia, T db, index_t ib) noexcept {
        return da < db || (da == db && ia < ib);
    }

    void sift_up(std::size_t pos, T dist, index_t id) noexcept {
        while (pos > 0) {
            const std::size_t parent = (pos - 1) / 2;
            if (!less(dist_[parent], id_[parent], dist, id))
                break;
            dist_[pos] = dist_[parent];
            id_[pos] = id_[parent];
            pos = parent;
        }
        dist_[pos] = dist;
        id_[pos] = id;
    }

    // Replaces the root by (dist, id) and restores the heap over [0, size_). It ends like
    // sift_up (duplicates pairs them by shape): both drop the moving item into the last hole.
    void sift_down(T dist, index_t id) noexcept {
        std::size_t pos = 0;
        for (;;) {
            std::size_t child = 2 * pos + 1;
            if (child >= size_)
                break;
            if (child + 1 < size_ &&
                less(dist_[child], id_[child], dist_[child + 1], id_[child + 1]))
                ++child;
            if (!less(dist, id, dist_[child], id_[child]))
                break;
            dist_[pos] = dist_[child];
            id_[pos] = id_[child];
            pos = child;
        }
        dist_[pos] = dist;
        id_[pos] = id;
    }

    std::size_t k_;
    std::size_t size_ = 0;
    T worst_ = std::numeric_limits<T>::infinity();
    std::vector<T> dist_;
    std::vector<index_t> id_;
};

} // namespace pysim
