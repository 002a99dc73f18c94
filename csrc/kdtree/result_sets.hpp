// What a KD-tree search collects, as policies of the one traversal (search.cpp):
//
//   bound()          the squared distance a point must not exceed to matter; the traversal
//                    prunes cells against it and the leaf scan tests each point against it
//   add(dist, id)    offered only when dist <= bound()
//
// KnnHeap is a fixed-capacity max-heap on (distance, original index) in lexicographic order:
// among equal distances the smaller index is kept, the tie rule of every exact pysim search.
// Its storage is allocated once per batch chunk, not per query. RadiusCollector appends
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

template <typename T>
class KnnHeap {
  public:
    explicit KnnHeap(std::size_t k) : k_(k), dist_(k), id_(k) {}

    void clear() noexcept { size_ = 0; }

    T bound() const noexcept {
        return size_ == k_ ? dist_[0] : std::numeric_limits<T>::infinity();
    }

    void add(T dist, index_t id) noexcept {
        if (size_ < k_) {
            sift_up(size_++, dist, id);
        } else if (less(dist, id, dist_[0], id_[0])) {
            sift_down(dist, id);
        }
    }

    /// Writes the kept items ascending by (distance, index) into `out_k` slots, padding with
    /// inf / kNoIndex; `take_sqrt` returns Euclidean distances. Leaves the heap empty.
    void extract(T* dist, index_t* idx, std::size_t out_k, bool take_sqrt) noexcept {
        for (std::size_t i = size_; i < out_k; ++i) {
            dist[i] = std::numeric_limits<T>::infinity();
            idx[i] = kNoIndex;
        }
        while (size_ > 0) {  // heap sort: the root is the largest of what is left
            const std::size_t last = size_ - 1;
            dist[last] = take_sqrt ? std::sqrt(dist_[0]) : dist_[0];
            idx[last] = id_[0];
            const T d = dist_[last];
            const index_t id = id_[last];
            size_ = last;
            if (size_ > 0) sift_down(d, id);
        }
    }

  private:
    static bool less(T da, index_t ia, T db, index_t ib) noexcept {
        return da < db || (da == db && ia < ib);
    }

    void sift_up(std::size_t pos, T dist, index_t id) noexcept {
        while (pos > 0) {
            const std::size_t parent = (pos - 1) / 2;
            if (!less(dist_[parent], id_[parent], dist, id)) break;
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
            if (child >= size_) break;
            if (child + 1 < size_ && less(dist_[child], id_[child], dist_[child + 1], id_[child + 1]))
                ++child;
            if (!less(dist, id, dist_[child], id_[child])) break;
            dist_[pos] = dist_[child];
            id_[pos] = id_[child];
            pos = child;
        }
        dist_[pos] = dist;
        id_[pos] = id;
    }

    std::size_t k_;
    std::size_t size_ = 0;
    std::vector<T> dist_;
    std::vector<index_t> id_;
};

template <typename T>
class RadiusCollector {
  public:
    RadiusCollector(std::vector<index_t>& ids, std::vector<T>& dists)
        : ids_(ids), dists_(dists) {}

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

}  // namespace pysim::kdtree
