// HnswIndex: locking, the plan/commit steps of add, remove, lookups and search dispatch.
// (Linking lives in build.cpp, persistence and its checks in persist.cpp.)
//
// Search strategy per call, decided once under the shared lock:
//   * the kernels are read from the dispatch table once, and bound into a distance functor;
//   * an allowed-id filter becomes a bitset over slots (one bit test per visited node, no
//     Python), and the allowed slots are counted;
//   * when the points a query may return are few - at most ef, or few enough that a filtered
//     graph walk (which visits about ef * M / selectivity nodes) would cost more than scanning
//     them (cost model below) - the query is answered exactly by brute force over them, so a
//     selective filter returns the true top k among the allowed ids;
//   * otherwise the graph is searched, with the acceptance test compiled in only when there
//     is a filter or tombstones.
#include "hnsw/hnsw.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "common/topk.hpp"
#include "hnsw/search.hpp"
#include "simd/dispatch.hpp"

namespace pysim::hnsw {

namespace {

Space space_of(Metric m) {
    switch (m) {
    case Metric::sqeuclidean:
    case Metric::euclidean:
        return Space::l2;
    case Metric::cosine:
    case Metric::ip:
        return Space::ip;
    case Metric::mahalanobis:
        break;
    }
    throw std::invalid_argument("metric: mahalanobis must be mapped to euclidean before the core");
}

void pad(float* d, index_t* ids, std::size_t n) {
    std::fill(d, d + n, std::numeric_limits<float>::infinity());
    std::fill(ids, ids + n, kNoIndex);
}

// A filtered or tombstoned graph walk visits about ef * M / selectivity nodes; scanning the c
// admissible points costs c distances, each cheaper (no heap, no link reads). Scan when
// c * selectivity <= 2 * ef * M, and always when c <= ef.
bool prefer_brute(std::size_t admissible, std::size_t in_graph, std::size_t ef, std::size_t M) {
    if (admissible <= ef)
        return true;
    if (admissible >= in_graph)
        return false;
    const double selectivity = double(admissible) / double(in_graph);
    return double(admissible) * selectivity <= 2.0 * double(ef) * double(M);
}

} // namespace

quant::StoreOptions quant_options(const Options& opt) {
    quant::StoreOptions so;
    so.kind = opt.kind;
    so.dim = opt.dim;
    const bool ip = space_of(opt.metric) == Space::ip;
    so.space = ip ? quant::Space::ip : quant::Space::l2;
    so.normalize = opt.metric == Metric::cosine;
    // Traverse with the symmetric forms where they exist (int8 codes against an int8 query,
    // bf16 against a bf16 query for ip): 1.3-2.4x more codes per second than the asymmetric
    // kernels (quant/quantizer.hpp); the re-rank then repairs the ordering they blur.
    const bool scalar = opt.kind == quant::Kind::sq8 || opt.kind == quant::Kind::sq4;
    so.mode = scalar || (opt.kind == quant::Kind::bf16 && ip) ? quant::Mode::symmetric
                                                              : quant::Mode::asymmetric;
    so.keep_full = opt.refine > 0;
    so.clip = 0.0;
    return so;
}

HnswIndex::HnswIndex(const Options& opt)
    : opt_(opt), store_(opt.dim, space_of(opt.metric), opt.metric == Metric::cosine),
      layout_(opt.blocks ? BlockLayout(std::max<std::size_t>(opt.dim, 1), 2 * opt.M, opt.seed)
                         : BlockLayout()),
      graph_(opt.quantized ? 0 : opt.dim * sizeof(float), opt.M, opt.blocks ? layout_.bytes() : 0),
      rng_(opt.seed), level_mult_(1.0 / std::log(double(std::max<std::size_t>(opt.M, 2)))) {
    require(opt.dim >= 1, "dim must be >= 1");
    require(opt.ef_construction >= 1, "ef_construction must be >= 1");
    if (opt.quantized)
        qstore_ = std::make_unique<quant::QuantStore>(quant_options(opt));
    for (auto& f : inflight_)
        f.store(kNoSlot, std::memory_order_relaxed);
    if (opt.max_elements > 0) {
        try {
            graph_.reserve_total(opt.max_elements);
        } catch (const std::bad_alloc&) {
            // max_elements is only a hint: an index that cannot reserve it grows as it fills.
        }
    }
}

HnswIndex::~HnswIndex() = default;

int HnswIndex::draw_level(std::uint64_t& state) const noexcept {
    // splitmix64: portable, so a seed gives the same levels on every platform.
    state += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const double u = (double(z >> 11) + 1.0) * 0x1.0p-53; // (0, 1]
    const double level = std::floor(-std::log(u) * level_mult_);
    return level >= kMaxLevel ? kMaxLevel : static_cast<int>(level);
}

void HnswIndex::add(const float* rows, std::size_t n, const index_t* ids, std::size_t threads,
                    const Progress& progress) {
    if (n == 0)
        return;
    require(threads >= 1, "threads must be >= 1");
    // Allocated before any lock: a failure here changes nothing.
    std::vector<Job> jobs(n);
    std::vector<std::uint8_t> started(n, 0);
    std::vector<std::uint8_t> new_level(n, 0);
    std::vector<unsigned char> code(qstore_ ? qstore_->stride() : store_.code_bytes());
    std::vector<float> scratch(qstore_ ? opt_.dim : 0);
    if (ids != nullptr) {
        std::vector<index_t> sorted(ids, ids + n);
        std::sort(sorted.begin(), sorted.end());
        require(sorted.front() >= 0, "ids must be >= 0");
        require(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
                "ids must be distinct within one add");
    }
    bool fitted_now = false;
    std::lock_guard<std::mutex> one_writer(writer_); // plan, link and renumbering, see hnsw.hpp
    {
        ExclusiveLock lock(*this);
        if (qstore_) {
            qstore_->check_rows(rows, n); // f16 overflow; NaN/inf are rejected before the core
            // The ranges of sq codes come from the first batch an empty index receives; later
            // rows outside them are clipped and counted (drift(); refit() learns new ones).
            fitted_now = graph_.size() == 0 && qstore_->quantizer().scalar();
            if (fitted_now)
                qstore_->fit(rows, n, threads);
        }
        if (ids == nullptr) {
            require(next_id_ < kIdLimit && n <= kIdLimit - next_id_,
                    "default ids would exceed the largest id (2**63 - 1): pass ids explicitly");
        }
        // Plan: classify every row; nothing is modified until all memory is reserved.
        std::uint64_t rng = rng_;
        std::size_t n_new = 0, n_reuse = 0, new_levels = 0;
        index_t max_label = -1;
        for (std::size_t i = 0; i < n; ++i) {
            const index_t label = ids ? ids[i] : index_t(next_id_ + i);
            max_label = std::max(max_label, label);
            const slot_t s = id_map_.find(label);
            if (s != kNoSlot) {
                jobs[i] = {s, Kind::relink};
            } else if (n_reuse < free_.size()) {
                const slot_t r = free_[free_.size() - 1 - n_reuse++];
                jobs[i] = {r, graph_.status(r) == Status::free ? Kind::insert : Kind::relink};
            } else {
                new_level[i] = static_cast<std::uint8_t>(draw_level(rng));
                new_levels += new_level[i];
                jobs[i] = {kNoSlot, Kind::insert};
                ++n_new;
            }
        }
        graph_.reserve_more(n_new, new_levels);
        if (qstore_)
            qstore_->reserve(graph_.size() + n_new);
        id_map_.reserve(id_map_.size() + n);
        free_.reserve(free_.size() + n); // room for a rollback
        scratch_.prepare(threads, std::min(opt_.ef_construction, graph_.size() + n_new),
                         graph_.M0(), opt_.dim);

        // Commit: no failure points below.
        for (std::size_t i = 0; i < n; ++i) {
            const index_t label = ids ? ids[i] : index_t(next_id_ + i);
            const float* row = rows + i * opt_.dim;
            Job& job = jobs[i];
            if (job.slot == kNoSlot) {
                job.slot = graph_.append(new_level[i]);
                if (qstore_)
                    qstore_->resize(graph_.size()); // within the reserve: cannot fail
                ++live_;
            } else if (id_map_.find(label) == job.slot) {
                if (same_row(job.slot, row, scratch.data(), code.data())) {
                    job.kind = Kind::keep;
                } else {
                    store_row(job.slot, row, scratch.data());
                }
                continue; // same id, same slot: label and map already right
            } else {
                free_.pop_back(); // reused in the order planned above
                if (graph_.status(job.slot) == Status::deleted)
                    --tombstones_;
                graph_.set_status(job.slot, Status::live);
                ++live_;
            }
            store_row(job.slot, row, scratch.data());
            graph_.set_label(job.slot, label);
            id_map_.insert(label, job.slot);
        }
        next_id_ = std::max(next_id_, std::uint64_t(max_label) + 1); // max_label + 1 <= 2^63
        rng_ = rng;
        if (fitted_now)
            qstore_->set_drift({n, 0, 0});
    }

    std::exception_ptr error;
    try {
        SharedLock lock(*this);
        link_jobs(rows, jobs, threads, progress, started);
    } catch (...) {
        error = std::current_exception();
    }
    if (!error) {
        maybe_reorder();
        seal_after_add(jobs, threads);
        return;
    }
    // Interrupted or failed: rows whose insertion never started leave again, so each row is
    // either fully in or absent. (Re-linked rows keep their new vector and old links.)
    {
        ExclusiveLock lock(*this);
        for (std::size_t i = 0; i < n; ++i) {
            const slot_t s = jobs[i].slot;
            if (started[i] || jobs[i].kind != Kind::insert || !graph_.is_live(s))
                continue;
            if (id_map_.find(graph_.label(s)) != s)
                continue;
            id_map_.erase(graph_.label(s));
            graph_.set_label(s, kNoIndex);
            graph_.set_status(s, Status::free);
            --live_;
            if (free_.size() < free_.capacity())
                free_.push_back(s);
        }
    }
    std::rethrow_exception(error);
}

void HnswIndex::remove(const index_t* ids, std::size_t n) {
    if (n == 0)
        return;
    std::vector<slot_t> slots(n);
    std::vector<std::pair<slot_t, std::size_t>> order(n);
    std::lock_guard<std::mutex> one_writer(writer_);
    ExclusiveLock lock(*this);
    for (std::size_t i = 0; i < n; ++i) {
        slots[i] = id_map_.find(ids[i]);
        if (slots[i] == kNoSlot) {
            throw std::out_of_range("id " + std::to_string(ids[i]) + " is not in the index");
        }
        order[i] = {slots[i], i};
    }
    // Repeated ids count once (first occurrence), so a slot is never freed twice.
    std::sort(order.begin(), order.end());
    for (std::size_t i = 1; i < n; ++i) {
        if (order[i].first == order[i - 1].first)
            slots[order[i].second] = kNoSlot;
    }
    free_.reserve(free_.size() + n);
    for (std::size_t i = 0; i < n; ++i) {
        const slot_t s = slots[i];
        if (s == kNoSlot)
            continue;
        id_map_.erase(graph_.label(s));
        graph_.set_label(s, kNoIndex);
        graph_.set_status(s, Status::deleted);
        free_.push_back(s);
        --live_;
        ++tombstones_;
    }
}

bool HnswIndex::contains(index_t id) const {
    SharedLock lock(*this);
    return id_map_.find(id) != kNoSlot;
}

std::vector<index_t> HnswIndex::ids() const {
    SharedLock lock(*this);
    std::vector<index_t> out;
    out.reserve(live_);
    for (slot_t s = 0; s < graph_.size(); ++s) {
        if (graph_.is_live(s))
            out.push_back(graph_.label(s));
    }
    return out;
}

void HnswIndex::get_items(const index_t* ids, std::size_t n, float* out) const {
    SharedLock lock(*this);
    for (std::size_t i = 0; i < n; ++i) {
        const slot_t s = id_map_.find(ids[i]);
        if (s == kNoSlot) {
            throw std::out_of_range("id " + std::to_string(ids[i]) + " is not in the index");
        }
        float* dst = out + i * opt_.dim;
        if (!qstore_) {
            store_.decode(graph_.code(s), dst);
        } else if (qstore_->keeps_full()) {
            std::copy_n(qstore_->full_row(s), opt_.dim, dst);
        } else {
            qstore_->decode(s, dst);
        }
    }
}

std::size_t HnswIndex::size() const {
    SharedLock lock(*this);
    return live_;
}

std::size_t HnswIndex::capacity() const {
    SharedLock lock(*this);
    return graph_.capacity();
}

std::uint64_t HnswIndex::next_id() const {
    SharedLock lock(*this);
    return next_id_;
}

std::size_t HnswIndex::memory_bytes() const {
    SharedLock lock(*this);
    return sizeof(*this) + graph_.memory_bytes() + id_map_.memory_bytes() +
           free_.capacity() * sizeof(slot_t) + (qstore_ ? qstore_->memory_bytes() : 0);
}

std::vector<slot_t> HnswIndex::live_slots() const {
    std::vector<slot_t> out;
    out.reserve(live_);
    for (slot_t s = 0; s < graph_.size(); ++s) {
        if (graph_.is_live(s))
            out.push_back(s);
    }
    return out;
}

void HnswIndex::finish_distances(float* d, std::size_t n) const noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        if (!(d[i] < std::numeric_limits<float>::infinity()))
            continue; // padding
        switch (opt_.metric) {
        case Metric::euclidean:
            d[i] = std::sqrt(std::max(d[i], 0.0f));
            break;
        case Metric::sqeuclidean:
            d[i] = std::max(d[i], 0.0f);
            break;
        case Metric::cosine:
            d[i] = std::min(std::max(d[i], 0.0f), 2.0f);
            break;
        default:
            break;
        }
    }
}

void HnswIndex::search(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                       std::size_t threads, bool has_filter, const index_t* allowed,
                       std::size_t n_allowed, float* dist, index_t* ids) const {
    require(k >= 1, "k must be >= 1");
    require(threads >= 1, "threads must be >= 1");
    ef = std::max(ef, k);
    SharedLock lock(*this);
    if (m == 0)
        return;
    std::vector<std::uint64_t> bits;
    std::vector<slot_t> admissible;
    bool brute = false;
    if (has_filter) {
        bits.assign((graph_.size() + 63) / 64, 0);
        admissible.reserve(std::min(n_allowed, live_));
        for (std::size_t i = 0; i < n_allowed; ++i) {
            const slot_t s = id_map_.find(allowed[i]);
            if (s == kNoSlot || ((bits[s >> 6] >> (s & 63)) & 1u))
                continue;
            bits[s >> 6] |= std::uint64_t{1} << (s & 63);
            admissible.push_back(s);
        }
        brute = prefer_brute(admissible.size(), live_ + tombstones_, ef, opt_.M);
    } else {
        brute = prefer_brute(live_, live_ + tombstones_, ef, opt_.M);
        if (brute)
            admissible = live_slots();
    }
    if (admissible.empty() && (has_filter || live_ == 0)) {
        pad(dist, ids, m * k);
        return;
    }
    if (brute)
        std::sort(admissible.begin(), admissible.end()); // sequential arena reads
    const auto* bitset = has_filter && !brute ? &bits : nullptr;
    const auto* scan = brute ? &admissible : nullptr;
    dispatch(queries, m, k, ef, threads, bitset, scan, dist, ids);
}

void HnswIndex::dispatch(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                         std::size_t threads, const std::vector<std::uint64_t>* bits,
                         const std::vector<slot_t>* scan, float* dist, index_t* ids) const {
    // The one place a search picks its storage (float32 / block codes / quantised) and space.
    if (opt_.blocks && scan == nullptr) {
        if (store_.space() == Space::ip) {
            search_blocks<Space::ip>(queries, m, k, ef, threads, bits, dist, ids);
        } else {
            search_blocks<Space::l2>(queries, m, k, ef, threads, bits, dist, ids);
        }
        return;
    }
    if (qstore_ && store_.space() == Space::ip) {
        search_quant<Space::ip>(queries, m, k, ef, threads, bits, scan, dist, ids);
    } else if (qstore_) {
        search_quant<Space::l2>(queries, m, k, ef, threads, bits, scan, dist, ids);
    } else if (store_.space() == Space::ip) {
        search_impl<Space::ip>(queries, m, k, ef, threads, bits, scan, dist, ids);
    } else {
        search_impl<Space::l2>(queries, m, k, ef, threads, bits, scan, dist, ids);
    }
}

void HnswIndex::exact_search(const float* queries, std::size_t m, std::size_t k,
                             std::size_t threads, float* dist, index_t* ids) const {
    require(k >= 1, "k must be >= 1");
    require(threads >= 1, "threads must be >= 1");
    SharedLock lock(*this);
    if (m == 0)
        return;
    if (live_ == 0) {
        pad(dist, ids, m * k);
        return;
    }
    const std::vector<slot_t> all = live_slots();
    dispatch(queries, m, k, k, threads, nullptr, &all, dist, ids);
}

template <Space S>
void HnswIndex::search_impl(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                            std::size_t threads, const std::vector<std::uint64_t>* bits,
                            const std::vector<slot_t>* scan, float* dist, index_t* ids) const {
    const simd::KernelTable& table = simd::active(); // once per call
    const std::size_t dim = opt_.dim;
    const bool tombstones = tombstones_ > 0;
    const std::uint64_t entry = entry_.load(std::memory_order_acquire);
    const auto work = [&](std::size_t begin, std::size_t end) {
        ScratchPool::Lease lease = scratch_.lease();
        Scratch& sc = *lease;
        if (sc.query.size() < dim)
            sc.query.resize(dim);
        TopK<float> top(k);
        for (std::size_t q = begin; q < end; ++q) {
            const float* prepared = store_.prepare_query(queries + q * dim, sc.query.data());
            const auto d = store_.distance<S>(prepared, table, graph_.code(0), graph_.stride());
            float* out_d = dist + q * k;
            index_t* out_i = ids + q * k;
            top.reset();
            if (scan != nullptr) {
                brute_force(graph_, d, scan->data(), scan->size(), top);
            } else if (entry != 0) {
                query_beam(graph_, d, entry, ef, bits ? bits->data() : nullptr, tombstones, sc);
                for (const Cand& c : sc.results.items())
                    top.push(c.d, graph_.label(c.id));
            }
            top.extract_sorted(out_d, out_i, k);
            finish_distances(out_d, k);
        }
    };
    // At most 64 queries per chunk: Ctrl-C is polled between chunks, and one chunk of a huge
    // batch at a large ef must stay far below a second (a chunk of m / (8 threads) queries ran
    // for tens of seconds before KeyboardInterrupt surfaced).
    parallel_for(m, threads, balanced_grain(m, threads, 4, 64), work);
}

} // namespace pysim::hnsw
