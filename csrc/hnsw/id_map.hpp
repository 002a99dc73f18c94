// Open-addressing hash map from the caller's ids (int64 >= 0) to slots.
//
// Why not std::unordered_map: one heap node per entry costs ~40 bytes and an allocation on
// every insert, so an add could fail half-way on memory. Here keys and values live in two flat
// arrays (12 bytes per bucket, load factor <= 0.7), all allocation happens in reserve(), and
// insert/erase never allocate: HnswIndex reserves before it mutates anything. Linear probing
// with backward-shift deletion keeps lookups short without tombstones.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/types.hpp"
#include "hnsw/graph.hpp"

namespace pysim::hnsw {

class IdMap {
  public:
    std::size_t size() const noexcept { return size_; }

    slot_t find(index_t key) const noexcept {
        if (size_ == 0 || key < 0) return kNoSlot;
        for (std::size_t i = bucket(key);; i = (i + 1) & mask_) {
            if (keys_[i] == key) return vals_[i];
            if (keys_[i] == kEmpty) return kNoSlot;
        }
    }

    /// Makes room for `n` entries in total; may throw bad_alloc, changes nothing then.
    void reserve(std::size_t n) {
        std::size_t want = 16;
        while (want * 7 < n * 10) want *= 2;
        if (want <= keys_.size()) return;
        std::vector<index_t> keys(want, kEmpty);
        std::vector<slot_t> vals(want, kNoSlot);
        const std::size_t mask = want - 1;
        for (std::size_t i = 0; i < keys_.size(); ++i) {
            if (keys_[i] == kEmpty) continue;
            std::size_t j = hash(keys_[i]) & mask;
            while (keys[j] != kEmpty) j = (j + 1) & mask;
            keys[j] = keys_[i];
            vals[j] = vals_[i];
        }
        keys_.swap(keys);
        vals_.swap(vals);
        mask_ = mask;
    }

    /// Inserts or overwrites; requires reserve(size() + 1) beforehand.
    void insert(index_t key, slot_t value) noexcept {
        std::size_t i = bucket(key);
        while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
        if (keys_[i] == kEmpty) ++size_;
        keys_[i] = key;
        vals_[i] = value;
    }

    /// Removes `key` if present (backward-shift deletion keeps probe chains intact).
    void erase(index_t key) noexcept {
        if (size_ == 0) return;
        std::size_t i = bucket(key);
        while (keys_[i] != key) {
            if (keys_[i] == kEmpty) return;
            i = (i + 1) & mask_;
        }
        for (std::size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
            if (keys_[j] == kEmpty) break;
            const std::size_t home = bucket(keys_[j]);
            // Move j back to the hole at i unless its home lies cyclically in (i, j].
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) {
                keys_[i] = keys_[j];
                vals_[i] = vals_[j];
                i = j;
            }
        }
        keys_[i] = kEmpty;
        vals_[i] = kNoSlot;
        --size_;
    }

    void clear() noexcept {
        std::fill(keys_.begin(), keys_.end(), kEmpty);
        size_ = 0;
    }

    std::size_t memory_bytes() const noexcept {
        return keys_.capacity() * sizeof(index_t) + vals_.capacity() * sizeof(slot_t);
    }

  private:
    static constexpr index_t kEmpty = -1;

    static std::size_t hash(index_t key) noexcept {
        // splitmix64 finaliser: consecutive ids spread over all buckets.
        auto x = static_cast<std::uint64_t>(key);
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        return static_cast<std::size_t>(x ^ (x >> 31));
    }
    std::size_t bucket(index_t key) const noexcept { return hash(key) & mask_; }

    std::vector<index_t> keys_;
    std::vector<slot_t> vals_;
    std::size_t mask_ = 0;
    std::size_t size_ = 0;
};

}  // namespace pysim::hnsw
