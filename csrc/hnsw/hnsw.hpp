// HnswIndex: a hierarchical navigable small-world graph over float32 vectors, with ids chosen
// by the caller, tombstone deletion, filtered search and safe concurrent use.
//
// Locking. One reader/writer lock per index (std::shared_mutex behind a writer-preferring
// turnstile, so a stream of queries cannot starve a writer):
//   * query, contains, get_items: shared;
//   * remove and the short planning/commit steps of add: exclusive;
//   * the long linking step of add: shared, so queries keep running while points are
//     inserted; links are then guarded per node by striped mutexes (graph.hpp explains why
//     lock-free readers are safe).
// On top of it, one writer mutex admits one mutating call at a time - add (plan, link and the
// renumbering after it), remove, refit - and export (save, pickle), which therefore sees the
// state between two mutations, never an add half linked. Why not let adds overlap: between
// an add's commit (exclusive) and its linking (shared) the lock is free, and another add's
// slot renumbering, a remove freeing a committed slot or a replace re-linking it there made
// the first add link stale slot numbers (whole batches became unreachable). Inside one add
// the rows are still linked by every thread it is given, with queries running alongside.
// Callers from Python must release the GIL before any of these calls (they block).
//
// add(X, ids) in three steps:
//   1. plan (exclusive): classify every row as new / replaces an existing id / reuses the
//      slot of a removed point, reserve all memory (may throw: nothing changed yet), then
//      commit without failure points: codes, labels, levels, id map;
//   2. link (shared): insert or re-link the rows in parallel (parallel_for, Ctrl-C aware);
//   3. on interruption or error only (exclusive): rows whose linking never started are
//      rolled back, so every point is either fully in or absent.
// With threads = 1 the rows are linked in order and levels come from a seeded generator, so
// two builds from the same data and seed give identical graphs.
//
// Removed points stay in the graph as tombstones (routing only, never returned) and their
// slots are reused by later adds; a reused or replaced slot is re-linked in place.
//
// Vector storage goes through a store; the graph code only sees a distance functor addressed
// by slot, whose type the search and build templates take as a parameter. A float32 index keeps
// its rows inside the graph's node records (FloatStore, vector_store.hpp). A quantised index
// (Options::quantized) keeps f16 / bf16 / sq8 / sq4 records in a quant::QuantStore indexed by the
// same slots, plus a float32 copy when refine > 0; it walks the graph over the records and
// re-ranks the best candidates (quantized.cpp). Both plug in at the two places that bind the
// functor (search dispatch and link_jobs).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <vector>

#include "common/types.hpp"
#include "hnsw/block_codes.hpp"
#include "hnsw/graph.hpp"
#include "hnsw/id_map.hpp"
#include "hnsw/search_state.hpp"
#include "hnsw/vector_store.hpp"
#include "quant/store.hpp"

namespace pysim::hnsw {

struct Options {
    std::size_t dim = 0;
    Metric metric = Metric::sqeuclidean; // mahalanobis arrives as euclidean on mapped rows
    std::size_t M = 16;
    std::size_t ef_construction = 200;
    std::size_t max_elements = 0; // initial capacity hint
    std::uint64_t seed = 0;
    // Quantised storage: records of `kind`, and a float32 copy for re-ranking when refine > 0
    // (the number of best candidates re-scored exactly, at least k; kAutoRefine: 2k for sq8,
    // the whole beam otherwise; 0 keeps no copy and re-scores the beam with the decoded vectors
    // instead).
    bool quantized = false;
    quant::Kind kind = quant::Kind::sq8;
    std::size_t refine = 0;
    // The "rabitq" block layout (block_codes.hpp): float32 vectors, plus 1-bit codes of every
    // vertex's neighbours inside its record; not `quantized` (no QuantStore).
    bool blocks = false;
};

inline constexpr std::size_t kAutoRefine = ~std::size_t{0};
/// One above the largest id (ids are int64 >= 0): what next_id becomes once 2^63 - 1 is used.
inline constexpr std::uint64_t kIdLimit = std::uint64_t{1} << 63;

/// How a quantised index configures its QuantStore (mode, float32 copy) for these options.
quant::StoreOptions quant_options(const Options& opt);

/// Everything needed to rebuild an index bit for bit (see persist.cpp for the checks).
struct State {
    std::size_t n = 0;                       // slots
    std::vector<float> codes;                // (n, dim) stored vectors; empty when quantised
    std::vector<std::uint8_t> levels;        // (n,)
    std::vector<std::uint8_t> status;        // (n,) Status
    std::vector<index_t> labels;             // (n,) caller ids, -1 where not live
    std::vector<std::uint16_t> counts0;      // (n,)
    std::vector<std::uint32_t> links0;       // (n, 2M)
    std::vector<std::uint16_t> upper_counts; // (sum(levels),) slot-major, level 1 first
    std::vector<std::uint32_t> upper_links;  // (sum(levels), M)
    std::vector<std::uint32_t> free_slots;   // reuse order (last is reused first)
    std::int64_t entry = -1;                 // entry slot, -1 when none
    int max_level = -1;
    std::uint64_t next_id = 0; // in [0, kIdLimit]
    std::uint64_t rng = 0;
    std::optional<quant::StoreState> quant; // records, ranges, float32 copy when quantised
};

/// Called now and then by the adding thread with (rows linked, rows total).
using Progress = std::function<void(std::size_t, std::size_t)>;

class HnswIndex {
  public:
    explicit HnswIndex(const Options& opt);
    ~HnswIndex();
    HnswIndex(const HnswIndex&) = delete;
    HnswIndex& operator=(const HnswIndex&) = delete;

    /// Adds n rows (dim floats each). ids: n caller ids (>= 0, distinct), or nullptr for
    /// next_id(), next_id() + 1, ... An existing id gets its vector replaced.
    void add(const float* rows, std::size_t n, const index_t* ids, std::size_t threads,
             const Progress& progress = {});

    /// k nearest neighbours of m queries: dist/ids (m, k), ascending, padded with inf / -1.
    /// allowed (n_allowed ids) restricts results when has_filter; ids not in the index are
    /// ignored. Few allowed points (or tombstones) switch to exact brute force over them.
    void search(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                std::size_t threads, bool has_filter, const index_t* allowed, std::size_t n_allowed,
                float* dist, index_t* ids) const;

    /// Exact k nearest neighbours among all live points (ties: smaller id first).
    void exact_search(const float* queries, std::size_t m, std::size_t k, std::size_t threads,
                      float* dist, index_t* ids) const;

    /// Marks ids removed. Throws std::out_of_range (nothing removed) if one is unknown.
    void remove(const index_t* ids, std::size_t n);

    bool contains(index_t id) const;
    std::vector<index_t> ids() const; // live ids in slot order
    /// Stored vectors of n ids into out (n, dim). Throws std::out_of_range if one is unknown.
    void get_items(const index_t* ids, std::size_t n, float* out) const;

    std::size_t size() const; // live points
    std::size_t dim() const noexcept { return opt_.dim; }
    std::size_t M() const noexcept { return opt_.M; }
    std::size_t ef_construction() const noexcept { return opt_.ef_construction; }
    std::uint64_t seed() const noexcept { return opt_.seed; }
    Metric metric() const noexcept { return opt_.metric; }
    std::size_t capacity() const;
    /// Smallest id above every id ever stored: the first default id; kIdLimit (2^63) once an
    /// id of 2^63 - 1 was stored, when default ids are exhausted.
    std::uint64_t next_id() const;
    std::size_t memory_bytes() const;

    bool quantized() const noexcept { return opt_.quantized; }
    bool blocks() const noexcept { return opt_.blocks; }
    /// Block layout: (re)computes the codes of every vertex whose list changed since they were
    /// written (all of them after a load). No-op for other layouts. Blocks queries while it runs.
    void seal_blocks(std::size_t threads);
    quant::Kind kind() const noexcept { return opt_.kind; }
    std::size_t refine() const noexcept { return opt_.refine; }
    /// sq8 / sq4: new per-dimension ranges from every stored vector, then every record is
    /// re-encoded (the graph is kept). No-op otherwise. Strong guarantee; blocks queries.
    void refit(std::size_t threads);
    /// Rows stored since the ranges were fitted and how many of their elements were clipped.
    quant::DriftStats drift() const;

    State export_state() const;
    /// Rebuilds from a State after checking every field and link; throws
    /// std::invalid_argument naming the first defect.
    static std::unique_ptr<HnswIndex> from_state(const Options& opt, const State& st);

  private:
    enum class Kind : std::uint8_t { insert, relink, keep };
    struct Job {
        slot_t slot;
        Kind kind;
    };

    // Readers pass the turnstile before taking the shared lock; a writer holds the turnstile
    // while it waits for the exclusive lock, so new readers queue behind it (no starvation).
    class SharedLock {
      public:
        explicit SharedLock(const HnswIndex& ix) : lock_(ix.rw_, std::defer_lock) {
            {
                std::lock_guard<std::mutex> gate(ix.turnstile_);
            }
            lock_.lock();
        }

      private:
        std::shared_lock<std::shared_mutex> lock_;
    };
    class ExclusiveLock {
      public:
        explicit ExclusiveLock(const HnswIndex& ix) : gate_(ix.turnstile_), lock_(ix.rw_) {
            gate_.unlock();
        }

      private:
        std::unique_lock<std::mutex> gate_;
        std::unique_lock<std::shared_mutex> lock_;
    };

    // build.cpp
    void link_jobs(const float* rows, const std::vector<Job>& jobs, std::size_t threads,
                   const Progress& progress, std::vector<std::uint8_t>& started);
    bool walk_codes_while_linking() const noexcept;
    template <class Dist> void insert(const Dist& proto, slot_t s, Scratch& sc);
    template <class Dist> void relink(const Dist& proto, slot_t s, Scratch& sc);
    template <class Dist>
    void connect(const Dist& proto, slot_t s, int level, const std::vector<Cand>& picked,
                 Scratch& sc);
    template <class Dist, class Walk>
    Cand descend_and_link(const Dist& dist, const Walk& walk, slot_t s, int level, Cand ep,
                          Scratch& sc);

    // hnsw.cpp
    /// Runs search_impl / search_quant for this index's storage and space (callers hold the
    /// shared lock): exactly over `scan` when given, else a graph walk filtered by `bits`.
    void dispatch(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                  std::size_t threads, const std::vector<std::uint64_t>* bits,
                  const std::vector<slot_t>* scan, float* dist, index_t* ids) const;
    template <Space S>
    void search_impl(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                     std::size_t threads, const std::vector<std::uint64_t>* bits,
                     const std::vector<slot_t>* brute_slots, float* dist, index_t* ids) const;
    // persist.cpp / reorder.cpp (callers hold the lock)
    State export_locked() const;
    /// Renumbers the slots in breadth-first order of the level-0 graph from the entry point,
    /// when the index has at least doubled since the last renumbering (reorder.cpp). The
    /// caller holds writer_.
    void maybe_reorder();

    // block_search.cpp
    template <Space S>
    void search_blocks(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                       std::size_t threads, const std::vector<std::uint64_t>* bits, float* dist,
                       index_t* ids) const;
    /// Seals dirty vertices and those linking to `changed` slots (vectors rewritten in place).
    void seal_locked(const std::vector<slot_t>& changed, std::size_t threads);
    /// After a successful add: seals what the add changed (block layout only).
    void seal_after_add(const std::vector<Job>& jobs, std::size_t threads);

    // quantized.cpp
    template <Space S>
    void search_quant(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                      std::size_t threads, const std::vector<std::uint64_t>* bits,
                      const std::vector<slot_t>* brute_slots, float* dist, index_t* ids) const;
    /// Writes row into slot's storage (commit step of add; cannot fail).
    void store_row(slot_t s, const float* row, float* scratch) noexcept;
    /// Whether row would be stored exactly as slot already holds it.
    bool same_row(slot_t s, const float* row, float* scratch, std::uint8_t* record) const noexcept;
    std::size_t rerank_pool(std::size_t k) const noexcept;
    void finish_distances(float* d, std::size_t n) const noexcept;
    std::vector<slot_t> live_slots() const;
    int draw_level(std::uint64_t& state) const noexcept;

    Options opt_;
    FloatStore store_;
    std::unique_ptr<quant::QuantStore> qstore_; // quantised indexes only
    BlockLayout layout_;                        // block layout only (empty otherwise)
    std::vector<float> block_mu_, block_pmu_;   // centre of the codes and its rotation
    Graph graph_;
    IdMap id_map_;
    std::vector<slot_t> free_; // slots of removed / rolled-back points, reused LIFO
    std::size_t live_ = 0;
    std::size_t tombstones_ = 0;       // deleted slots still in the graph
    std::size_t slots_at_reorder_ = 0; // graph size when the slots were last renumbered
    std::uint64_t next_id_ = 0;        // in [0, kIdLimit]
    std::uint64_t rng_;
    double level_mult_;

    // Entry point and top level packed in one word (Entry in graph.hpp); 0 = empty.
    std::atomic<std::uint64_t> entry_{0};
    std::mutex entry_mutex_; // held while a node that raises the top level is inserted

    // Nodes being inserted right now (kNoSlot = free entry). Searches read the graph without
    // locks, so two nodes inserted at the same time cannot find each other through links;
    // each insertion therefore also offers the others in flight as neighbour candidates,
    // which is what a serial build would have found (build.cpp, descend_and_link).
    static constexpr std::size_t kInflight = 64;
    std::atomic<slot_t> inflight_[kInflight];
    class InflightGuard;

    mutable std::mutex writer_; // one mutating call (or export) at a time, taken before rw_
    mutable std::shared_mutex rw_;
    mutable std::mutex turnstile_;
    mutable ScratchPool scratch_;
};

} // namespace pysim::hnsw
