// Search and sealing of the "rabitq" block layout (block_codes.hpp explains the layout and
// the estimator).
//
// Search (after SymphonyQG's walk): the upper levels are descended greedily with exact
// distances (the vectors sit at the start of every record). At level 0 the beam is a sorted
// array of at most ef candidates ordered by *estimated* distance. Expanding a vertex reads its
// record once: its exact distance (the vector) goes to the top-k results if the vertex is
// admissible, and one FastScan call over the codes in the same record estimates all its
// neighbours; an unvisited neighbour enters the beam when its estimate beats the beam's worst.
// The walk ends when every beam entry has been expanded. So the results hold exact distances
// of expanded vertices only, there is no re-rank pass, and a neighbour whose estimate never
// makes the beam is never read at all. While a record is being expanded, the next beam entry's
// record is prefetched (a guess: the expansion may insert a better one).
//
// Filters and tombstones only decide what enters the results; every vertex still routes.
// A vertex whose block is not sealed (its list changed since: an add in progress, or a load
// not sealed yet) scores its neighbours exactly, so results never depend on the seal state.
//
// Sealing runs under the exclusive lock after an add (and after a load): it recomputes the
// blocks of vertices whose lists changed and of vertices linking to points whose vectors were
// replaced in place. The neighbours' rotated vectors are computed once each (the rotation is
// linear, so o = P(u - mu) - P(v - mu)), then the blocks are written in parallel. The centre mu
// is the mean of the stored vectors, recomputed whenever every block is rewritten anyway (the
// first add, after a renumbering or a load); any centre gives valid codes, a central one the
// smallest error.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "common/topk.hpp"
#include "hnsw/hnsw.hpp"
#include "hnsw/search.hpp"
#include "simd/dispatch.hpp"

namespace pysim::hnsw {
namespace {

/// The beam: candidates sorted by estimated distance, at most `cap`, with "not expanded" flags.
class Beam {
  public:
    Beam(std::vector<Cand>& c, std::vector<std::uint8_t>& open, std::size_t cap)
        : c_(c), open_(open), cap_(cap) {
        if (c_.size() < cap + 1)
            c_.resize(cap + 1);
        if (open_.size() < cap + 1)
            open_.resize(cap + 1);
    }
    bool full() const noexcept { return n_ == cap_; }
    float worst() const noexcept {
        return n_ == cap_ ? c_[n_ - 1].d : std::numeric_limits<float>::infinity();
    }
    void insert(float d, slot_t id) noexcept {
        if (n_ == cap_ && !(d < c_[n_ - 1].d))
            return;
        std::size_t lo = 0, hi = n_;
        while (lo < hi) {
            const std::size_t mid = (lo + hi) / 2;
            if (c_[mid].d <= d) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        const std::size_t keep = n_ == cap_ ? n_ - 1 : n_;
        std::memmove(&c_[lo + 1], &c_[lo], (keep - lo) * sizeof(Cand));
        std::memmove(&open_[lo + 1], &open_[lo], keep - lo);
        c_[lo] = {d, id};
        open_[lo] = 1;
        n_ = keep + 1;
        if (lo < cursor_)
            cursor_ = lo;
    }
    /// The nearest entry not expanded yet (marked expanded now), or kNoSlot.
    slot_t pop() noexcept {
        while (cursor_ < n_ && !open_[cursor_])
            ++cursor_;
        if (cursor_ == n_)
            return kNoSlot;
        open_[cursor_] = 0;
        return c_[cursor_].id;
    }
    /// The entry pop() would return next if nothing is inserted (kNoSlot if none).
    slot_t peek() const noexcept {
        std::size_t i = cursor_;
        while (i < n_ && !open_[i])
            ++i;
        return i < n_ ? c_[i].id : kNoSlot;
    }

  private:
    std::vector<Cand>& c_;
    std::vector<std::uint8_t>& open_;
    std::size_t cap_, n_ = 0, cursor_ = 0;
};

std::uint32_t seal_of(const unsigned char* block) noexcept {
    return load_word(reinterpret_cast<const std::uint32_t*>(block + BlockLayout::kSealOff),
                     std::memory_order_acquire);
}

} // namespace

template <Space S>
void HnswIndex::search_blocks(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                              std::size_t threads, const std::vector<std::uint64_t>* bits,
                              float* dist, index_t* ids) const {
    const simd::KernelTable& table = simd::active(); // once per call
    const simd::FastScanFn scan = simd::quant_for(table).fastscan32.fn;
    const std::size_t dim = opt_.dim;
    const bool tombstones = tombstones_ > 0;
    const std::uint64_t entry = entry_.load(std::memory_order_acquire);
    const float* mu = block_mu_.empty() ? nullptr : block_mu_.data();
    const BlockLayout& lay = layout_;
    const std::size_t pairs = lay.pairs(), batch_bytes = pairs * 32;
    const std::size_t lines = std::min<std::size_t>(graph_.stride() / 64, 160);
    const auto work = [&](std::size_t begin, std::size_t end) {
        ScratchPool::Lease lease = scratch_.lease();
        Scratch& sc = *lease;
        if (sc.query.size() < dim)
            sc.query.resize(dim);
        if (sc.sums.size() < lay.batches() * 32)
            sc.sums.resize(lay.batches() * 32);
        if (sc.dists.size() < graph_.M0() + 1)
            sc.dists.resize(graph_.M0() + 1);
        TopK<float> top(k);
        for (std::size_t q = begin; q < end; ++q) {
            const float* prepared = store_.prepare_query(queries + q * dim, sc.query.data());
            const auto d = store_.distance<S>(prepared, table, graph_.code(0), graph_.stride());
            top.reset();
            if (entry != 0) {
                prepare_block_query(lay, prepared, mu, sc.block);
                const BlockQuery& bq = sc.block;
                const float k1 = 2.0f * bq.delta;
                const auto ep = static_cast<slot_t>(entry & 0xFFFFFFFFu);
                Cand cur{d(ep), ep};
                cur = greedy_descent(graph_, d, cur, int(entry >> 32) - 1, 0);
                level0_seeds(graph_, d, cur, sc.seeds);
                sc.visited.begin(graph_.size());
                Beam beam(sc.pool, sc.pool_open, ef);
                for (const Cand& s : sc.seeds) {
                    if (!sc.visited.test_and_set(s.id))
                        beam.insert(s.d, s.id);
                }
                float* est = sc.dists.data();
                for (slot_t v = beam.pop(); v != kNoSlot; v = beam.pop()) {
                    const slot_t next = beam.peek();
                    if (next != kNoSlot) {
                        const unsigned char* r = graph_.code(next);
                        for (std::size_t i = 0; i < lines; ++i)
                            prefetch(r + 64 * i);
                    }
                    const float dv = d(v);
                    const bool ok = bits != nullptr ? BitAccept{bits->data()}(v)
                                                    : (!tombstones || graph_.is_live(v));
                    if (ok && dv <= top.worst())
                        top.push(dv, graph_.label(v));
                    const std::uint32_t* lst = graph_.header(v);
                    const std::size_t c = graph_.count(lst, 0);
                    const unsigned char* block = graph_.extra(v);
                    if (c > 0 && seal_of(block) == c + 1) {
                        const auto* A = reinterpret_cast<const float*>(block + lay.a_off());
                        const auto* B = reinterpret_cast<const float*>(block + lay.b_off());
                        const unsigned char* codes = block + lay.codes_off();
                        std::uint32_t* S_ = sc.sums.data();
                        for (std::size_t b = 0; 32 * b < c; ++b)
                            scan(codes + b * batch_bytes, bq.lut.data(), pairs, S_ + 32 * b);
                        for (std::size_t j = 0; j < c; ++j)
                            est[j] = dv + A[j] + B[j] * (k1 * float(S_[j]) + bq.k0);

                    } else {
                        for (std::size_t j = 0; j < c; ++j)
                            est[j] = d(load_word(lst + 1 + j));
                    }
                    for (std::size_t j = 0; j < c; ++j) {
                        const slot_t u = load_word(lst + 1 + j);
                        if (!(est[j] < beam.worst()) || sc.visited.test_and_set(u))
                            continue;
                        beam.insert(est[j], u);
                    }
                }
            }
            float* out_d = dist + q * k;
            top.extract_sorted(out_d, ids + q * k, k);
            finish_distances(out_d, k);
        }
    };
    parallel_for(m, threads, balanced_grain(m, threads, 4, 64), work);
}

template void HnswIndex::search_blocks<Space::l2>(const float*, std::size_t, std::size_t,
                                                  std::size_t, std::size_t,
                                                  const std::vector<std::uint64_t>*, float*,
                                                  index_t*) const;
template void HnswIndex::search_blocks<Space::ip>(const float*, std::size_t, std::size_t,
                                                  std::size_t, std::size_t,
                                                  const std::vector<std::uint64_t>*, float*,
                                                  index_t*) const;

void HnswIndex::seal_after_add(const std::vector<Job>& jobs, std::size_t threads) {
    if (!opt_.blocks)
        return;
    std::vector<slot_t> changed;
    for (const Job& j : jobs) {
        if (j.kind == Kind::relink)
            changed.push_back(j.slot);
    }
    ExclusiveLock lock(*this);
    seal_locked(changed, threads);
}

void HnswIndex::seal_blocks(std::size_t threads) {
    require(threads >= 1, "threads must be >= 1");
    if (!opt_.blocks)
        return;
    ExclusiveLock lock(*this);
    seal_locked({}, threads);
}

void HnswIndex::seal_locked(const std::vector<slot_t>& changed, std::size_t threads) {
    const std::size_t n = graph_.size();
    const std::size_t dim = opt_.dim, D = layout_.padded();
    if (n == 0)
        return;
    std::vector<std::uint8_t> moved(n, 0);
    for (const slot_t s : changed) {
        if (s < n)
            moved[s] = 1;
    }
    // Dirty: a list rewritten since its block was (seal word 0), or a neighbour moved.
    std::vector<slot_t> dirty;
    std::size_t inserted = 0;
    for (slot_t s = 0; s < n; ++s) {
        if (graph_.status(s) == Status::free)
            continue;
        ++inserted;
        const std::uint32_t* lst = graph_.header(s);
        const std::size_t c = graph_.count(lst, 0);
        bool stale = seal_of(graph_.extra(s)) != c + 1;
        for (std::size_t j = 0; j < c && !stale && !changed.empty(); ++j)
            stale = moved[load_word(lst + 1 + j)] != 0;
        if (stale)
            dirty.push_back(s);
    }
    if (dirty.empty())
        return;
    const bool recentre = block_mu_.empty() || dirty.size() == inserted;
    if (recentre && dirty.size() != inserted) {
        dirty.clear(); // a new centre invalidates every block
        for (slot_t s = 0; s < n; ++s) {
            if (graph_.status(s) != Status::free)
                dirty.push_back(s);
        }
    }
    if (recentre) {
        std::vector<double> sum(dim, 0.0);
        for (slot_t s = 0; s < n; ++s) {
            if (graph_.status(s) == Status::free)
                continue;
            const auto* x = reinterpret_cast<const float*>(graph_.code(s));
            for (std::size_t i = 0; i < dim; ++i)
                sum[i] += x[i];
        }
        block_mu_.assign(dim, 0.0f);
        for (std::size_t i = 0; i < dim; ++i)
            block_mu_[i] = static_cast<float>(sum[i] / double(dirty.size()));
        block_pmu_.assign(D, 0.0f);
        layout_.rotate(block_mu_.data(), nullptr, block_pmu_.data());
    }
    // Rotated vectors of the dirty vertices and of everything they link to, once each.
    std::vector<std::uint32_t> row(n, 0xFFFFFFFFu);
    std::vector<slot_t> need;
    const auto want = [&](slot_t s) {
        if (row[s] == 0xFFFFFFFFu) {
            row[s] = static_cast<std::uint32_t>(need.size());
            need.push_back(s);
        }
    };
    for (const slot_t s : dirty) {
        want(s);
        const std::uint32_t* lst = graph_.header(s);
        const std::size_t c = graph_.count(lst, 0);
        for (std::size_t j = 0; j < c; ++j)
            want(load_word(lst + 1 + j));
    }
    std::vector<float> rot(need.size() * D);
    const float* mu = block_mu_.data();
    parallel_for(need.size(), threads, 256, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) {
            layout_.rotate(reinterpret_cast<const float*>(graph_.code(need[i])), mu, &rot[i * D]);
        }
    });
    const bool ip = store_.space() == Space::ip;
    parallel_for(dirty.size(), threads, 64, [&](std::size_t b, std::size_t e) {
        std::vector<const float*> nb(graph_.M0());
        for (std::size_t i = b; i < e; ++i) {
            const slot_t s = dirty[i];
            const std::uint32_t* lst = graph_.header(s);
            const std::size_t c = graph_.count(lst, 0);
            for (std::size_t j = 0; j < c; ++j)
                nb[j] = &rot[std::size_t(row[load_word(lst + 1 + j)]) * D];
            unsigned char* block = graph_.extra(s);
            encode_block(layout_, ip, &rot[std::size_t(row[s]) * D], nb.data(), c,
                         block_pmu_.data(), block);
            store_word(reinterpret_cast<std::uint32_t*>(block + BlockLayout::kSealOff),
                       static_cast<std::uint32_t>(c + 1), std::memory_order_release);
        }
    });
}

} // namespace pysim::hnsw
