// The quantised side of HnswIndex: storing rows as records, the search with re-ranking, and
// re-fitting the ranges.
//
// Search (after glass and ScaNN): walk the graph over the compressed records with the cheapest
// form the codes allow (quant::visit picks it: int8 x int8 VNNI dot products for sq codes),
// keep the usual ef-wide beam, then re-score the best candidates - exactly against the float32
// copy when one is kept (the first rerank_pool(k) of the beam: max(refine, k), or by default 2k
// for sq8 and the whole beam for sq4), or with the decoded vectors
// (the asymmetric kernel, exact for what is stored) across the whole beam when it is not - and
// return the k best of the re-scored ones. Returned distances are therefore always exact for
// the stored vectors: float32 rows with refine > 0, decoded records with refine = 0.
//
// Brute-force answers (selective filters, tombstone-heavy indexes, exact_search) score the
// admissible points with the same exact form directly, so they stay exact.
#include <algorithm>
#include <cstring>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "common/topk.hpp"
#include "hnsw/hnsw.hpp"
#include "hnsw/quant_distance.hpp"
#include "hnsw/search.hpp"
#include "simd/dispatch.hpp"

namespace pysim::hnsw {
namespace {

/// Distance functor to float32 rows of the copy, from the query's exact form.
template <Space S>
FloatDistance<S> exact_distance(const quant::Query& q, const quant::QuantStore& st) {
    return {q.exact, q.exact_fn, q.dim, reinterpret_cast<const unsigned char*>(st.full_row(0)),
            q.dim * sizeof(float)};
}

} // namespace

void HnswIndex::store_row(slot_t s, const float* row, float* scratch) noexcept {
    if (qstore_) {
        qstore_->put(s, row, scratch);
    } else {
        store_.encode(row, graph_.code(s));
    }
}

bool HnswIndex::same_row(slot_t s, const float* row, float* scratch,
                         std::uint8_t* record) const noexcept {
    if (!qstore_) {
        store_.encode(row, record);
        return std::memcmp(record, graph_.code(s), store_.code_bytes()) == 0;
    }
    qstore_->encode(row, record, scratch);
    if (qstore_->keeps_full())
        return std::memcmp(scratch, qstore_->full_row(s), opt_.dim * sizeof(float)) == 0;
    return std::memcmp(record, qstore_->record(s), qstore_->quantizer().code_bytes()) == 0;
}

void HnswIndex::refit(std::size_t threads) {
    require(threads >= 1, "threads must be >= 1");
    if (!qstore_)
        return;
    std::lock_guard<std::mutex> one_writer(writer_);
    ExclusiveLock lock(*this);
    qstore_->refit(nullptr, 0, threads);
}

std::size_t HnswIndex::rerank_pool(std::size_t k) const noexcept {
    if (opt_.refine != kAutoRefine)
        return std::max(opt_.refine, k);
    // Measured (tests/test_hnsw_quant.py data, README table): sq8 order within the beam is
    // good enough that 2k re-ranked reach float32's recall; 4-bit codes blur it so much that
    // only the whole beam does (2k: 0.94 / 0.53 on Gaussian / clustered data, the beam: 0.98 /
    // 0.88).
    return opt_.kind == quant::Kind::sq4 ? ~std::size_t{0} : 2 * k;
}

quant::DriftStats HnswIndex::drift() const {
    SharedLock lock(*this);
    return qstore_ && qstore_->quantizer().scalar() ? qstore_->drift() : quant::DriftStats{};
}

template <Space S>
void HnswIndex::search_quant(const float* queries, std::size_t m, std::size_t k, std::size_t ef,
                             std::size_t threads, const std::vector<std::uint64_t>* bits,
                             const std::vector<slot_t>* scan, float* dist, index_t* ids) const {
    const simd::KernelTable& table = simd::active(); // once per call
    const quant::QuantStore& st = *qstore_;
    const std::size_t dim = opt_.dim;
    const bool full = st.keeps_full();
    const bool tombstones = tombstones_ > 0;
    const std::uint64_t entry = entry_.load(std::memory_order_acquire);
    const auto work = [&](std::size_t begin, std::size_t end) {
        ScratchPool::Lease lease = scratch_.lease();
        Scratch& sc = *lease;
        quant::Query& qq = sc.quant;
        std::vector<Cand>& beam = sc.work;
        TopK<float> top(k);
        for (std::size_t q = begin; q < end; ++q) {
            st.prepare(queries + q * dim, table, qq);
            float* out_d = dist + q * k;
            index_t* out_i = ids + q * k;
            top.reset();
            if (scan != nullptr) {
                if (full) {
                    brute_force(graph_, exact_distance<S>(qq, st), scan->data(), scan->size(), top);
                } else if (qq.decoded_affine) {
                    brute_force(graph_, code_distance(qq.decoded, st), scan->data(), scan->size(),
                                top);
                } else {
                    brute_force(graph_, code_distance(qq.plain_decoded(), st), scan->data(),
                                scan->size(), top);
                }
            } else if (entry != 0) {
                quant::visit(qq, [&](const auto& f) {
                    const auto d = code_distance(f, st);
                    query_beam(graph_, d, entry, ef, bits ? bits->data() : nullptr, tombstones, sc);
                });
                sorted_results(sc, beam);
                const auto rerank = [&](const auto& d, std::size_t r) {
                    // Rows of the float32 copy are random reads: prefetch a few ahead.
                    const Prefetch pf(d.code_bytes());
                    for (std::size_t i = 0; i < std::min(r, pf.ahead); ++i)
                        pf(d, beam[i].id);
                    for (std::size_t i = 0; i < r; ++i) {
                        if (i + pf.ahead < r)
                            pf(d, beam[i + pf.ahead].id);
                        top.push(d(beam[i].id), graph_.label(beam[i].id));
                    }
                };
                if (full) {
                    rerank(exact_distance<S>(qq, st), std::min(beam.size(), rerank_pool(k)));
                } else if (qq.decoded_affine) {
                    rerank(code_distance(qq.decoded, st), beam.size());
                } else {
                    rerank(code_distance(qq.plain_decoded(), st), beam.size());
                }
            }
            top.extract_sorted(out_d, out_i, k);
            finish_distances(out_d, k);
        }
    };
    parallel_for(m, threads, balanced_grain(m, threads, 4, 64), work);
}

template void HnswIndex::search_quant<Space::l2>(const float*, std::size_t, std::size_t,
                                                 std::size_t, std::size_t,
                                                 const std::vector<std::uint64_t>*,
                                                 const std::vector<slot_t>*, float*,
                                                 index_t*) const;
template void HnswIndex::search_quant<Space::ip>(const float*, std::size_t, std::size_t,
                                                 std::size_t, std::size_t,
                                                 const std::vector<std::uint64_t>*,
                                                 const std::vector<slot_t>*, float*,
                                                 index_t*) const;

} // namespace pysim::hnsw
