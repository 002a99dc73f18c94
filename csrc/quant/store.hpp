// QuantStore: compressed records for every slot of an index, an optional float32 copy for exact
// re-ranking, and the bookkeeping that decides when the sq ranges need a re-fit.
//
// Layout: one 64-byte-aligned arena of records (Quantizer::record_bytes(), stride rounded up to
// 16 bytes so 16-byte loads never split a cache line), indexed by slot - the position an index
// gives a point, not its user id - and, when `keep_full`, a (slots, dim) float32 matrix of the
// rows as stored (normalised for cosine). A graph search asks `q.distance(store.record(s))` or,
// for a whole neighbour list, `store.distances(q, slots, n, out)`; the few best candidates are
// then re-scored with `refine()`: exact float32 distances when the copy is kept, else the
// decoded-vector distances of the asymmetric kernel (which the symmetric search form only
// approximates). Indexes that keep codes inside their own node records use Quantizer directly.
//
// Ranges (sq8/sq4) come from the first rows stored (fit(), or append() on an empty store) and
// stay fixed until refit(): codes never change under a running search. Rows outside the ranges
// are clipped and counted in drift(); refit() learns new ranges from every stored row (the
// float32 copy when kept; otherwise the decoded codes, widened to the min/max of every row ever
// stored, which the store tracks exactly) plus optional new rows, then re-encodes all slots.
// Without the float32 copy a re-fit re-quantises decoded values: each adds at most half a new
// step of error, and values clipped earlier stay clipped - so refit before storing a batch that
// drifted (append's `extra` rows), not after.
//
// Guarantees: reserve/resize/append/refit either succeed or leave the store unchanged (all
// memory is allocated before anything is overwritten); set/set_rows overwrite existing slots,
// each slot entirely (an interrupted set_rows leaves every slot either old or new). Mutations need
// the caller's exclusive lock; const members may run concurrently with each other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "quant/quantizer.hpp"
#include "quant/query.hpp"

namespace pysim::quant {

struct StoreOptions {
    Kind kind = Kind::sq8;
    std::size_t dim = 0;
    Space space = Space::l2;
    bool normalize = false; // cosine
    Mode mode = Mode::asymmetric;
    bool keep_full = true; // float32 copy for exact re-ranking
    double clip = 0.0;     // sq ranges: fraction clipped at each tail (0 = min/max)
};

struct DriftStats {
    std::size_t rows_at_fit = 0;       // rows the current ranges were learned from
    std::size_t rows_since_fit = 0;    // rows encoded since
    std::size_t clipped_since_fit = 0; // their elements that fell outside the ranges
};

/// Everything needed to rebuild a store bit for bit (codes without trailers or padding).
struct StoreState {
    StoreOptions options;
    std::size_t n = 0;
    std::vector<float> lo, step;         // empty for f16 / bf16 or before the first fit
    std::vector<float> seen_lo, seen_hi; // min / max of every stored row (sq), else empty
    std::vector<std::uint8_t> codes;     // (n, code_bytes)
    std::vector<float> full;             // (n, dim) or empty
    DriftStats drift;
};

class QuantStore {
  public:
    explicit QuantStore(const StoreOptions& opt);

    const StoreOptions& options() const noexcept { return opt_; }
    const Quantizer& quantizer() const noexcept { return quantizer_; }
    std::size_t size() const noexcept { return n_; }
    std::size_t capacity() const noexcept { return capacity_; }
    std::size_t dim() const noexcept { return opt_.dim; }
    std::size_t stride() const noexcept { return stride_; }
    bool keeps_full() const noexcept { return opt_.keep_full; }
    bool fitted() const noexcept { return quantizer_.fitted(); }

    const std::uint8_t* record(std::size_t slot) const noexcept {
        return arena_.get() + slot * stride_;
    }
    /// The float32 row of a slot, or nullptr without keep_full.
    const float* full_row(std::size_t slot) const noexcept {
        return opt_.keep_full ? full_.data() + slot * opt_.dim : nullptr;
    }

    // ---- mutation (exclusive) ----
    /// Throws std::invalid_argument naming the first row that cannot be stored.
    void check_rows(const float* rows, std::size_t n) const { quantizer_.check_rows(rows, n); }
    /// Learns the ranges from `rows` (sq) and resets the drift counters; existing records are
    /// not re-encoded (use refit). Strong guarantee.
    void fit(const float* rows, std::size_t n, std::size_t threads);
    /// Capacity for n slots. Strong guarantee.
    void reserve(std::size_t n);
    /// n slots (new slots hold zero codes until set). Strong guarantee.
    void resize(std::size_t n);
    /// Stores one row at slot (< size()). Requires fitted().
    void set(std::size_t slot, const float* row);
    /// Stores one row at slot (< size()) in the calling thread without allocating (the commit
    /// step of an index's add). Requires fitted(); `scratch` holds dim floats; the row must
    /// have passed check_rows().
    void put(std::size_t slot, const float* row, float* scratch) noexcept;
    /// The record row would get (record_bytes()) and, through `scratch`, its stored form.
    void encode(const float* row, std::uint8_t* record, float* scratch) const noexcept;
    /// rows[i] -> slots[i] (slots == nullptr: first + i), in parallel. Requires fitted(); the
    /// slots must exist. Rows must have passed check_rows().
    void set_rows(const std::uint32_t* slots, std::size_t first, const float* rows, std::size_t n,
                  std::size_t threads);
    /// Checks rows, fits the ranges if not fitted yet, grows by n and stores them at the end.
    /// Returns the first new slot. Strong guarantee.
    std::size_t append(const float* rows, std::size_t n, std::size_t threads);
    /// New ranges from the stored rows plus `extra` (n_extra rows, may be none), then every
    /// slot re-encoded. No-op for f16 / bf16. Strong guarantee.
    void refit(const float* extra, std::size_t n_extra, std::size_t threads);

    // ---- queries (const, concurrent) ----
    void prepare(const float* q, const simd::KernelTable& table, Query& out) const {
        quantizer_.prepare(q, table, out);
    }
    /// A stored point as a query: its float32 row when kept, else its decoded record.
    void prepare_slot(std::size_t slot, const simd::KernelTable& table, Query& out) const;
    float distance(const Query& q, std::size_t slot) const noexcept {
        return q.distance(record(slot));
    }
    /// Search distances to n slots (the batch kernels, four records at a time).
    void distances(const Query& q, const std::uint32_t* slots, std::size_t n,
                   float* out) const noexcept;
    /// Re-ranking distances: exact float32 ones when the copy is kept, else decoded ones.
    void refine(const Query& q, const std::uint32_t* slots, std::size_t n,
                float* out) const noexcept;
    /// The decoded record of a slot (dim floats).
    void decode(std::size_t slot, float* out) const noexcept;

    DriftStats drift() const noexcept { return drift_; }
    /// Overwrites the drift counters (an index that fitted the ranges on the batch it then
    /// stored row by row: those rows are the fit's, not rows since it).
    void set_drift(const DriftStats& d) noexcept { drift_ = d; }
    std::size_t memory_bytes() const noexcept;

    StoreState export_state() const;
    /// Rebuilds a store; throws std::invalid_argument naming the first inconsistent field.
    static std::unique_ptr<QuantStore> from_state(const StoreState& st);

    /// Elements of n rows that the current ranges would clip (a drift test before storing).
    std::size_t count_clipped(const float* rows, std::size_t n) const noexcept {
        return quantizer_.count_clipped(rows, n);
    }

  private:
    /// Zero-filled, 64-byte-aligned bytes (calloc hands back fresh zero pages cheaply).
    class Arena {
      public:
        Arena() = default;
        explicit Arena(std::size_t bytes);
        std::uint8_t* get() const noexcept { return data_; }
        void swap(Arena& other) noexcept {
            raw_.swap(other.raw_);
            std::swap(data_, other.data_);
        }

      private:
        struct Free {
            void operator()(void* p) const noexcept { std::free(p); }
        };
        std::unique_ptr<void, Free> raw_;
        std::uint8_t* data_ = nullptr;
    };

    struct Encoded {
        std::size_t clipped = 0;
        std::vector<float> seen_lo, seen_hi; // widened copies of the store's (sq only)
    };
    // Encodes row i of `rows` into arena + slot_of(i) * stride_ with quantizer q (and copies
    // it, in stored form, to full + slot_of(i) * dim when full != nullptr).
    template <class SlotOf>
    Encoded encode_rows(const Quantizer& q, std::uint8_t* arena, float* full, const SlotOf& slot_of,
                        const float* rows, std::size_t n, std::size_t threads) const;
    // New arena / float32 copy of `cap` slots holding the current n_ slots.
    void grow(std::size_t cap, Arena& arena, std::vector<float>& full) const;

    StoreOptions opt_;
    Quantizer quantizer_;
    std::size_t stride_;
    std::size_t n_ = 0, capacity_ = 0;
    Arena arena_;
    std::vector<float> full_;
    std::vector<float> seen_lo_, seen_hi_; // exact min / max of every stored (normalised) row
    DriftStats drift_;
};

} // namespace pysim::quant
