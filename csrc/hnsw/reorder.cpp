// Renumbering the slots of an index for memory locality.
//
// Slots are handed out in insertion order, so the neighbours of a node sit anywhere in the
// arenas and every step of a search is a cache miss on a random page. After a build, nodes are
// renumbered in breadth-first order of the level-0 graph from the entry point: a node's
// neighbours then mostly get nearby numbers, so the records a search reads next share pages
// (TLB) and, for small codes, cache lines with ones it read before. (Graph reordering for ANN
// search is studied in Coleman et al., "Graph Reordering for Cache-Efficient Near Neighbor
// Search", 2022; BFS order is the cheap one that captures most of the gain.)
//
// When: at the end of an add that left the index at least twice as large as at the last
// renumbering (and >= kMinSlots), so a build is renumbered once and a stream of adds costs
// amortised O(1) per point. How: export the state, permute every per-slot array and remap
// every link, rebuild through from_state (which validates it all again) and swap the pieces
// in, under the exclusive lock. That costs a transient second copy of the index - the price of
// reusing the one fully checked construction path instead of a second, in-place one.
// Ids, results and persistence are unaffected; only slot numbers (internal) change.
#include <algorithm>
#include <new>

#include "hnsw/hnsw.hpp"

namespace pysim::hnsw {
namespace {

constexpr std::size_t kMinSlots = 4096;

/// Breadth-first order from the entry (level 0), then any slot it did not reach.
std::vector<slot_t> bfs_order(const State& st, std::size_t m0) {
    const std::size_t n = st.n;
    std::vector<slot_t> order;
    order.reserve(n);
    std::vector<std::uint8_t> seen(n, 0);
    const auto visit = [&](slot_t s) {
        if (!seen[s]) {
            seen[s] = 1;
            order.push_back(s);
        }
    };
    if (st.entry >= 0)
        visit(static_cast<slot_t>(st.entry));
    for (std::size_t head = 0; head < order.size(); ++head) {
        const slot_t s = order[head];
        const std::uint32_t* links = &st.links0[std::size_t(s) * m0];
        for (std::size_t j = 0; j < st.counts0[s]; ++j)
            visit(links[j]);
    }
    for (slot_t s = 0; s < n; ++s)
        visit(s);
    return order;
}

template <class T>
void gather_rows(std::vector<T>& v, std::size_t width, const std::vector<slot_t>& order) {
    if (v.empty() || width == 0)
        return;
    std::vector<T> out(v.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        std::copy_n(&v[std::size_t(order[i]) * width], width, &out[i * width]);
    v.swap(out);
}

/// The state with slot order[i] renamed i.
State permuted(State st, const std::vector<slot_t>& order, std::size_t dim, std::size_t M) {
    const std::size_t n = st.n, m0 = 2 * M;
    std::vector<slot_t> rename(n);
    for (std::size_t i = 0; i < n; ++i)
        rename[order[i]] = static_cast<slot_t>(i);

    // Upper lists are stored slot-major: find each old slot's first row before permuting.
    std::vector<std::size_t> first_row(n + 1, 0);
    for (std::size_t s = 0; s < n; ++s)
        first_row[s + 1] = first_row[s] + st.levels[s];
    std::vector<std::uint16_t> up_counts;
    std::vector<std::uint32_t> up_links;
    up_counts.reserve(st.upper_counts.size());
    up_links.reserve(st.upper_links.size());
    for (std::size_t i = 0; i < n; ++i) {
        const slot_t s = order[i];
        for (std::size_t r = first_row[s]; r < first_row[s + 1]; ++r) {
            up_counts.push_back(st.upper_counts[r]);
            for (std::size_t j = 0; j < M; ++j) {
                const std::uint32_t v = st.upper_links[r * M + j];
                up_links.push_back(j < st.upper_counts[r] ? rename[v] : 0);
            }
        }
    }
    st.upper_counts.swap(up_counts);
    st.upper_links.swap(up_links);

    gather_rows(st.codes, dim, order);
    gather_rows(st.levels, 1, order);
    gather_rows(st.status, 1, order);
    gather_rows(st.labels, 1, order);
    gather_rows(st.links0, m0, order);
    gather_rows(st.counts0, 1, order);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < st.counts0[i]; ++j) {
            std::uint32_t& v = st.links0[i * m0 + j];
            v = rename[v];
        }
    }
    for (std::uint32_t& s : st.free_slots)
        s = rename[s];
    if (st.entry >= 0)
        st.entry = rename[std::size_t(st.entry)];
    if (st.quant) {
        const std::size_t cb = n ? st.quant->codes.size() / n : 0;
        gather_rows(st.quant->codes, cb, order);
        gather_rows(st.quant->full, dim, order);
    }
    return st;
}

} // namespace

void HnswIndex::maybe_reorder() {
    ExclusiveLock lock(*this);
    const std::size_t n = graph_.size();
    if (n < kMinSlots || n < 2 * slots_at_reorder_)
        return;
    std::unique_ptr<HnswIndex> fresh;
    try {
        const State st = export_locked();
        const std::vector<slot_t> order = bfs_order(st, graph_.M0());
        fresh = from_state(opt_, permuted(st, order, opt_.dim, opt_.M));
    } catch (const std::bad_alloc&) {
        return; // an optimisation only: the index stays as it is
    }
    // Commit (moves only).
    graph_ = std::move(fresh->graph_);
    id_map_ = std::move(fresh->id_map_);
    free_ = std::move(fresh->free_);
    qstore_ = std::move(fresh->qstore_);
    entry_.store(fresh->entry_.load(std::memory_order_relaxed), std::memory_order_release);
    slots_at_reorder_ = n;
}

} // namespace pysim::hnsw
