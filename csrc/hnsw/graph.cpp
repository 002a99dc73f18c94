// Growth and bulk assignment of the graph storage described in graph.hpp.
//
// Growth allocates every new buffer first and only then swaps them in, so a bad_alloc leaves
// the graph untouched (the strong guarantee HnswIndex::add relies on). The arena grows
// geometrically (x2) so a stream of small adds costs amortised O(1) copies per slot; calloc's
// lazily mapped zero pages keep the untouched tail out of resident memory.
#include "hnsw/graph.hpp"

#include <algorithm>
#include <stdexcept>

#include "common/errors.hpp"

namespace pysim::hnsw {
namespace {

std::size_t round_up(std::size_t x, std::size_t to) {
    return (x + to - 1) / to * to;
}

} // namespace

Graph::Graph(std::size_t code_bytes, std::size_t M, std::size_t extra_bytes)
    : M_(M), code_bytes_(code_bytes), extra_bytes_(extra_bytes), locks_(new std::mutex[kStripes]) {
    require(M >= 2 && 2 * M <= 0xFFFF, "M must be in [2, 32767]");
    extra_offset_ = extra_bytes ? round_up(code_bytes, 16) : code_bytes;
    links_offset_ = round_up(extra_offset_ + extra_bytes, 4);
    const std::size_t base = links_offset_ + 4 * (1 + 2 * M);
    // 64-byte records keep every code on a cache-line boundary; accept that padding only when
    // it is small, otherwise 32 bytes (one AVX2 register) is the compromise with memory.
    const std::size_t s64 = round_up(base, 64);
    stride_ = (s64 - base) * 25 <= base ? s64 : round_up(base, 32);
}

void Graph::reserve_more(std::size_t slots, std::size_t levels) {
    require(size_ + slots <= kMaxSlots, "an HNSW index holds at most 2^32 - 16 points");
    const std::size_t need_slots = size_ + slots;
    const std::size_t need_words = upper_used_ + levels * (M_ + 1);
    require(need_words < 0xFFFFFFFFull, "upper-level link pool exceeds 2^32 words");

    AlignedBuffer arena;
    std::size_t new_cap = capacity_;
    if (need_slots > capacity_) {
        new_cap = std::max(need_slots, std::min<std::size_t>(kMaxSlots, 2 * capacity_));
        arena = AlignedBuffer(new_cap * stride_);
    }
    std::vector<std::uint32_t> upper;
    if (need_words > upper_.size())
        upper.resize(std::max(need_words, 2 * upper_.size()));
    std::vector<std::uint32_t> upper_off;
    std::vector<index_t> labels;
    if (new_cap > capacity_) {
        upper_off.reserve(new_cap);
        labels.reserve(new_cap);
    }
    // Everything that can throw has been allocated: commit.
    if (arena.data() != nullptr) {
        if (size_ > 0)
            std::memcpy(arena.data(), arena_.data(), size_ * stride_);
        arena_ = std::move(arena);
        upper_off.assign(upper_off_.begin(), upper_off_.end());
        labels.assign(labels_.begin(), labels_.end());
        upper_off_.swap(upper_off);
        labels_.swap(labels);
        capacity_ = new_cap;
    }
    if (!upper.empty()) {
        std::copy(upper_.begin(), upper_.begin() + static_cast<std::ptrdiff_t>(upper_used_),
                  upper.begin());
        upper_.swap(upper);
    }
}

slot_t Graph::append(int level) noexcept {
    const auto s = static_cast<slot_t>(size_++);
    std::memset(code(s), 0, stride_);
    store_word(header(s), std::uint32_t(level) << 24);
    upper_off_.push_back(static_cast<std::uint32_t>(upper_used_)); // capacity reserved
    labels_.push_back(kNoIndex);
    const std::size_t words = std::size_t(level) * (M_ + 1);
    std::fill(upper_.begin() + static_cast<std::ptrdiff_t>(upper_used_),
              upper_.begin() + static_cast<std::ptrdiff_t>(upper_used_ + words), 0u);
    upper_used_ += words;
    return s;
}

void Graph::assign(std::size_t n, const unsigned char* codes, const std::uint8_t* levels,
                   const std::uint8_t* status, const index_t* labels, const std::uint16_t* counts0,
                   const std::uint32_t* links0, const std::uint16_t* upper_counts,
                   const std::uint32_t* upper_links) {
    std::size_t total_levels = 0;
    for (std::size_t s = 0; s < n; ++s)
        total_levels += levels[s];
    reserve_more(n, total_levels);
    const std::size_t m0 = 2 * M_;
    std::size_t upper_row = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const slot_t s = append(levels[i]);
        if (code_bytes_ != 0)
            std::memcpy(code(s), codes + i * code_bytes_, code_bytes_);
        set_status(s, static_cast<Status>(status[i]));
        labels_[s] = status[i] == std::uint8_t(Status::live) ? labels[i] : kNoIndex;
        write_list(header(s), links0 + i * m0, counts0[i]);
        for (int l = 1; l <= levels[i]; ++l, ++upper_row) {
            write_list(list(s, l), upper_links + upper_row * M_, upper_counts[upper_row]);
        }
    }
}

std::size_t Graph::memory_bytes() const noexcept {
    return capacity_ * stride_ + upper_.capacity() * sizeof(std::uint32_t) +
           upper_off_.capacity() * sizeof(std::uint32_t) + labels_.capacity() * sizeof(index_t) +
           kStripes * sizeof(std::mutex);
}

} // namespace pysim::hnsw
