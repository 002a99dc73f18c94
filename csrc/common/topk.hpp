// Bounded top-k selection: keeps the k smallest (distance, index) pairs seen so far.
//
// A max-heap on (distance, index) in lexicographic order, so among equal distances the smaller
// index wins, which is the tie rule of every exact search in pysim. `worst()` is the pruning
// bound callers compare against before pushing; it is +inf until k items have been seen.
// A NaN distance is refused: it would break the heap's ordering (and did crash a sort when a
// caller's referenced array turned NaN under an index), and NaN is never a neighbour.
// extract_sorted() writes ascending results and pads missing slots with inf / kNoIndex.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "common/types.hpp"

namespace pysim {

template <typename T> class TopK {
  public:
    explicit TopK(std::size_t k) : k_(k) { heap_.reserve(k); }

    void reset() { heap_.clear(); }
    std::size_t size() const noexcept { return heap_.size(); }
    std::size_t k() const noexcept { return k_; }
    bool full() const noexcept { return heap_.size() >= k_; }

    /// The distance a new candidate must beat (or tie with a smaller index) to enter.
    T worst() const noexcept {
        return full() ? heap_.front().first : std::numeric_limits<T>::infinity();
    }

    /// Offers a candidate; returns true if it was kept.
    bool push(T dist, index_t idx) {
        if (k_ == 0 || dist != dist)
            return false;
        if (!full()) {
            heap_.emplace_back(dist, idx);
            std::push_heap(heap_.begin(), heap_.end());
            return true;
        }
        const auto& top = heap_.front();
        if (dist < top.first || (dist == top.first && idx < top.second)) {
            std::pop_heap(heap_.begin(), heap_.end());
            heap_.back() = {dist, idx};
            std::push_heap(heap_.begin(), heap_.end());
            return true;
        }
        return false;
    }

    /// Items in heap order (unsorted).
    const std::vector<std::pair<T, index_t>>& items() const noexcept { return heap_; }

    /// Writes the kept items ascending into dist/idx (length `out_k`), padding with
    /// inf / kNoIndex. Leaves the heap empty.
    void extract_sorted(T* dist, index_t* idx, std::size_t out_k) {
        std::sort_heap(heap_.begin(), heap_.end());
        const std::size_t have = std::min(heap_.size(), out_k);
        for (std::size_t i = 0; i < have; ++i) {
            dist[i] = heap_[i].first;
            idx[i] = heap_[i].second;
        }
        for (std::size_t i = have; i < out_k; ++i) {
            dist[i] = std::numeric_limits<T>::infinity();
            idx[i] = kNoIndex;
        }
        heap_.clear();
    }

  private:
    std::size_t k_;
    std::vector<std::pair<T, index_t>> heap_;
};

} // namespace pysim
