// Export of an index as flat arrays, and the import that trusts none of them.
//
// The Python layer stores the arrays in pysim's checked container (magic, version, CRC), which
// catches truncation and bit flips; this file catches everything else a foreign or crafted
// file could hold, *before* building anything: array lengths that disagree, statuses, levels
// and counts out of range, links to slots that do not exist, to the node itself, to a node
// whose level is below the list's level, or to a never-inserted slot, duplicate live ids, an
// entry point that is not at the top level, a free list that is not exactly the non-live
// slots. Every allocation is proportional to arrays that were actually read, so a file can
// never make the import allocate more than it holds. A search on an imported index can
// therefore never read out of bounds.
#include <algorithm>
#include <cmath>
#include <string>

#include "common/errors.hpp"
#include "hnsw/hnsw.hpp"

namespace pysim::hnsw {
namespace {

void check(bool ok, const std::string& what) {
    if (!ok)
        throw std::invalid_argument("invalid HNSW state: " + what);
}

} // namespace

State HnswIndex::export_state() const {
    std::lock_guard<std::mutex> one_writer(writer_); // between two mutations (hnsw.hpp)
    SharedLock lock(*this);
    return export_locked();
}

State HnswIndex::export_locked() const {
    State st;
    const std::size_t n = graph_.size();
    const std::size_t dim = opt_.dim, m0 = graph_.M0(), M = opt_.M;
    st.n = n;
    if (!qstore_)
        st.codes.resize(n * dim);
    st.levels.resize(n);
    st.status.resize(n);
    st.labels.resize(n);
    st.counts0.resize(n);
    st.links0.assign(n * m0, 0);
    std::size_t rows = 0;
    for (slot_t s = 0; s < n; ++s)
        rows += graph_.level(s);
    st.upper_counts.resize(rows);
    st.upper_links.assign(rows * M, 0);
    std::size_t row = 0;
    for (slot_t s = 0; s < n; ++s) {
        if (!qstore_)
            store_.decode(graph_.code(s), st.codes.data() + std::size_t(s) * dim);
        st.levels[s] = static_cast<std::uint8_t>(graph_.level(s));
        st.status[s] = static_cast<std::uint8_t>(graph_.status(s));
        st.labels[s] = graph_.is_live(s) ? graph_.label(s) : kNoIndex;
        for (int l = 0; l <= graph_.level(s); ++l) {
            const std::uint32_t* lst = graph_.list(s, l);
            const std::size_t c = graph_.count(lst, l);
            std::uint32_t* dst =
                l == 0 ? &st.links0[std::size_t(s) * m0] : &st.upper_links[row * M];
            for (std::size_t j = 0; j < c; ++j)
                dst[j] = load_word(lst + 1 + j);
            if (l == 0) {
                st.counts0[s] = static_cast<std::uint16_t>(c);
            } else {
                st.upper_counts[row++] = static_cast<std::uint16_t>(c);
            }
        }
    }
    st.free_slots = free_;
    const std::uint64_t e = entry_.load(std::memory_order_acquire);
    st.entry = e == 0 ? -1 : std::int64_t(Entry::slot(e));
    st.max_level = Entry::level(e);
    st.next_id = next_id_;
    st.rng = rng_;
    if (qstore_)
        st.quant = qstore_->export_state();
    return st;
}

std::unique_ptr<HnswIndex> HnswIndex::from_state(const Options& opt, const State& st) {
    check(opt.dim >= 1 && opt.M >= 2 && opt.M <= 32767 && opt.ef_construction >= 1,
          "parameters out of range");
    const std::size_t n = st.n, dim = opt.dim, M = opt.M, m0 = 2 * M;
    check(n <= kMaxSlots, "too many slots");
    check(st.codes.size() == (opt.quantized ? 0 : n * dim),
          "vectors do not match the number of slots");
    check(opt.quantized == st.quant.has_value(), "quantised storage does not match the options");
    if (st.quant) {
        const quant::StoreOptions want = quant_options(opt), got = st.quant->options;
        check(got.kind == want.kind && got.dim == want.dim && got.space == want.space &&
                  got.normalize == want.normalize && got.mode == want.mode &&
                  got.keep_full == want.keep_full && got.clip == want.clip,
              "quantised storage options do not match the index");
        check(st.quant->n == n, "quantised records do not match the number of slots");
    }
    check(st.levels.size() == n && st.status.size() == n && st.labels.size() == n &&
              st.counts0.size() == n,
          "per-slot arrays disagree in length");
    check(st.links0.size() == n * m0, "level-0 links do not match the number of slots");
    std::size_t rows = 0;
    int top = -1;
    for (std::size_t s = 0; s < n; ++s) {
        check(st.levels[s] <= kMaxLevel, "level out of range");
        check(st.status[s] <= std::uint8_t(Status::free), "unknown slot status");
        rows += st.levels[s];
        if (st.status[s] != std::uint8_t(Status::free))
            top = std::max<int>(top, st.levels[s]);
    }
    check(st.upper_counts.size() == rows && st.upper_links.size() == rows * M,
          "upper-level links do not match the levels");
    for (const float v : st.codes)
        check(std::isfinite(v), "vector with NaN or infinity");

    // Links: in range, not to self, not to a never-inserted slot, to a node that has the level.
    const auto check_list = [&](std::size_t s, int level, std::size_t count,
                                const std::uint32_t* ids, std::size_t cap) {
        check(count <= cap, "neighbour count above the list capacity");
        const bool free_slot = st.status[s] == std::uint8_t(Status::free);
        check(!free_slot || count == 0, "a never-inserted slot has links");
        for (std::size_t j = 0; j < count; ++j) {
            const std::uint32_t v = ids[j];
            check(v < n, "link to a slot that does not exist");
            check(v != s, "link from a node to itself");
            check(st.status[v] != std::uint8_t(Status::free), "link to a never-inserted slot");
            check(int(st.levels[v]) >= level, "link to a node below the list's level");
        }
    };
    std::size_t row = 0;
    for (std::size_t s = 0; s < n; ++s) {
        check_list(s, 0, st.counts0[s], &st.links0[s * m0], m0);
        for (int l = 1; l <= st.levels[s]; ++l, ++row) {
            check_list(s, l, st.upper_counts[row], &st.upper_links[row * M], M);
        }
    }

    // Ids: live ones >= 0 and distinct; next_id beyond all of them.
    std::vector<index_t> live_ids;
    for (std::size_t s = 0; s < n; ++s) {
        if (st.status[s] == std::uint8_t(Status::live))
            live_ids.push_back(st.labels[s]);
    }
    std::sort(live_ids.begin(), live_ids.end());
    check(live_ids.empty() || live_ids.front() >= 0, "negative id");
    check(std::adjacent_find(live_ids.begin(), live_ids.end()) == live_ids.end(), "duplicate id");
    check(st.next_id <= kIdLimit &&
              (live_ids.empty() || st.next_id > std::uint64_t(live_ids.back())),
          "next id not above the stored ids");

    // Entry point: at the top level of the inserted nodes, or absent when there are none.
    if (top < 0) {
        check(st.entry == -1 && st.max_level == -1, "entry point in an empty graph");
    } else {
        check(st.entry >= 0 && std::size_t(st.entry) < n, "entry point out of range");
        check(st.status[std::size_t(st.entry)] != std::uint8_t(Status::free) &&
                  st.max_level == top && st.levels[std::size_t(st.entry)] == top,
              "entry point is not on the top level");
    }

    // Free list: exactly the slots that are not live, each once.
    std::vector<std::uint8_t> listed(n, 0);
    for (const std::uint32_t s : st.free_slots) {
        check(s < n && st.status[s] != std::uint8_t(Status::live) && !listed[s],
              "free list entry invalid");
        listed[s] = 1;
    }
    check(st.free_slots.size() == n - live_ids.size(), "free list misses non-live slots");

    Options o = opt;
    o.max_elements = 0;
    auto ix = std::make_unique<HnswIndex>(o);
    if (st.quant) {
        try {
            ix->qstore_ = quant::QuantStore::from_state(*st.quant);
        } catch (const std::invalid_argument& e) {
            check(false, e.what());
        }
    }
    ix->graph_.assign(n, reinterpret_cast<const unsigned char*>(st.codes.data()), st.levels.data(),
                      st.status.data(), st.labels.data(), st.counts0.data(), st.links0.data(),
                      st.upper_counts.data(), st.upper_links.data());
    ix->id_map_.reserve(live_ids.size());
    for (slot_t s = 0; s < n; ++s) {
        if (st.status[s] == std::uint8_t(Status::live))
            ix->id_map_.insert(st.labels[s], s);
        if (st.status[s] == std::uint8_t(Status::deleted))
            ++ix->tombstones_;
    }
    ix->live_ = live_ids.size();
    ix->free_.assign(st.free_slots.begin(), st.free_slots.end());
    if (top >= 0) {
        ix->entry_.store(Entry::pack(static_cast<slot_t>(st.entry), top));
    }
    ix->next_id_ = st.next_id;
    ix->rng_ = st.rng;
    return ix;
}

} // namespace pysim::hnsw
