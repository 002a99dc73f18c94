// Distance functors of a quantised HNSW index (the store is quant::QuantStore, whose records
// are indexed by the same slots as the graph).
//
// Search: CodeDistance wraps whichever search functor quant::visit() hands over for a prepared
// query (symmetric int8, bf16 dot, or the decoded/asymmetric form) and addresses records by
// slot. Codes live in their own dense arena rather than inside the graph's node records: a
// search step reads the expanded node's links (one line) and then its neighbours' codes, which
// are random jumps either way, and a separate arena keeps the codes compact (an sq8 record of
// a 128-d vector is 144 bytes: two or three lines instead of a links-and-code record's four).
// Neighbour lists are scored in one batch call (the kernels take four records at a time).
//
// Construction without a float32 copy: node-to-node distances are distances between decoded
// vectors (a record prepared as a query, scored with the asymmetric kernel), the best
// approximation of the float32 graph the codes allow. A re-bound functor needs a prepared
// query, which owns buffers; instead of allocating one per re-binding, each build thread keeps a
// small stack of queries in its Scratch and a functor re-bound from depth d writes depth d + 1.
// The build code re-binds at most two levels deep from the per-add prototype (insert re-binds
// to the new node, select_neighbors and connect re-bind from that), and a re-bound functor is
// never used again after a sibling at its own depth was created, so depths 0-2 never clobber a
// live query. The assertion in rebind() guards the depth.
// With a float32 copy (or, for a large batch, a transient float32 view) construction links by
// FloatDistance on those rows; sq8, and f16 / bf16 from 256 dimensions, find each node's
// candidates with a CodeDistance walk first (build.cpp, walk_codes_while_linking).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>

#include "hnsw/vector_store.hpp"
#include "quant/query.hpp"
#include "quant/store.hpp"

namespace pysim::hnsw {

/// Search distance from one prepared query to the records of a QuantStore.
template <class F> struct CodeDistance {
    static constexpr bool kBatch = true;
    F f;
    const std::uint8_t* base;
    std::size_t stride, bytes;

    const std::uint8_t* code(std::uint32_t slot) const noexcept {
        return base + std::size_t(slot) * stride;
    }
    std::size_t code_bytes() const noexcept { return bytes; }
    float operator()(std::uint32_t slot) const noexcept { return f(code(slot)); }
    /// Distances to n slots (a neighbour list) into out.
    void batch(const std::uint32_t* slots, std::size_t n, float* out) const noexcept {
        const std::uint8_t* ptrs[64];
        for (std::size_t i0 = 0; i0 < n; i0 += 64) {
            const std::size_t m = n - i0 < 64 ? n - i0 : 64;
            for (std::size_t i = 0; i < m; ++i)
                ptrs[i] = code(slots[i0 + i]);
            f(ptrs, m, out + i0);
        }
    }
};

template <class F>
CodeDistance<F> code_distance(const F& f, const quant::QuantStore& store) noexcept {
    return {f, store.record(0), store.stride(), store.quantizer().record_bytes()};
}

/// Construction distance between decoded vectors (no float32 copy kept).
struct DecodedDistance {
    static constexpr bool kBatch = false;
    static constexpr std::size_t kDepth = 4;
    const quant::QuantStore* store;
    const simd::KernelTable* table;
    quant::Query* stack; // kDepth queries owned by the thread's Scratch
    std::size_t depth;

    const std::uint8_t* code(std::uint32_t slot) const noexcept { return store->record(slot); }
    std::size_t code_bytes() const noexcept { return store->quantizer().record_bytes(); }
    float operator()(std::uint32_t slot) const noexcept {
        return stack[depth].decoded_distance(store->record(slot));
    }
    DecodedDistance rebind(std::uint32_t slot) const {
        assert(depth + 1 < kDepth);
        quant::Query& q = stack[depth + 1];
        store->quantizer().prepare_record(store->record(slot), *table, q, /*search_form=*/false);
        return {store, table, stack, depth + 1};
    }
};

} // namespace pysim::hnsw
