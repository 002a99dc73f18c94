// How vectors are stored in the graph's records and how distances to them are computed.
//
// The graph code never touches vector elements: it asks a *store* to encode a row into a
// record's code bytes, to prepare a query, and for a distance functor `dist(code) -> float`
// bound to one prepared query and addressed by slot (construction re-binds it to another node,
// which is how node-to-node distances are computed). Every functor has dist(slot),
// dist.code(slot) / code_bytes() (for prefetching) and kBatch (whether dist.batch() scores a
// whole neighbour list in one kernel call); build functors also have rebind(slot). The search
// and build templates take the functor type as a parameter, so the distance inlines into the
// hot loop whatever the store. Quantised storage lives in quant/ (QuantStore) and its
// functors in hnsw/quant_distance.hpp.
//
// FloatStore keeps float32 rows. Internally every metric is one of two spaces:
//   l2: squared Euclidean (sqeuclidean; euclidean and mahalanobis take a sqrt on output;
//       the Python layer maps mahalanobis rows through L beforehand),
//   ip: 1 - a.b (ip; cosine after normalising rows and queries to unit length, so cosine
//       stores normalised vectors and zero vectors stay zero: distance 1 to everything).
// The kernel pointer comes from the dispatch table that the caller read once per batch.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/norms.hpp"
#include "common/types.hpp"
#include "simd/kernels.hpp"

namespace pysim::hnsw {

using Space = pysim::Space; // common/types.hpp

/// Distance from one prepared query to float32 rows found by slot (`base + slot * stride`):
/// the codes inside the graph's records (FloatStore), or a quantised index's float32 copy.
template <Space S> struct FloatDistance {
    static constexpr bool kBatch = false; // one row at a time (search.hpp)
    const float* query;
    simd::PairFn<float> fn; // l2sq for Space::l2, dot for Space::ip
    std::size_t dim;
    const unsigned char* base;
    std::size_t stride;

    const unsigned char* code(std::uint32_t slot) const noexcept {
        return base + std::size_t(slot) * stride;
    }
    std::size_t code_bytes() const noexcept { return dim * sizeof(float); }
    float operator()(std::uint32_t slot) const noexcept {
        const float v = fn(query, reinterpret_cast<const float*>(code(slot)), dim);
        if constexpr (S == Space::ip) {
            return 1.0f - v;
        } else {
            return v;
        }
    }
    /// The same functor re-bound to another query: the row of a stored node.
    FloatDistance rebind(std::uint32_t slot) const noexcept {
        return {reinterpret_cast<const float*>(code(slot)), fn, dim, base, stride};
    }
};

class FloatStore {
  public:
    FloatStore(std::size_t dim, Space space, bool normalize)
        : dim_(dim), space_(space), normalize_(normalize) {}

    std::size_t dim() const noexcept { return dim_; }
    std::size_t code_bytes() const noexcept { return dim_ * sizeof(float); }
    Space space() const noexcept { return space_; }
    bool normalizes() const noexcept { return normalize_; }

    /// Writes the code of row x (dim floats) to dst (code_bytes()).
    void encode(const float* x, unsigned char* dst) const noexcept {
        float* out = reinterpret_cast<float*>(dst);
        if (!normalize_) {
            std::memcpy(out, x, code_bytes());
            return;
        }
        const double scale = pysim::inverse_norm(x, dim_);
        for (std::size_t i = 0; i < dim_; ++i)
            out[i] = static_cast<float>(x[i] * scale);
    }

    /// Reads a code back as dim floats.
    void decode(const unsigned char* src, float* out) const noexcept {
        std::memcpy(out, src, code_bytes());
    }

    /// Returns the query in the stored representation: normalised into `scratch` (dim
    /// floats) for cosine, the caller's row itself otherwise.
    const float* prepare_query(const float* q, float* scratch) const noexcept {
        if (!normalize_)
            return q;
        const double scale = pysim::inverse_norm(q, dim_);
        for (std::size_t i = 0; i < dim_; ++i)
            scratch[i] = static_cast<float>(q[i] * scale);
        return scratch;
    }

    /// Distance functor from `prepared` to rows at base + slot * stride.
    template <Space S>
    FloatDistance<S> distance(const float* prepared, const simd::KernelTable& table,
                              const unsigned char* base, std::size_t stride) const noexcept {
        return {prepared, S == Space::ip ? table.f32.dot.fn : table.f32.l2sq.fn, dim_, base,
                stride};
    }

  private:
    std::size_t dim_;
    Space space_;
    bool normalize_;
};

} // namespace pysim::hnsw
