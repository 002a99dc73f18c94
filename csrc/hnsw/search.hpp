// The graph walks shared by queries and construction (Malkov & Yashunin, Algorithms 2 and 4).
//
// greedy_descent: on the sparse upper levels, move to whichever neighbour is closer until no
// neighbour is; the result seeds the level below.
//
// search_layer: best-first beam search with a frontier min-heap and a bounded max-heap of the
// `ef` best accepted nodes. It stops when the nearest unexpanded candidate is farther than the
// worst kept result. Templated on kFiltered: when false (no filter, no tombstones, not
// building), there is no acceptance test in the loop at all; when true, rejected nodes (deleted,
// outside the filter, or the node being inserted) are still expanded for routing but never
// enter the results. Memory-level parallelism: a node's unvisited neighbours are gathered
// first, then their codes are prefetched a few ahead of the distance that needs them.
//
// select_neighbors: the diversity heuristic - keep a candidate only if it is closer to the base
// point than to every neighbour already kept - which keeps long-range links on clustered data.
//
// Dist is a store's distance functor addressed by slot (vector_store.hpp, quant_distance.hpp):
// dist(slot), dist.code(slot) for prefetching, dist.batch() when Dist::kBatch, and
// dist.rebind(slot) for construction.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <vector>

#include "common/topk.hpp"
#include "hnsw/graph.hpp"
#include "hnsw/search_state.hpp"

namespace pysim::hnsw {

/// Prefetching: a search computes distances to a node's unvisited neighbours one after the
/// other, each a random jump in memory, so it is bound by memory latency. Whole codes are
/// prefetched several neighbours ahead, about 192 cache lines in flight (measured on MNIST
/// d=784, MiniLM d=384 and d=128 clustered data: 10-25% more queries/s than prefetching the
/// first line only, as hnswlib does).
struct Prefetch {
    std::size_t lines, ahead;
    explicit Prefetch(std::size_t code_bytes) noexcept
        : lines(std::max<std::size_t>(1, std::min<std::size_t>(128, (code_bytes + 63) / 64))),
          ahead(std::min<std::size_t>(8, std::max<std::size_t>(2, 192 / lines))) {}
    template <class Dist> void operator()(const Dist& dist, slot_t s) const noexcept {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(dist.code(s));
        for (std::size_t i = 0; i < lines; ++i)
            prefetch(p + 64 * i);
    }
};

/// Acceptance tests of search_layer: a filter's bitset over slots, live nodes only, or all.
struct BitAccept {
    const std::uint64_t* bits;
    bool operator()(slot_t s) const noexcept { return (bits[s >> 6] >> (s & 63)) & 1u; }
};
struct LiveAccept {
    const Graph* g;
    bool operator()(slot_t s) const noexcept { return g->is_live(s); }
};
struct AcceptAll {
    bool operator()(slot_t) const noexcept { return true; }
};

template <class Dist>
Cand greedy_descent(const Graph& g, const Dist& dist, Cand cur, int from_level, int to_level) {
    const Prefetch pf(dist.code_bytes());
    for (int l = from_level; l > to_level; --l) {
        bool moved = true;
        while (moved) {
            moved = false;
            const std::uint32_t* lst = g.list(cur.id, l);
            const std::size_t c = g.count(lst, l);
            for (std::size_t j = 0; j < c; ++j) {
                const slot_t v = load_word(lst + 1 + j);
                if (j + 1 < c)
                    pf(dist, load_word(lst + 2 + j));
                const float d = dist(v);
                if (d < cur.d) {
                    cur = {d, v};
                    moved = true;
                }
            }
        }
    }
    return cur;
}

/// Beam search at `level` from the seeds; leaves at most `ef` accepted nodes in s.results.
/// `accept(slot)` is consulted only when kFiltered.
template <bool kFiltered, class Dist, class Accept>
void search_layer(const Graph& g, const Dist& dist, const Cand* seeds, std::size_t n_seeds,
                  std::size_t ef, int level, Scratch& s, const Accept& accept) {
    VisitedList& visited = s.visited;
    auto& frontier = s.candidates;
    auto& results = s.results;
    visited.begin(g.size());
    frontier.clear();
    results.clear();
    if (s.ids.size() < g.M0() + 1)
        s.ids.resize(g.M0() + 1);
    if (s.dists.size() < g.M0() + 1)
        s.dists.resize(g.M0() + 1);
    slot_t* fresh = s.ids.data();
    const Prefetch pf(dist.code_bytes());

    float bound = std::numeric_limits<float>::infinity();
    for (std::size_t i = 0; i < n_seeds; ++i) {
        const Cand entry = seeds[i];
        if (visited.test_and_set(entry.id))
            continue;
        if (!kFiltered || accept(entry.id)) {
            results.push(entry);
            if (results.size() > ef)
                results.pop();
            if (results.size() >= ef)
                bound = results.top().d;
        }
        frontier.push(entry);
    }

    while (!frontier.empty()) {
        const Cand c = frontier.top();
        if (c.d > bound)
            break;
        frontier.pop();
        if (!frontier.empty()) {
            // The next node to expand: its whole level-0 list (count + 2M ids, 2-3 lines).
            const unsigned char* h =
                reinterpret_cast<const unsigned char*>(g.header(frontier.top().id));
            for (std::size_t b = 0; b < 4 * (g.M0() + 1); b += 64)
                prefetch(h + b);
        }

        const std::uint32_t* lst = g.list(c.id, level);
        const std::size_t cnt = g.count(lst, level);
        std::size_t n = 0;
        for (std::size_t j = 0; j < cnt; ++j) {
            const slot_t v = load_word(lst + 1 + j);
            if (!visited.test_and_set(v))
                fresh[n++] = v;
        }
        const auto offer = [&](slot_t v, float d) {
            if (results.size() < ef || d < bound) {
                frontier.push({d, v});
                if (!kFiltered || accept(v)) {
                    results.push({d, v});
                    if (results.size() > ef)
                        results.pop();
                    if (results.size() >= ef)
                        bound = results.top().d;
                }
            }
        };
        if constexpr (Dist::kBatch) {
            // Compressed codes are small: prefetch the whole list, then score it in one call.
            for (std::size_t i = 0; i < n; ++i)
                pf(dist, fresh[i]);
            float* d = s.dists.data();
            dist.batch(fresh, n, d);
            for (std::size_t i = 0; i < n; ++i)
                offer(fresh[i], d[i]);
        } else {
            for (std::size_t i = 0; i < std::min(n, pf.ahead); ++i)
                pf(dist, fresh[i]);
            for (std::size_t i = 0; i < n; ++i) {
                if (i + pf.ahead < n)
                    pf(dist, fresh[i + pf.ahead]);
                offer(fresh[i], dist(fresh[i]));
            }
        }
    }
}

/// Seeds of the level-0 search from the node a descent ended on: the node itself and, when it
/// has no level-0 links yet (another thread is inserting it: linked on a level above, not yet
/// below), its neighbours on the lowest level where it has some. Without them a search that
/// reached such a node through an upper-level link would return it alone.
template <class Dist>
void level0_seeds(const Graph& g, const Dist& dist, Cand cur, std::vector<Cand>& seeds) {
    seeds.assign(1, cur);
    if (g.count(g.list(cur.id, 0), 0) != 0)
        return;
    for (int l = 1; l <= g.level(cur.id); ++l) {
        const std::uint32_t* lst = g.list(cur.id, l);
        const std::size_t c = g.count(lst, l);
        for (std::size_t j = 0; j < c; ++j) {
            const slot_t v = load_word(lst + 1 + j);
            seeds.push_back({dist(v), v});
        }
        if (c != 0)
            return;
    }
}

/// A query's walk: greedy descent from the packed Entry word to
/// level 0, then the level-0 beam of width ef, accepting only slots set in `bits` when given,
/// else only live ones when the graph has tombstones. Leaves the beam in s.results.
template <class Dist>
void query_beam(const Graph& g, const Dist& d, std::uint64_t entry, std::size_t ef,
                const std::uint64_t* bits, bool tombstones, Scratch& s) {
    const auto ep = Entry::slot(entry);
    Cand cur{d(ep), ep};
    cur = greedy_descent(g, d, cur, Entry::level(entry), 0);
    level0_seeds(g, d, cur, s.seeds);
    if (bits != nullptr) {
        search_layer<true>(g, d, s.seeds.data(), s.seeds.size(), ef, 0, s, BitAccept{bits});
    } else if (tombstones) {
        search_layer<true>(g, d, s.seeds.data(), s.seeds.size(), ef, 0, s, LiveAccept{&g});
    } else {
        search_layer<false>(g, d, s.seeds.data(), s.seeds.size(), ef, 0, s, AcceptAll{});
    }
}

/// Sorts the kept results ascending (distance, then slot) into `out`.
inline void sorted_results(Scratch& s, std::vector<Cand>& out) {
    out.assign(s.results.items().begin(), s.results.items().end());
    std::sort(out.begin(), out.end());
}

/// Diversity heuristic. `cands` is sorted ascending by distance to the base point; keeps at
/// most `m` in `out`, each nearer to the base than to any neighbour kept before it.
template <class Dist>
void select_neighbors(const Graph& g, const Dist& dist, const std::vector<Cand>& cands,
                      std::size_t m, std::vector<Cand>& out) {
    out.clear();
    if (cands.size() <= m) {
        out.assign(cands.begin(), cands.end());
        return;
    }
    for (const Cand& c : cands) {
        if (out.size() >= m)
            break;
        const Dist from_c = dist.rebind(c.id);
        bool keep = true;
        for (const Cand& o : out) {
            if (from_c(o.id) < c.d) {
                keep = false;
                break;
            }
        }
        if (keep)
            out.push_back(c);
    }
}

/// Exact k nearest among `slots` (ties: smaller caller id first) into `top`.
template <class Dist>
void brute_force(const Graph& g, const Dist& dist, const slot_t* slots, std::size_t n,
                 TopK<float>& top) {
    const Prefetch pf(dist.code_bytes());
    for (std::size_t i = 0; i < std::min(n, pf.ahead); ++i)
        pf(dist, slots[i]);
    for (std::size_t i = 0; i < n; ++i) {
        if (i + pf.ahead < n)
            pf(dist, slots[i + pf.ahead]);
        const float d = dist(slots[i]);
        if (d <= top.worst())
            top.push(d, g.label(slots[i]));
    }
}

} // namespace pysim::hnsw
