// A prepared query and the distance functors a graph search plugs in.
//
// Quantizer::prepare() fills a Query once per query (O(dim)); after that a distance to a record
// is one kernel call plus an affine correction computed at preparation. The search code never
// needs to know the kind or the mode: it takes the functor that visit() hands it, whose type
// is one of five small structs, so a search templated on the functor inlines the correction
// into its loop and keeps a single indirect call (the kernel) per distance. Each functor has
//     float operator()(const uint8_t* record)                         one record
//     void  operator()(const uint8_t* const* records, n, float* out)  a batch (neighbour list)
//
// Besides the search form, every Query carries the *decoded* form (the asymmetric kernel: the
// exact distance to the decoded vector, up to float32 rounding) and the *exact* form (float32
// kernels against full-precision rows, when a store keeps them). Re-ranking uses whichever is
// available. Distances are in space units: squared L2, or 1 - dot for ip / cosine.
//
// A Query owns its buffers and points into them, so it can be moved but not copied; reuse one
// per thread (prepare() only allocates when the dimension grows).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "simd/kernels.hpp"
#include "simd/quant_kernels.hpp"

namespace pysim::quant {

// Plain and Affine stay two functors, not one with bias 0 and mul 1, so the plain path (the l2
// spaces' hot loop) pays no multiply-add per distance (duplicates pairs them by shape).
/// d = k(q, s, record)
struct PlainDistance {
    simd::CodePairFn<float, float> pair;
    simd::CodeBatchFn<float, float> batch;
    const float* q;
    const float* s;
    std::size_t dim;

    float operator()(const std::uint8_t* r) const noexcept { return pair(q, s, r, dim); }
    void operator()(const std::uint8_t* const* r, std::size_t n, float* out) const noexcept {
        batch(q, s, r, n, dim, out);
    }
};

/// d = bias + mul * k(q, s, record)   (ip spaces: 1 - dot, plus the code offsets)
struct AffineDistance {
    simd::CodePairFn<float, float> pair;
    simd::CodeBatchFn<float, float> batch;
    const float* q;
    const float* s;
    std::size_t dim;
    double bias, mul;

    float operator()(const std::uint8_t* r) const noexcept {
        return static_cast<float>(bias + mul * pair(q, s, r, dim));
    }
    void operator()(const std::uint8_t* const* r, std::size_t n, float* out) const noexcept {
        batch(q, s, r, n, dim, out);
        for (std::size_t i = 0; i < n; ++i)
            out[i] = static_cast<float>(bias + mul * out[i]);
    }
};

/// d = bias + mul * S(t, record) [+ trailer float of the record]   (symmetric sq)
/// The correction runs in double: S can exceed float32's 24-bit integers.
template <bool kTrailer> struct IntDistance {
    simd::CodePairFn<std::int8_t, std::int32_t> pair;
    simd::CodeBatchFn<std::int8_t, std::int32_t> batch;
    const std::int8_t* t;
    std::size_t dim;
    double bias, mul;
    std::size_t trailer_offset;

    float finish(const std::uint8_t* r, std::int32_t s) const noexcept {
        double d = bias + mul * static_cast<double>(s);
        if constexpr (kTrailer) {
            float tr;
            std::memcpy(&tr, r + trailer_offset, sizeof tr);
            d += tr;
        }
        return static_cast<float>(d);
    }
    float operator()(const std::uint8_t* r) const noexcept {
        return finish(r, pair(t, nullptr, r, dim));
    }
    void operator()(const std::uint8_t* const* r, std::size_t n, float* out) const noexcept {
        std::int32_t s[64];
        for (std::size_t i0 = 0; i0 < n; i0 += 64) {
            const std::size_t m = n - i0 < 64 ? n - i0 : 64;
            batch(t, nullptr, r + i0, m, dim, s);
            for (std::size_t i = 0; i < m; ++i)
                out[i0 + i] = finish(r[i0 + i], s[i]);
        }
    }
};

/// d = 1 - k(h, record), h the query in bf16   (symmetric bf16, ip spaces)
struct HalfDistance {
    simd::CodePairFn<std::uint16_t, float> pair;
    simd::CodeBatchFn<std::uint16_t, float> batch;
    const std::uint16_t* h;
    std::size_t dim;

    float operator()(const std::uint8_t* r) const noexcept {
        return 1.0f - pair(h, nullptr, r, dim);
    }
    void operator()(const std::uint8_t* const* r, std::size_t n, float* out) const noexcept {
        batch(h, nullptr, r, n, dim, out);
        for (std::size_t i = 0; i < n; ++i)
            out[i] = 1.0f - out[i];
    }
};

enum class Form : std::uint8_t { plain = 0, affine = 1, sym = 2, sym_trailer = 3, half = 4 };

struct Query {
    Query() = default;
    Query(const Query&) = delete;
    Query& operator=(const Query&) = delete;
    Query(Query&&) = default;
    Query& operator=(Query&&) = default;

    Form form = Form::plain; // the search form
    std::size_t dim = 0;

    // Decoded form (always set): asymmetric kernel, plain (l2) or affine (ip).
    bool decoded_affine = false;
    AffineDistance decoded{}; // bias 0 / mul 1 when plain

    // Symmetric forms (set when form is sym / sym_trailer / half).
    IntDistance<false> sym{};
    HalfDistance half{};

    // Exact form against float32 rows (the normalised query, float32 kernels).
    const float* exact = nullptr;
    simd::PairFn<float> exact_fn = nullptr;
    bool exact_ip = false;

    // Scale of the int8 query (symmetric sq): the error bound of the estimate is
    // sigma * sum_j |c_j - C| for l2 and half of it for ip (quantizer.hpp).
    double sigma = 0.0;

    // Owned buffers the pointers above refer to.
    std::vector<float> normalised, fq;
    std::vector<std::int8_t> t;
    std::vector<std::uint16_t> h;
    std::vector<double> w;

    PlainDistance plain_decoded() const noexcept {
        return {decoded.pair, decoded.batch, decoded.q, decoded.s, decoded.dim};
    }
    IntDistance<true> sym_with_trailer() const noexcept {
        return {sym.pair, sym.batch, sym.t, sym.dim, sym.bias, sym.mul, sym.trailer_offset};
    }

    /// Search distance to one record / a batch of records.
    float distance(const std::uint8_t* record) const noexcept;
    void distances(const std::uint8_t* const* records, std::size_t n, float* out) const noexcept;
    /// Distance to the decoded vector (asymmetric kernel).
    float decoded_distance(const std::uint8_t* record) const noexcept {
        return decoded_affine ? decoded(record) : plain_decoded()(record);
    }
    void decoded_distances(const std::uint8_t* const* records, std::size_t n,
                           float* out) const noexcept {
        if (decoded_affine) {
            decoded(records, n, out);
        } else {
            plain_decoded()(records, n, out);
        }
    }
    /// Distance to a float32 row stored at full precision (normalised for cosine).
    float exact_distance(const float* row) const noexcept {
        const float v = exact_fn(exact, row, dim);
        return exact_ip ? 1.0f - v : v;
    }
};

/// Calls f(functor) with the search functor of q (one of the five types above) and returns
/// what f returns: the hook for search loops templated on the distance.
template <class F> decltype(auto) visit(const Query& q, F&& f) {
    switch (q.form) {
    case Form::affine:
        return f(q.decoded);
    case Form::sym:
        return f(q.sym);
    case Form::sym_trailer:
        return f(q.sym_with_trailer());
    case Form::half:
        return f(q.half);
    case Form::plain:
        break;
    }
    return f(q.plain_decoded());
}

inline float Query::distance(const std::uint8_t* record) const noexcept {
    return visit(*this, [record](const auto& d) { return d(record); });
}

inline void Query::distances(const std::uint8_t* const* records, std::size_t n,
                             float* out) const noexcept {
    visit(*this, [&](const auto& d) { d(records, n, out); });
}

} // namespace pysim::quant
