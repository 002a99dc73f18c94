// What a KD-tree search collects, as policies of the one traversal (search.cpp):
//
//   bound()          the squared distance a point must not exceed to matter; the traversal
//                    prunes cells against it and the leaf scan tests each point against it
//   add(dist, id)    offered only when dist <= bound()
//
// Both k-NN sets order candidates by (distance, original index) lexicographically, so among
// equal distances the smaller index is kept: the tie rule of every exact pysim search.
// KnnSorted keeps a sorted array and inserts by shifting (the cheapest for the usual small k:
// no sift, and the output is already in order); KnnHeap is the common bounded max-heap
// (common/topk.hpp) for large k. Storage is allocated once per batch chunk, not per query.
// RadiusCollector appends every point within a fixed bound.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "common/topk.hpp"
#include "common/types.hpp"

namespace pysim::kdtree {

/// Up to this k the sorted array beats the heap (measured on k-NN with k = 1..64).
inline constexpr std::size_t kSortedMaxK = 32;

// The interface of common/topk.hpp's TopK over a sorted array instead of a heap (duplicates
// pairs the class heads).
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

/// The common bounded heap (common/topk.hpp) under the traversal's policy names.
template <typename T> class KnnHeap {
  public:
    explicit KnnHeap(std::size_t k) : top_(k) {}
    void clear() noexcept { top_.reset(); }
    /// +inf until k items are held, then the k-th smallest distance (one load on the hot path).
    T bound() const noexcept { return top_.worst(); }
    void add(T dist, index_t id) noexcept { top_.push(dist, id); }
    /// Writes the kept items ascending by (distance, index) into `out_k` slots, padding with
    /// inf / kNoIndex; `take_sqrt` returns Euclidean distances. Leaves the heap empty.
    void extract(T* dist, index_t* idx, std::size_t out_k, bool take_sqrt) noexcept {
        top_.extract_sorted(dist, idx, out_k, take_sqrt);
    }

  private:
    TopK<T> top_;
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
