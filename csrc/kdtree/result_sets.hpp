// What a KD-tree search collects, as policies of the one traversal (search.cpp):
//
//   bound()          the squared distance a point must not exceed to matter; the traversal
//                    prunes cells against it and the leaf scan tests each point against it
//   add(dist, id)    offered only when dist <= bound()
//
// Both k-NN sets order candidates by (distance, original index) lexicographically, so among
// equal distances the smaller index is kept: the tie rule of every exact pysim search.
// KnnSorted keeps a sorted array and inserts by shifting (the cheapest for the usual small k:
// no sift, and the output is already in order); KnnHeap is a fixed-capacity max-heap for
// large k. Storage is allocated once per batch chunk, not per query. RadiusCollector appends
// every point within a fixed bound.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "common/types.hpp"

namespace pysim::kdtree {

/// Up to this k the sorted array beats the heap (measured on k-NN with k = 1..64).
inline constexpr std::size_t kSortedMaxK = 32;

template <typename T> class KnnSorted {
  public:
    explicit KnnSorted(std::size_t k) : k_(k), dist_(k), id_(k) {}

    void clear() noexcept {
        size_ = 0;
        worst_ = std::numeric_limits<T>::infinity();
    }

    T bound() const noexcept { return worst_; }

    void add(T dist, index_t id) noexcept {
        std::size_t pos = size_;
        if (size_ == k_) { // full: the last item leaves, if the newcomer is smaller
            if (!less(dist, id, dist_[k_ - 1], id_[k_ - 1]))
                return;
            pos = k_ - 1;
        } else {
            ++size_;
        }
        while (pos > 0 && less(dist, id, dist_[pos - 1], id_[pos - 1])) {
            dist_[pos] = dist_[pos - 1];
            id_[pos] = id_[pos - 1];
            --pos;
        }
        dist_[pos] = dist;
        id_[pos] = id;
        if (size_ == k_)
            worst_ = dist_[k_ - 1];
    }

    void extract(T* dist, index_t* idx, std::size_t out_k, bool take_sqrt) noexcept {
        for (std::size_t i = 0; i < size_; ++i) {
            dist[i] = take_sqrt ? std::sqrt(dist_[i]) : dist_[i];
            idx[i] = id_[i];
        }
        for (std::size_t i = size_; i < out_k; ++i) {
            dist[i] = std::numeric_limits<T>::infinity();
            idx[i] = kNoIndex;
        }
        clear();
    }

  private:
    static bool less(T da, index_t ia, T db, index_t ib) noexcept {
        return da < db || (da == db && ia < ib);
    }

    std::size_t k_;
    std::size_t size_ = 0;
    T worst_ = std::numeric_limits<T>::infinity();
    std::vector<T> dist_;
    std::vector<index_t> id_;
};

template <typename T> class KnnHeap {
  public:
    explicit KnnHeap(std::size_t k) : k_(k), dist_(k), id_(k) {}

    void clear() noexcept {
        size_ = 0;
        worst_ = std::numeric_limits<T>::infinity();
    }

    /// +inf until k items are held, then the k-th smallest distance (one load on the hot path).
    T bound() const noexcept { return worst_; }

    void add(T dist, index_t id) noexcept {
        if (size_ < k_) {
            sift_up(size_++, dist, id);
            if (size_ == k_)
                worst_ = dist_[0];
        } else if (less(dist, id, dist_[0], id_[0])) {
            sift_down(dist, id);
            worst_ = dist_[0];
        }
    }

    /// Writes the kept items ascending by (distance, index) into `out_k` slots, padding with
    /// inf / kNoIndex; `take_sqrt` returns Euclidean distances. Leaves the heap empty.
    void extract(T* dist, index_t* idx, std::size_t out_k, bool take_sqrt) noexcept {
        for (std::size_t i = size_; i < out_k; ++i) {
            dist[i] = std::numeric_limits<T>::infinity();
            idx[i] = kNoIndex;
        }
        while (size_ > 0) { // heap sort: the root is the largest of what is left
            const std::size_t last = size_ - 1;
            dist[last] = take_sqrt ? std::sqrt(dist_[0]) : dist_[0];
            idx[last] = id_[0];
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

    // Replaces the root by (dist, id) and restores the heap over [0, size_).
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

template <typename T> class RadiusCollector {
  public:
    RadiusCollector(std::vector<index_t>& ids, std::vector<T>& dists) : ids_(ids), dists_(dists) {}

    void reset(T bound) noexcept { bound_ = bound; }
    T bound() const noexcept { return bound_; }
    void add(T dist, index_t id) {
        ids_.push_back(id);
        dists_.push_back(dist);
    }

  private:
    std::vector<index_t>& ids_;
    std::vector<T>& dists_;
    T bound_ = 0;
};

} // namespace pysim::kdtree
