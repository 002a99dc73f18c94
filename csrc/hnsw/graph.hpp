// Storage of an HNSW graph: node arena, upper-level link pool, labels, and node locks.
//
// Layout (after hnswlib's level-0 arena): every slot owns one fixed-size record in a single
// 64-byte-aligned arena, and the record holds what a level-0 search step touches together:
//
//     [ vector code (code_bytes) ][ extra (extra_bytes) ][ header u32 ][ M0 neighbour ids u32 ]
//
// (extra is empty except in the "rabitq" layout, where it holds the neighbours' codes: see
// block_codes.hpp; its first word is a seal that every rewrite of the level-0 list zeroes).
// so expanding a node reads its header and links from one place, and a distance reads one
// contiguous code. The record stride is a multiple of 32 bytes (or of 64 when that costs
// under 4% of the record) so codes start aligned for full-width SIMD loads. The header packs
// the level-0 neighbour count (bits 0-15), the slot status (bits 16-23) and the node's level
// (bits 24-31). Nodes above level 0 (a 1/M fraction) keep their lists for levels 1..L in a
// separate pool of (M + 1)-word lists ([count][M ids]) found through a per-slot word offset.
//
// Concurrency contract (enforced by HnswIndex's reader/writer lock):
//   * codes, labels, levels, statuses and the geometry change only under the exclusive lock;
//   * link lists change under the shared lock, each list under its node's (striped) mutex,
//     and are read without locks: ids and counts are 32-bit relaxed atomics and every id ever
//     written names a slot whose code was written (under the exclusive lock) before, so a
//     reader racing a writer sees a mix of old and new neighbours, never an invalid one;
//   * invariant: a link at level l points to a slot whose level is >= l, and never to a
//     `free` slot (one that was allocated but never inserted).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "common/types.hpp"

namespace pysim::hnsw {

using slot_t = std::uint32_t;
inline constexpr slot_t kNoSlot = 0xFFFFFFFFu;
inline constexpr std::size_t kMaxSlots = 0xFFFFFFF0u;
inline constexpr int kMaxLevel = 30;

/// The entry point and the graph's top level packed in one word, so both change in one
/// atomic store: (level + 1) << 32 | slot, 0 for an empty graph.
struct Entry {
    static constexpr std::uint64_t pack(slot_t s, int level) noexcept {
        return (std::uint64_t(level + 1) << 32) | s;
    }
    static constexpr slot_t slot(std::uint64_t word) noexcept {
        return static_cast<slot_t>(word & 0xFFFFFFFFu);
    }
    /// Top level, -1 for an empty graph.
    static constexpr int level(std::uint64_t word) noexcept { return int(word >> 32) - 1; }
};

/// live: searchable; deleted: a tombstone still used for routing, reusable by later adds;
/// free: allocated but never linked (an add rolled back before inserting it), reusable.
enum class Status : std::uint8_t { live = 0, deleted = 1, free = 2 };

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  alignof(std::atomic<std::uint32_t>) == alignof(std::uint32_t),
              "link words are accessed in place as atomics");

inline std::uint32_t load_word(const std::uint32_t* p,
                               std::memory_order order = std::memory_order_relaxed) noexcept {
    return reinterpret_cast<const std::atomic<std::uint32_t>*>(p)->load(order);
}
inline void store_word(std::uint32_t* p, std::uint32_t v,
                       std::memory_order order = std::memory_order_relaxed) noexcept {
    reinterpret_cast<std::atomic<std::uint32_t>*>(p)->store(v, order);
}

inline void prefetch(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 0, 3);
#else
    (void)p;
#endif
}

/// Zero-filled, 64-byte aligned, move-only byte buffer. calloc hands back fresh zero pages
/// for large sizes, so reserved-but-unused capacity costs address space, not resident memory.
class AlignedBuffer {
  public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(std::size_t bytes) : bytes_(bytes) {
        if (bytes == 0)
            return;
        raw_.reset(static_cast<unsigned char*>(std::calloc(bytes + 64, 1)));
        if (!raw_)
            throw std::bad_alloc();
        const auto addr = reinterpret_cast<std::uintptr_t>(raw_.get());
        data_ = raw_.get() + ((64 - addr % 64) % 64);
    }
    unsigned char* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return bytes_; }

  private:
    struct Free {
        void operator()(unsigned char* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<unsigned char, Free> raw_;
    unsigned char* data_ = nullptr;
    std::size_t bytes_ = 0;
};

class Graph {
  public:
    Graph(std::size_t code_bytes, std::size_t M, std::size_t extra_bytes = 0);

    std::size_t M() const noexcept { return M_; }
    std::size_t M0() const noexcept { return 2 * M_; }
    std::size_t max_links(int level) const noexcept { return level == 0 ? 2 * M_ : M_; }
    std::size_t code_bytes() const noexcept { return code_bytes_; }
    std::size_t stride() const noexcept { return stride_; }
    /// Slots handed out so far (live, deleted and free); ids in links are below this.
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    std::size_t upper_words() const noexcept { return upper_used_; }

    unsigned char* code(slot_t s) noexcept { return arena_.data() + std::size_t(s) * stride_; }
    const unsigned char* code(slot_t s) const noexcept {
        return arena_.data() + std::size_t(s) * stride_;
    }
    /// The extra region of a record (extra_bytes(), 16-byte aligned within the record).
    unsigned char* extra(slot_t s) noexcept { return code(s) + extra_offset_; }
    const unsigned char* extra(slot_t s) const noexcept { return code(s) + extra_offset_; }
    std::size_t extra_bytes() const noexcept { return extra_bytes_; }
    std::uint32_t* header(slot_t s) noexcept {
        return reinterpret_cast<std::uint32_t*>(code(s) + links_offset_);
    }
    const std::uint32_t* header(slot_t s) const noexcept {
        return reinterpret_cast<const std::uint32_t*>(code(s) + links_offset_);
    }

    /// The list of `s` at `level` (requires level <= level(s)): word 0 holds the count in its
    /// low 16 bits, words 1..max_links(level) the neighbour ids.
    std::uint32_t* list(slot_t s, int level) noexcept {
        return level == 0 ? header(s) : upper_.data() + upper_off_[s] + (level - 1) * (M_ + 1);
    }
    const std::uint32_t* list(slot_t s, int level) const noexcept {
        return level == 0 ? header(s) : upper_.data() + upper_off_[s] + (level - 1) * (M_ + 1);
    }
    /// Count of a list, read with acquire so the ids written before it are visible; clamped
    /// so a racing reader can never index past the list.
    std::size_t count(const std::uint32_t* lst, int level) const noexcept {
        const std::size_t c = load_word(lst, std::memory_order_acquire) & 0xFFFFu;
        const std::size_t cap = max_links(level);
        return c < cap ? c : cap;
    }
    /// Replaces the ids and count of a list (caller holds the node's lock).
    void write_list(std::uint32_t* lst, const slot_t* ids, std::size_t n) noexcept {
        unseal(lst);
        for (std::size_t i = 0; i < n; ++i)
            store_word(lst + 1 + i, ids[i]);
        set_count(lst, n);
    }
    /// Publishes a new count (release: the ids stored before it become visible with it).
    void set_count(std::uint32_t* lst, std::size_t n) noexcept {
        unseal(lst);
        const std::uint32_t keep = load_word(lst) & 0xFFFF0000u;
        store_word(lst, keep | static_cast<std::uint32_t>(n), std::memory_order_release);
    }

    int level(slot_t s) const noexcept { return static_cast<int>(load_word(header(s)) >> 24); }
    Status status(slot_t s) const noexcept {
        return static_cast<Status>((load_word(header(s)) >> 16) & 0xFFu);
    }
    bool is_live(slot_t s) const noexcept { return ((load_word(header(s)) >> 16) & 0xFFu) == 0; }
    void set_status(slot_t s, Status st) noexcept {
        const std::uint32_t h = load_word(header(s));
        store_word(header(s), (h & 0xFF00FFFFu) | (std::uint32_t(st) << 16));
    }

    index_t label(slot_t s) const noexcept { return labels_[s]; }
    void set_label(slot_t s, index_t id) noexcept { labels_[s] = id; }

    std::mutex& lock(slot_t s) const noexcept { return locks_[s & (kStripes - 1)]; }

    /// Makes room for `slots` more slots and `levels` more upper lists. Strongly exception
    /// safe: on bad_alloc nothing observable changed. Never call with readers active.
    void reserve_more(std::size_t slots, std::size_t levels);
    /// Hands out the next slot with the given level: status live, empty lists, label -1.
    /// Requires a prior reserve_more; never allocates.
    slot_t append(int level) noexcept;
    /// Ensures capacity for at least `slots` slots in total (the max_elements hint).
    void reserve_total(std::size_t slots) { reserve_more(slots > size_ ? slots - size_ : 0, 0); }

    /// Rebuilds from exported arrays that the caller has validated (persist.cpp).
    void assign(std::size_t n, const unsigned char* codes, const std::uint8_t* levels,
                const std::uint8_t* status, const index_t* labels, const std::uint16_t* counts0,
                const std::uint32_t* links0, const std::uint16_t* upper_counts,
                const std::uint32_t* upper_links);

    std::size_t memory_bytes() const noexcept;

  private:
    static constexpr std::size_t kStripes = 1024;

    // A level-0 list lives in the arena (upper lists in the pool): rewriting one invalidates
    // the codes its record's extra region holds for it.
    void unseal(std::uint32_t* lst) noexcept {
        if (extra_bytes_ == 0)
            return;
        auto* p = reinterpret_cast<unsigned char*>(lst);
        if (p < arena_.data() || p >= arena_.data() + size_ * stride_)
            return;
        store_word(reinterpret_cast<std::uint32_t*>(p - links_offset_ + extra_offset_), 0,
                   std::memory_order_release);
    }

    std::size_t M_, code_bytes_, extra_bytes_, extra_offset_, links_offset_, stride_;
    std::size_t size_ = 0, capacity_ = 0;
    AlignedBuffer arena_;
    std::vector<std::uint32_t> upper_;     // pool of upper lists, (M + 1) words each
    std::size_t upper_used_ = 0;           // words of upper_ handed out
    std::vector<std::uint32_t> upper_off_; // per slot: word offset of its level-1 list
    std::vector<index_t> labels_;          // per slot: the caller's id (-1 when not live)
    std::unique_ptr<std::mutex[]> locks_;
};

} // namespace pysim::hnsw
