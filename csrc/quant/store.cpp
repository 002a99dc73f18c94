// QuantStore (see store.hpp): arena management, parallel encoding, re-fitting and state.
//
// Every mutation builds what it needs on the side (a new arena, a new quantizer, widened
// min/max copies) and commits with swaps and plain assignments, so an exception - bad_alloc,
// or pysim::Interrupted from the thread pool - leaves the store as it was.
#include "quant/store.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace pysim::quant {
namespace {

constexpr std::size_t kEncodeGrain = 256;      // rows per parallel chunk
constexpr std::size_t kSampleFloats = 1 << 24; // 64 MiB cap on a re-fit sample

std::size_t stride_for(std::size_t record_bytes) noexcept {
    return (record_bytes + 15) / 16 * 16;
}

// The records of `slots`, 64 pointers at a time (the batch kernels' unit), through
// batch(pointers, count, out): what distances() and refine() share.
template <class Store, class Batch>
void in_record_batches(const Store& store, const std::uint32_t* slots, std::size_t n, float* out,
                       Batch batch) noexcept {
    const std::uint8_t* ptrs[64];
    for (std::size_t i0 = 0; i0 < n; i0 += 64) {
        const std::size_t m = std::min<std::size_t>(64, n - i0);
        for (std::size_t i = 0; i < m; ++i)
            ptrs[i] = store.record(slots[i0 + i]);
        batch(ptrs, m, out + i0);
    }
}

} // namespace

QuantStore::Arena::Arena(std::size_t bytes) {
    raw_.reset(std::calloc(bytes + 64, 1));
    if (!raw_)
        throw std::bad_alloc();
    const auto addr = reinterpret_cast<std::uintptr_t>(raw_.get());
    data_ = static_cast<std::uint8_t*>(raw_.get()) + ((64 - addr % 64) % 64);
}

QuantStore::QuantStore(const StoreOptions& opt)
    : opt_(opt), quantizer_(opt.kind, opt.dim, opt.space, opt.normalize, opt.mode),
      stride_(stride_for(quantizer_.record_bytes())) {
    require(opt.clip >= 0.0 && opt.clip < 0.5, "clip must be in [0, 0.5)");
    if (quantizer_.scalar()) {
        seen_lo_.assign(opt.dim, std::numeric_limits<float>::infinity());
        seen_hi_.assign(opt.dim, -std::numeric_limits<float>::infinity());
    }
}

template <class SlotOf>
QuantStore::Encoded QuantStore::encode_rows(const Quantizer& q, std::uint8_t* arena, float* full,
                                            const SlotOf& slot_of, const float* rows, std::size_t n,
                                            std::size_t threads) const {
    Encoded res;
    res.seen_lo = seen_lo_;
    res.seen_hi = seen_hi_;
    const bool track = q.scalar();
    const std::size_t dim = opt_.dim;
    const simd::QuantKernels& k = simd::quant_for(simd::active());
    std::mutex merge;
    parallel_for(n, threads, std::max(kEncodeGrain, balanced_grain(n, threads, 16)),
                 [&](std::size_t b, std::size_t e) {
                     std::vector<float> x(dim), lo, hi;
                     if (track) {
                         lo.assign(dim, std::numeric_limits<float>::infinity());
                         hi.assign(dim, -std::numeric_limits<float>::infinity());
                     }
                     std::size_t clipped = 0;
                     for (std::size_t i = b; i < e; ++i) {
                         const std::size_t s = slot_of(i);
                         q.normalise(rows + i * dim, x.data());
                         clipped += q.encode_normalised(x.data(), arena + s * stride_, k);
                         if (full)
                             std::copy(x.begin(), x.end(), full + s * dim);
                         if (track) {
                             for (std::size_t j = 0; j < dim; ++j) {
                                 lo[j] = std::min(lo[j], x[j]);
                                 hi[j] = std::max(hi[j], x[j]);
                             }
                         }
                     }
                     std::lock_guard<std::mutex> lock(merge);
                     res.clipped += clipped;
                     for (std::size_t j = 0; j < lo.size(); ++j) {
                         res.seen_lo[j] = std::min(res.seen_lo[j], lo[j]);
                         res.seen_hi[j] = std::max(res.seen_hi[j], hi[j]);
                     }
                 });
    return res;
}

void QuantStore::grow(std::size_t cap, Arena& arena, std::vector<float>& full) const {
    Arena a(std::max<std::size_t>(cap, 1) * stride_);
    if (n_)
        std::memcpy(a.get(), arena_.get(), n_ * stride_);
    std::vector<float> f;
    if (opt_.keep_full) {
        f.reserve(cap * opt_.dim);
        f.assign(full_.begin(), full_.end());
    }
    arena.swap(a);
    full.swap(f);
}

void QuantStore::fit(const float* rows, std::size_t n, std::size_t threads) {
    Quantizer q = quantizer_;
    q.fit(rows, n, opt_.clip, threads);
    quantizer_ = std::move(q);
    drift_ = {n, 0, 0};
}

void QuantStore::reserve(std::size_t n) {
    if (n <= capacity_)
        return;
    require(n <= (std::numeric_limits<std::size_t>::max() / 2) / stride_,
            "reserve: too many slots");
    Arena a;
    std::vector<float> f;
    grow(n, a, f);
    arena_.swap(a);
    full_.swap(f);
    capacity_ = n;
}

void QuantStore::resize(std::size_t n) {
    if (n > capacity_)
        reserve(std::max(n, capacity_ + capacity_ / 2));
    if (opt_.keep_full)
        full_.resize(n * opt_.dim); // within capacity: cannot throw
    if (n < n_)
        std::memset(arena_.get() + n * stride_, 0, (n_ - n) * stride_);
    n_ = n;
}

void QuantStore::set(std::size_t slot, const float* row) {
    set_rows(nullptr, slot, row, 1, 1);
}

void QuantStore::encode(const float* row, std::uint8_t* record, float* scratch) const noexcept {
    const simd::QuantKernels& k = simd::quant_for(simd::active());
    quantizer_.normalise(row, scratch);
    quantizer_.encode_normalised(scratch, record, k);
}

void QuantStore::put(std::size_t slot, const float* row, float* scratch) noexcept {
    const simd::QuantKernels& k = simd::quant_for(simd::active());
    const std::size_t dim = opt_.dim;
    quantizer_.normalise(row, scratch);
    const std::size_t clipped =
        quantizer_.encode_normalised(scratch, arena_.get() + slot * stride_, k);
    if (opt_.keep_full)
        std::copy(scratch, scratch + dim, full_.data() + slot * dim);
    if (quantizer_.scalar()) {
        for (std::size_t j = 0; j < dim; ++j) {
            seen_lo_[j] = std::min(seen_lo_[j], scratch[j]);
            seen_hi_[j] = std::max(seen_hi_[j], scratch[j]);
        }
    }
    drift_.rows_since_fit += 1;
    drift_.clipped_since_fit += clipped;
}

void QuantStore::set_rows(const std::uint32_t* slots, std::size_t first, const float* rows,
                          std::size_t n, std::size_t threads) {
    require(fitted(), "set_rows: the ranges are not fitted yet");
    auto slot_of = [&](std::size_t i) -> std::size_t { return slots ? slots[i] : first + i; };
    for (std::size_t i = 0; i < n; ++i)
        require(slot_of(i) < n_, "set_rows: slot out of range");
    Encoded e = encode_rows(quantizer_, arena_.get(), opt_.keep_full ? full_.data() : nullptr,
                            slot_of, rows, n, threads);
    seen_lo_.swap(e.seen_lo);
    seen_hi_.swap(e.seen_hi);
    drift_.rows_since_fit += n;
    drift_.clipped_since_fit += e.clipped;
}

std::size_t QuantStore::append(const float* rows, std::size_t n, std::size_t threads) {
    quantizer_.check_rows(rows, n);
    const std::size_t first = n_;
    if (n == 0)
        return first;
    Quantizer q = quantizer_;
    const bool fitting = !q.fitted();
    if (fitting)
        q.fit(rows, n, opt_.clip, threads);
    // Build into fresh memory when growing, else into the unused slots past n_: either way
    // nothing visible changes until the commit below.
    Arena arena;
    std::vector<float> full;
    const std::size_t need_full = opt_.keep_full ? (n_ + n) * opt_.dim : 0;
    const bool growing = n_ + n > capacity_ || full_.capacity() < need_full;
    const std::size_t cap = growing ? std::max(n_ + n, capacity_ + capacity_ / 2) : capacity_;
    if (growing) {
        grow(cap, arena, full);
        full.resize(need_full);
    } else {
        full_.resize(need_full); // within capacity: cannot throw
    }
    std::uint8_t* dst = growing ? arena.get() : arena_.get();
    float* fdst = opt_.keep_full ? (growing ? full.data() : full_.data()) : nullptr;
    Encoded e;
    try {
        e = encode_rows(
            q, dst, fdst, [first](std::size_t i) { return first + i; }, rows, n, threads);
    } catch (...) {
        if (!growing)
            full_.resize(opt_.keep_full ? n_ * opt_.dim : 0);
        throw;
    }
    if (growing) {
        arena_.swap(arena);
        full_.swap(full);
        capacity_ = cap;
    }
    quantizer_ = std::move(q);
    n_ += n;
    seen_lo_.swap(e.seen_lo);
    seen_hi_.swap(e.seen_hi);
    if (fitting) {
        drift_ = {n, 0, 0};
    } else {
        drift_.rows_since_fit += n;
    }
    drift_.clipped_since_fit += e.clipped;
    return first;
}

void QuantStore::refit(const float* extra, std::size_t n_extra, std::size_t threads) {
    if (!quantizer_.scalar())
        return;
    if (n_extra)
        quantizer_.check_rows(extra, n_extra);
    if (n_ + n_extra == 0)
        return;
    const std::size_t dim = opt_.dim;
    const simd::QuantKernels& k = simd::quant_for(simd::active());
    Quantizer q = quantizer_;

    // Rows of the extra batch in stored form.
    std::vector<float> extra_n(n_extra * dim);
    for (std::size_t i = 0; i < n_extra; ++i)
        q.normalise(extra + i * dim, &extra_n[i * dim]);

    if (opt_.clip == 0.0) {
        // Exact min / max: over the float32 copy, or over every row ever stored (tracked).
        std::vector<float> lo(dim, std::numeric_limits<float>::infinity());
        std::vector<float> hi(dim, -std::numeric_limits<float>::infinity());
        auto widen = [&](const float* x) {
            for (std::size_t j = 0; j < dim; ++j) {
                lo[j] = std::min(lo[j], x[j]);
                hi[j] = std::max(hi[j], x[j]);
            }
        };
        if (opt_.keep_full) {
            for (std::size_t i = 0; i < n_; ++i)
                widen(full_.data() + i * dim);
        } else if (n_) {
            widen(seen_lo_.data());
            widen(seen_hi_.data());
        }
        for (std::size_t i = 0; i < n_extra; ++i)
            widen(&extra_n[i * dim]);
        q.set_ranges(lo.data(), hi.data());
    } else {
        // Quantiles of an evenly strided sample of the stored rows (float32 copy, else
        // decoded) and of the extra rows.
        const std::size_t total = n_ + n_extra;
        const std::size_t s = std::min(total, std::max<std::size_t>(64, kSampleFloats / dim));
        std::vector<float> sample(s * dim);
        for (std::size_t i = 0; i < s; ++i) {
            const std::size_t r = i * total / s;
            float* out = &sample[i * dim];
            if (r >= n_) {
                std::copy_n(&extra_n[(r - n_) * dim], dim, out);
            } else if (opt_.keep_full) {
                std::copy_n(full_.data() + r * dim, dim, out);
            } else {
                quantizer_.decode(record(r), out, k);
            }
        }
        q.fit(sample.data(), s, opt_.clip, threads, /*normalised=*/true);
    }

    // Re-encode every slot into a new arena with the new ranges.
    Arena arena(std::max<std::size_t>(capacity_, 1) * stride_);
    std::uint8_t* dst = arena.get();
    parallel_for(n_, threads, std::max(kEncodeGrain, balanced_grain(n_, threads, 16)),
                 [&](std::size_t b, std::size_t e) {
                     std::vector<float> x(dim);
                     for (std::size_t i = b; i < e; ++i) {
                         const float* src = full_row(i);
                         if (!src) {
                             quantizer_.decode(record(i), x.data(), k);
                             src = x.data();
                         }
                         q.encode_normalised(src, dst + i * stride_, k);
                     }
                 });
    // Commit (nothing below throws).
    arena_.swap(arena);
    quantizer_ = std::move(q);
    for (std::size_t i = 0; i < n_extra; ++i) {
        for (std::size_t j = 0; j < dim; ++j) {
            seen_lo_[j] = std::min(seen_lo_[j], extra_n[i * dim + j]);
            seen_hi_[j] = std::max(seen_hi_[j], extra_n[i * dim + j]);
        }
    }
    drift_ = {n_ + n_extra, 0, 0};
}

void QuantStore::prepare_slot(std::size_t slot, const simd::KernelTable& table, Query& out) const {
    if (opt_.keep_full) {
        out.normalised.assign(full_row(slot), full_row(slot) + opt_.dim);
        quantizer_.prepare_normalised(out.normalised.data(), table, out);
    } else {
        quantizer_.prepare_record(record(slot), table, out);
    }
}

void QuantStore::distances(const Query& q, const std::uint32_t* slots, std::size_t n,
                           float* out) const noexcept {
    in_record_batches(
        *this, slots, n, out,
        [&q](const std::uint8_t* const* p, std::size_t m, float* o) { q.distances(p, m, o); });
}

void QuantStore::refine(const Query& q, const std::uint32_t* slots, std::size_t n,
                        float* out) const noexcept {
    if (opt_.keep_full) {
        for (std::size_t i = 0; i < n; ++i)
            out[i] = q.exact_distance(full_row(slots[i]));
        return;
    }
    in_record_batches(*this, slots, n, out,
                      [&q](const std::uint8_t* const* p, std::size_t m, float* o) {
                          q.decoded_distances(p, m, o);
                      });
}

void QuantStore::decode(std::size_t slot, float* out) const noexcept {
    quantizer_.decode(record(slot), out, simd::quant_for(simd::active()));
}

std::size_t QuantStore::memory_bytes() const noexcept {
    return capacity_ * stride_ + full_.capacity() * sizeof(float) +
           (quantizer_.lo().size() * 2 + seen_lo_.size() * 2) * sizeof(float);
}

StoreState QuantStore::export_state() const {
    StoreState st;
    st.options = opt_;
    st.n = n_;
    st.lo = quantizer_.lo();
    st.step = quantizer_.step();
    if (quantizer_.scalar()) {
        st.seen_lo = seen_lo_;
        st.seen_hi = seen_hi_;
    }
    const std::size_t cb = quantizer_.code_bytes();
    st.codes.resize(n_ * cb);
    for (std::size_t i = 0; i < n_; ++i)
        std::memcpy(&st.codes[i * cb], record(i), cb);
    st.full = full_;
    st.drift = drift_;
    return st;
}

std::unique_ptr<QuantStore> QuantStore::from_state(const StoreState& st) {
    auto store = std::make_unique<QuantStore>(st.options); // validates the options
    const Quantizer& qz = store->quantizer_;
    const std::size_t dim = st.options.dim, cb = qz.code_bytes();
    require(st.n <= std::numeric_limits<std::uint32_t>::max(), "state: too many slots");
    require(st.codes.size() == st.n * cb, "state: codes do not match n * code_bytes");
    require(st.full.size() == (st.options.keep_full ? st.n * dim : 0),
            "state: the float32 rows do not match n * dim");
    for (float v : st.full)
        require(std::isfinite(v), "state: the float32 rows are not finite");
    if (qz.scalar()) {
        require(st.lo.size() == st.step.size(), "state: lo and step differ in length");
        require(st.lo.size() == dim || (st.lo.empty() && st.n == 0),
                "state: the ranges do not match dim");
        require(st.seen_lo.size() == dim && st.seen_hi.size() == dim,
                "state: the observed ranges do not match dim");
        for (std::size_t j = 0; j < dim; ++j) {
            require(!std::isnan(st.seen_lo[j]) && !std::isnan(st.seen_hi[j]),
                    "state: the observed ranges contain NaN");
        }
        if (!st.lo.empty()) {
            store->quantizer_.set_lo_step(st.lo.data(), st.step.data());
            // A zero step (a dimension constant in the rows the ranges came from) encodes every
            // value as code 0; any other code there means the ranges are not the codes' ones.
            for (std::size_t j = 0; j < dim; ++j) {
                if (st.step[j] != 0.0f)
                    continue;
                for (std::size_t i = 0; i < st.n; ++i)
                    require(qz.code_at(&st.codes[i * cb], j) == 0,
                            "state: a code is not 0 in a dimension whose step is 0");
            }
        }
        store->seen_lo_ = st.seen_lo;
        store->seen_hi_ = st.seen_hi;
    } else {
        require(st.lo.empty() && st.step.empty(), "state: f16 / bf16 stores have no ranges");
        // A 16-bit code with an all-ones exponent is inf or NaN: never written by encode.
        const std::uint16_t exp_mask = st.options.kind == Kind::f16 ? 0x7C00u : 0x7F80u;
        for (std::size_t i = 0; i + 1 < st.codes.size(); i += 2) {
            const std::uint16_t w =
                static_cast<std::uint16_t>(st.codes[i] | (st.codes[i + 1] << 8));
            require((w & exp_mask) != exp_mask, "state: a code is infinite or NaN");
        }
    }
    if (st.options.kind == Kind::sq4 && dim % 2 == 1) {
        // The last block has an odd number of dimensions: its final high nibble is padding.
        const std::size_t last = cb - 1;
        for (std::size_t i = 0; i < st.n; ++i)
            require((st.codes[i * cb + last] >> 4) == 0, "state: a padding nibble is not zero");
    }
    store->reserve(st.n);
    store->n_ = st.n;
    store->full_ = st.full;
    for (std::size_t i = 0; i < st.n; ++i) {
        std::uint8_t* rec = store->arena_.get() + i * store->stride_;
        std::memcpy(rec, &st.codes[i * cb], cb);
        qz.write_trailer(rec);
    }
    store->drift_ = st.drift;
    return store;
}

} // namespace pysim::quant
