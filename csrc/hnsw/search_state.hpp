// Per-worker search state: epoch-tagged visited marks, candidate heaps and scratch buffers.
//
// Nothing here is shared between concurrent searches, so every query call may use its own ef
// and any number of threads may search at once. A worker leases one Scratch from the index's
// pool for a whole chunk of queries (or insertions) and gives it back afterwards, so the
// buffers are allocated once and reused.
//
// Visited marks (after hnswlib's VisitedListPool): one uint16 per slot holding the epoch of the
// search that last saw it; a new search only bumps the epoch, and the array is cleared once
// every 65,535 searches when the epoch wraps.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "hnsw/block_codes.hpp"
#include "hnsw/graph.hpp"
#include "quant/query.hpp"

namespace pysim::hnsw {

struct Cand {
    float d;
    slot_t id;
};
// Total order: distance, then slot (deterministic heaps when distances tie).
inline bool operator<(const Cand& a, const Cand& b) noexcept {
    return a.d < b.d || (a.d == b.d && a.id < b.id);
}
inline bool operator>(const Cand& a, const Cand& b) noexcept {
    return b < a;
}

class VisitedList {
  public:
    /// Starts a new search over `n` slots.
    void begin(std::size_t n) {
        if (marks_.size() < n) {
            marks_.assign(n, 0);
            epoch_ = 0;
        }
        if (++epoch_ == 0) {
            std::fill(marks_.begin(), marks_.end(), std::uint16_t{0});
            epoch_ = 1;
        }
    }
    /// True if `s` was already seen in this search; marks it seen.
    bool test_and_set(slot_t s) noexcept {
        std::uint16_t& m = marks_[s];
        if (m == epoch_)
            return true;
        m = epoch_;
        return false;
    }
    bool seen(slot_t s) const noexcept { return marks_[s] == epoch_; }
    const std::uint16_t* mark_ptr(slot_t s) const noexcept { return marks_.data() + s; }

  private:
    std::vector<std::uint16_t> marks_;
    std::uint16_t epoch_ = 0;
};

/// Binary min-heap (best = smallest) or max-heap (best = largest) of candidates.
template <bool kMin> class CandHeap {
  public:
    void clear() noexcept { v_.clear(); }
    void reserve(std::size_t n) { v_.reserve(n); }
    bool empty() const noexcept { return v_.empty(); }
    std::size_t size() const noexcept { return v_.size(); }
    const Cand& top() const noexcept { return v_.front(); }
    void push(Cand c) {
        v_.push_back(c);
        std::push_heap(v_.begin(), v_.end(), Cmp{});
    }
    void pop() noexcept {
        std::pop_heap(v_.begin(), v_.end(), Cmp{});
        v_.pop_back();
    }
    /// Unordered contents.
    std::vector<Cand>& items() noexcept { return v_; }

  private:
    // Distance only: a tie-break would cost a branch per comparison, and heaps fed the same
    // sequence behave identically anyway (determinism); final ties are ordered by id later.
    struct Cmp {
        bool operator()(const Cand& a, const Cand& b) const noexcept {
            return kMin ? b.d < a.d : a.d < b.d;
        }
    };
    std::vector<Cand> v_;
};

struct Scratch {
    VisitedList visited;
    CandHeap<true> candidates;       // frontier, nearest first
    CandHeap<false> results;         // best ef so far, farthest on top
    std::vector<Cand> work;          // sorted candidates, heuristic input
    std::vector<Cand> seeds;         // entry points of one construction search
    std::vector<Cand> chosen;        // a new node's neighbours at one level
    std::vector<Cand> picked;        // heuristic output when a neighbour's list overflows
    std::vector<slot_t> ids;         // unvisited neighbours of the node being expanded (>= M0)
    std::vector<float> query;        // prepared (normalised) query
    std::vector<unsigned char> code; // an encoded row
    std::vector<float> dists;        // distances of one neighbour list (batch scoring)
    quant::Query quant;              // prepared query of a quantised index
    // Queries of a quantised build without a float32 copy, one per re-binding depth
    // (quant_distance.hpp explains why three suffice).
    std::array<quant::Query, 4> quant_stack;
    // Block layout (block_search.cpp): the query's FastScan form, the beam sorted by estimate
    // with a flag per entry (1 = not expanded yet), and one batch of kernel sums.
    BlockQuery block;
    std::vector<Cand> pool;
    std::vector<std::uint8_t> pool_open;
    std::vector<std::uint32_t> sums;

    void reserve(std::size_t ef, std::size_t m0, std::size_t dim) {
        candidates.reserve(ef + 4 * m0);
        results.reserve(ef + 1);
        work.reserve(std::max(ef, 4 * m0) + 1);
        seeds.reserve(m0 + 1);
        chosen.reserve(m0 + 1);
        picked.reserve(m0 + 1);
        if (ids.size() < m0 + 1)
            ids.resize(m0 + 1);
        query.resize(dim);
    }
};

/// A free list of Scratch objects shared by the index's workers.
class ScratchPool {
  public:
    class Lease {
      public:
        Lease(ScratchPool& pool, std::unique_ptr<Scratch> s) : pool_(&pool), s_(std::move(s)) {}
        Lease(Lease&&) = default;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (s_)
                pool_->give_back(std::move(s_));
        }
        Scratch& operator*() const noexcept { return *s_; }
        Scratch* operator->() const noexcept { return s_.get(); }

      private:
        ScratchPool* pool_;
        std::unique_ptr<Scratch> s_;
    };

    Lease lease() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (free_.capacity() < kKeep)
                free_.reserve(kKeep); // give_back never allocates
            if (!free_.empty()) {
                auto s = std::move(free_.back());
                free_.pop_back();
                return Lease(*this, std::move(s));
            }
        }
        return Lease(*this, std::make_unique<Scratch>());
    }

    /// Pre-creates `n` scratch objects (so a later add does not allocate them mid-way).
    void prepare(std::size_t n, std::size_t ef, std::size_t m0, std::size_t dim) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (free_.capacity() < kKeep)
            free_.reserve(kKeep);
        while (free_.size() < std::min(n, kKeep)) {
            auto s = std::make_unique<Scratch>();
            s->reserve(ef, m0, dim);
            free_.push_back(std::move(s));
        }
    }

    void clear() {
        std::lock_guard<std::mutex> lock(mutex_);
        free_.clear();
    }

  private:
    static constexpr std::size_t kKeep = 256;

    void give_back(std::unique_ptr<Scratch> s) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        if (free_.size() < free_.capacity())
            free_.push_back(std::move(s));
    }

    std::mutex mutex_;
    std::vector<std::unique_ptr<Scratch>> free_;
};

} // namespace pysim::hnsw
