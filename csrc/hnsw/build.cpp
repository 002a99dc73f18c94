// Linking rows into the graph (the second step of HnswIndex::add), run under the shared lock.
//
// insert (Malkov & Yashunin, Algorithm 1): greedy descent from the entry point to the node's
// level, then at each level from there down to 0 a beam search with ef_construction, the
// diversity heuristic picks M neighbours, and links are made in both directions. A neighbour
// whose list is full re-runs the heuristic over its old neighbours plus the new node (M0 = 2M
// at level 0, M above). A node whose level exceeds the current top holds entry_mutex_ for its
// whole insertion, as in hnswlib, and becomes the entry point at the end.
//
// relink (a removed point's slot reused, or an existing id given a new vector): the node's old
// neighbours first re-select their lists from their own neighbours plus the node's other old
// neighbours, which closes the hole the node leaves (the usual deletion repair); then the node
// is inserted again from scratch at its new position.
//
// Concurrency: a node's list is written only under its striped mutex, and a thread never holds
// two node mutexes at once, so striping cannot deadlock. Searches read lists without locks
// (hnswlib locks every list it reads while building), which has two consequences handled here:
//   * a node's own list is *merged* with, never overwritten over, links that other threads
//     added meanwhile (they may reach a node on a level above before it is linked below);
//   * two nodes inserted at the same time cannot see each other through links, so each
//     insertion also offers the other nodes in flight as neighbour candidates. Without this,
//     a later node's pruning could cut a small group of such nodes off from the graph.
// With threads = 1 neither changes anything, so serial builds stay deterministic.
#include <algorithm>
#include <chrono>
#include <thread>
#include <type_traits>

#include "common/parallel.hpp"
#include "hnsw/hnsw.hpp"
#include "hnsw/quant_distance.hpp"
#include "hnsw/search.hpp"
#include "simd/dispatch.hpp"

namespace pysim::hnsw {
namespace {

struct SelfAccept {
    slot_t self;
    bool operator()(slot_t s) const noexcept { return s != self; }
};
struct LiveSelfAccept {
    const Graph* g;
    slot_t self;
    bool operator()(slot_t s) const noexcept { return s != self && g->is_live(s); }
};

} // namespace

// Publishes a node as in flight for the duration of its insertion. With more concurrent
// insertions than entries, the extra ones simply go unpublished (they still link correctly;
// only the mutual-visibility improvement is lost for them).
class HnswIndex::InflightGuard {
  public:
    InflightGuard(HnswIndex& ix, slot_t s) : ix_(ix) {
        for (std::size_t i = 0; i < kInflight; ++i) {
            slot_t expected = kNoSlot;
            if (ix_.inflight_[i].compare_exchange_strong(expected, s, std::memory_order_acq_rel)) {
                index_ = i;
                break;
            }
        }
    }
    ~InflightGuard() {
        if (index_ < kInflight)
            ix_.inflight_[index_].store(kNoSlot, std::memory_order_release);
    }
    InflightGuard(const InflightGuard&) = delete;
    InflightGuard& operator=(const InflightGuard&) = delete;

  private:
    HnswIndex& ix_;
    std::size_t index_ = kInflight;
};

// Whether construction finds its beam over the codes (then re-scores it in float32) rather
// than over float32 rows. Measured build CPU time against the float32 index: sq8 0.75-0.93x on
// MNIST (d = 784) and MiniLM (384), 1.01x on d = 128 clustered data; f16 / bf16 0.85-0.99x at
// d >= 384 but 1.10x at d = 128, where half floats are no cheaper to score than float32 (linking
// over float32 there: 1.05x). 4-bit codes rank clustered data too coarsely to choose links from.
bool HnswIndex::walk_codes_while_linking() const noexcept {
    switch (opt_.kind) {
    case quant::Kind::sq8:
        return true;
    case quant::Kind::f16:
    case quant::Kind::bf16:
        return opt_.dim >= 256;
    case quant::Kind::sq4:
        break;
    }
    return false;
}

void HnswIndex::link_jobs(const float* rows, const std::vector<Job>& jobs, std::size_t threads,
                          const Progress& progress, std::vector<std::uint8_t>& started) {
    const simd::KernelTable& table = simd::active(); // once per add
    const std::size_t n = jobs.size();
    std::atomic<std::size_t> done{0};
    const auto caller = std::this_thread::get_id();
    using clock = std::chrono::steady_clock;
    auto last_report = clock::now();

    // make_proto(scratch) gives the thread's construction functor (unbound: only rebind() is
    // used on it), from the store the index uses.
    const auto run = [&](const auto& make_proto) {
        const auto work = [&](std::size_t begin, std::size_t end) {
            ScratchPool::Lease lease = scratch_.lease();
            Scratch& sc = *lease;
            const auto proto = make_proto(sc);
            for (std::size_t i = begin; i < end; ++i) {
                started[i] = 1;
                switch (jobs[i].kind) {
                case Kind::insert:
                    insert(proto, jobs[i].slot, sc);
                    break;
                case Kind::relink:
                    relink(proto, jobs[i].slot, sc);
                    break;
                case Kind::keep:
                    break;
                }
            }
            const std::size_t now_done = done.fetch_add(end - begin) + (end - begin);
            if (progress && std::this_thread::get_id() == caller) {
                const auto now = clock::now();
                if (now - last_report > std::chrono::milliseconds(100)) {
                    last_report = now;
                    progress(now_done, n);
                }
            }
        };
        // Short chunks: Ctrl-C is polled between them and threads stay balanced.
        parallel_for(n, threads, threads > 1 ? 8 : 32, work);
    };
    const bool ip = store_.space() == Space::ip;
    // A quantised index without a float32 copy links a large batch (>= 1/8 of the slots, so
    // any build) over a transient float32 view - the batch's own rows, decoded records for the
    // other slots - which builds as fast as a float32 index and, for a build, the same graph;
    // a small batch uses decoded-vector distances and needs no transient memory.
    std::vector<float> view;
    if (qstore_ && !qstore_->keeps_full() && 8 * n >= graph_.size()) {
        const std::size_t dim = opt_.dim, slots = graph_.size();
        view.resize(slots * dim);
        std::vector<std::uint8_t> in_batch(slots, 0);
        for (const Job& j : jobs)
            in_batch[j.slot] = 1;
        parallel_for(slots, threads, 512, [&](std::size_t b, std::size_t e) {
            for (std::size_t s = b; s < e; ++s) {
                if (!in_batch[s])
                    qstore_->decode(s, &view[s * dim]);
            }
        });
        parallel_for(n, threads, 512, [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i) {
                store_.encode(rows + i * dim,
                              reinterpret_cast<unsigned char*>(&view[jobs[i].slot * dim]));
            }
        });
    }
    if (qstore_ && !qstore_->keeps_full() && view.empty()) {
        // Distances between decoded vectors (quant_distance.hpp).
        run([&](Scratch& sc) {
            return DecodedDistance{qstore_.get(), &table, sc.quant_stack.data(), 0};
        });
    } else {
        // float32 rows: the graph's own codes, a quantised index's float32 copy (so the graph
        // is the one a float32 index would build), or the transient view above.
        const unsigned char* base =
            !qstore_                ? graph_.code(0)
            : qstore_->keeps_full() ? reinterpret_cast<const unsigned char*>(qstore_->full_row(0))
                                    : reinterpret_cast<const unsigned char*>(view.data());
        const std::size_t stride = qstore_ ? opt_.dim * sizeof(float) : graph_.stride();
        if (ip) {
            run([&](Scratch&) { return store_.distance<Space::ip>(nullptr, table, base, stride); });
        } else {
            run([&](Scratch&) { return store_.distance<Space::l2>(nullptr, table, base, stride); });
        }
    }
    if (progress)
        progress(n, n);
}

template <class Dist> void HnswIndex::insert(const Dist& proto, slot_t s, Scratch& sc) {
    const int level = graph_.level(s);
    std::unique_lock<std::mutex> top_lock(entry_mutex_, std::defer_lock);
    std::uint64_t e = entry_.load(std::memory_order_acquire);
    if (e == 0 || level > Entry::level(e)) {
        top_lock.lock();
        e = entry_.load(std::memory_order_acquire);
        if (e == 0) {
            entry_.store(Entry::pack(s, level), std::memory_order_release);
            return;
        }
        if (level <= Entry::level(e))
            top_lock.unlock();
    }
    const auto ep = Entry::slot(e);
    const int top_level = Entry::level(e);
    const InflightGuard inflight(*this, s);
    const Dist dist = proto.rebind(s);
    const auto link_from_top = [&](const auto& walk) {
        Cand cur{walk(ep), ep};
        cur = greedy_descent(graph_, walk, cur, top_level, level);
        for (int l = std::min(level, top_level); l >= 0; --l) {
            cur = descend_and_link(dist, walk, s, l, cur, sc);
        }
    };
    if constexpr (std::is_same_v<Dist, FloatDistance<Space::l2>> ||
                  std::is_same_v<Dist, FloatDistance<Space::ip>>) {
        if (qstore_ && walk_codes_while_linking()) {
            // Walk the codes to find the candidates, link by the float32 distances.
            qstore_->quantizer().prepare_normalised(dist.query, simd::active(), sc.quant);
            quant::visit(sc.quant,
                         [&](const auto& f) { link_from_top(code_distance(f, *qstore_)); });
        } else {
            link_from_top(dist);
        }
    } else {
        link_from_top(dist);
    }
    if (top_lock.owns_lock())
        entry_.store(Entry::pack(s, level), std::memory_order_release);
}

template <class Dist, class Walk>
Cand HnswIndex::descend_and_link(const Dist& dist, const Walk& walk, slot_t s, int level, Cand ep,
                                 Scratch& sc) {
    // `walk` scores the beam search, `dist` everything that decides links. They are the same
    // functor except in a quantised index, whose beam is then re-scored with `dist`.
    constexpr bool kSame = std::is_same_v<Dist, Walk>;
    // The entry may be a node that another thread is still inserting: linked on the level
    // above, not yet on this one. Searching from it alone would find nothing but it, so its
    // neighbours on the level above (which exist on this level too) join as seeds.
    std::vector<Cand>& seeds = sc.seeds;
    seeds.assign(1, kSame ? ep : Cand{walk(ep.id), ep.id});
    if (level < graph_.level(ep.id) && graph_.count(graph_.list(ep.id, level), level) == 0) {
        const std::uint32_t* up = graph_.list(ep.id, level + 1);
        const std::size_t c = graph_.count(up, level + 1);
        for (std::size_t j = 0; j < c; ++j) {
            const slot_t v = load_word(up + 1 + j);
            seeds.push_back({walk(v), v});
        }
    }
    if (tombstones_ > 0) {
        search_layer<true>(graph_, walk, seeds.data(), seeds.size(), opt_.ef_construction, level,
                           sc, LiveSelfAccept{&graph_, s});
    } else {
        search_layer<true>(graph_, walk, seeds.data(), seeds.size(), opt_.ef_construction, level,
                           sc, SelfAccept{s});
    }
    std::vector<Cand>& found = sc.work;
    sorted_results(sc, found);
    if constexpr (!kSame) {
        // The whole beam is re-scored: keeping only its best 4 * M0 by code distance cost a
        // point of recall@10 on clustered data.
        for (Cand& c : found)
            c.d = dist(c.id);
        std::sort(found.begin(), found.end());
    }
    // Nodes inserted concurrently are not reachable yet: offer them as candidates when they
    // are as close as what the search kept.
    bool added = false;
    for (const auto& f : inflight_) {
        const slot_t v = f.load(std::memory_order_acquire);
        if (v == kNoSlot || v == s || graph_.level(v) < level)
            continue;
        if (std::any_of(found.begin(), found.end(), [v](const Cand& c) { return c.id == v; })) {
            continue;
        }
        const float d = dist(v);
        if (found.size() < opt_.ef_construction || d < found.back().d) {
            found.push_back({d, v});
            added = true;
        }
    }
    if (added)
        std::sort(found.begin(), found.end());
    if (found.empty())
        return ep;
    const Cand nearest = found.front();
    select_neighbors(graph_, dist, found, opt_.M, sc.chosen);
    connect(dist, s, level, sc.chosen, sc);
    return nearest;
}

template <class Dist>
void HnswIndex::connect(const Dist& dist, slot_t s, int level, const std::vector<Cand>& picked,
                        Scratch& sc) {
    const std::size_t cap = graph_.max_links(level);
    std::vector<slot_t>& ids = sc.ids;
    if (ids.size() < cap + 1)
        ids.resize(cap + 1);
    {
        // Merge, never overwrite: another thread may already have linked itself into this
        // list (it reached s through a higher level, where s was linked first, and started
        // its own search at this level from s). Dropping that link could leave the other node
        // unreachable.
        std::lock_guard<std::mutex> lock(graph_.lock(s));
        std::uint32_t* own = graph_.list(s, level);
        const std::size_t c = graph_.count(own, level);
        std::vector<Cand>& cands = sc.work;
        cands.assign(picked.begin(), picked.end());
        for (std::size_t j = 0; j < c; ++j) {
            const slot_t v = load_word(own + 1 + j);
            const bool known =
                std::any_of(picked.begin(), picked.end(), [v](const Cand& p) { return p.id == v; });
            if (!known && v != s)
                cands.push_back({dist(v), v});
        }
        const std::vector<Cand>* keep = &cands;
        if (cands.size() > cap) {
            std::sort(cands.begin(), cands.end());
            select_neighbors(graph_, dist, cands, cap, sc.picked);
            keep = &sc.picked;
        }
        for (std::size_t i = 0; i < keep->size(); ++i)
            ids[i] = (*keep)[i].id;
        graph_.write_list(own, ids.data(), keep->size());
    }
    for (const Cand& p : picked) {
        const slot_t nb = p.id;
        std::lock_guard<std::mutex> lock(graph_.lock(nb));
        std::uint32_t* lst = graph_.list(nb, level);
        const std::size_t c = graph_.count(lst, level);
        bool present = false;
        for (std::size_t j = 0; j < c && !present; ++j)
            present = load_word(lst + 1 + j) == s;
        if (present)
            continue;
        if (c < cap) {
            store_word(lst + 1 + c, s);
            graph_.set_count(lst, c + 1);
            continue;
        }
        // Full: the neighbour keeps the most diverse `cap` of its old links plus s.
        const Dist from_nb = dist.rebind(nb);
        std::vector<Cand>& cands = sc.work;
        cands.clear();
        cands.push_back({p.d, s});
        for (std::size_t j = 0; j < c; ++j) {
            const slot_t v = load_word(lst + 1 + j);
            cands.push_back({from_nb(v), v});
        }
        std::sort(cands.begin(), cands.end());
        select_neighbors(graph_, dist, cands, cap, sc.picked);
        for (std::size_t i = 0; i < sc.picked.size(); ++i)
            ids[i] = sc.picked[i].id;
        graph_.write_list(lst, ids.data(), sc.picked.size());
    }
}

template <class Dist> void HnswIndex::relink(const Dist& proto, slot_t s, Scratch& sc) {
    const int level = graph_.level(s);
    const std::uint64_t e = entry_.load(std::memory_order_acquire);
    const bool is_entry = e != 0 && Entry::slot(e) == s;
    std::vector<slot_t> old;
    for (int l = 0; l <= level; ++l) {
        const std::size_t cap = graph_.max_links(l);
        {
            std::lock_guard<std::mutex> lock(graph_.lock(s));
            const std::uint32_t* own = graph_.list(s, l);
            const std::size_t c = graph_.count(own, l);
            old.assign(own + 1, own + 1 + c);
        }
        for (const slot_t nb : old) {
            if (nb == s)
                continue;
            const Dist from_nb = proto.rebind(nb);
            std::lock_guard<std::mutex> lock(graph_.lock(nb));
            std::uint32_t* lst = graph_.list(nb, l);
            const std::size_t c = graph_.count(lst, l);
            std::vector<Cand>& cands = sc.work;
            cands.clear();
            sc.visited.begin(graph_.size());
            sc.visited.test_and_set(s);
            sc.visited.test_and_set(nb);
            const auto offer = [&](slot_t v) {
                // Candidates must reach level l (true of anything linked at l).
                if (!sc.visited.test_and_set(v))
                    cands.push_back({from_nb(v), v});
            };
            for (std::size_t j = 0; j < c; ++j)
                offer(load_word(lst + 1 + j));
            for (const slot_t v : old)
                offer(v);
            std::sort(cands.begin(), cands.end());
            select_neighbors(graph_, proto, cands, cap, sc.picked);
            if (sc.ids.size() < cap + 1)
                sc.ids.resize(cap + 1);
            for (std::size_t i = 0; i < sc.picked.size(); ++i)
                sc.ids[i] = sc.picked[i].id;
            graph_.write_list(lst, sc.ids.data(), sc.picked.size());
        }
        // Drop s's stale links (those of its old position) but keep links other threads added
        // meanwhile. The entry point keeps them: searches start there, so it must never be a
        // dead end; its re-insertion below re-selects them by distance instead.
        if (!is_entry) {
            std::lock_guard<std::mutex> lock(graph_.lock(s));
            std::uint32_t* own = graph_.list(s, l);
            const std::size_t c = graph_.count(own, l);
            std::size_t kept = 0;
            if (sc.ids.size() < cap + 1)
                sc.ids.resize(cap + 1);
            for (std::size_t j = 0; j < c; ++j) {
                const slot_t v = load_word(own + 1 + j);
                if (std::find(old.begin(), old.end(), v) == old.end())
                    sc.ids[kept++] = v;
            }
            graph_.write_list(own, sc.ids.data(), kept);
        }
    }
    insert(proto, s, sc);
}

} // namespace pysim::hnsw
