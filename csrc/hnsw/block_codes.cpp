// The rotation, the per-query FastScan tables and the per-edge RaBitQ codes of the "rabitq"
// block layout (the formulas are in block_codes.hpp).
//
// Baseline code: these loops run once per query (rotation + tables, O(D log D)) or once per
// edge while sealing, not per hop, and the compiler vectorises the butterflies and the table
// sums at the baseline width; the per-hop work is the FastScan kernel of the dispatch table.
#include "hnsw/block_codes.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pysim::hnsw {
namespace {

constexpr std::size_t kPadTo = 64;

std::uint64_t splitmix(std::uint64_t& state) noexcept {
    state += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

} // namespace

BlockLayout::BlockLayout(std::size_t dim, std::size_t m0, std::uint64_t seed)
    : dim_(dim), padded_((dim + kPadTo - 1) / kPadTo * kPadTo), m0_(m0), batches_((m0 + 31) / 32) {
    codes_off_ = 16 + 12 * batches_ * 32;
    window_ = 1;
    while (2 * window_ <= padded_)
        window_ *= 2;
    // A power-of-two D mixes fully in each round (3 rounds, as RaBitQ's Hadamard rotation);
    // otherwise the two windows overlap and alternate (4 rounds).
    const std::size_t rounds = window_ == padded_ ? 3 : 4;
    std::uint64_t state = seed ^ 0x5ab1e0c0de5eedull;
    signs_.assign(rounds, std::vector<float>(padded_));
    for (auto& s : signs_) {
        for (std::size_t i = 0; i < padded_; i += 64) {
            const std::uint64_t bits = splitmix(state);
            for (std::size_t j = 0; j < 64 && i + j < padded_; ++j)
                s[i + j] = (bits >> j) & 1u ? -1.0f : 1.0f;
        }
    }
}

void BlockLayout::fwht(float* x, std::size_t n) const noexcept {
    for (std::size_t h = 1; h < n; h *= 2) {
        for (std::size_t i = 0; i < n; i += 2 * h) {
            float* a = x + i;
            float* b = x + i + h;
            for (std::size_t j = 0; j < h; ++j) {
                const float u = a[j], v = b[j];
                a[j] = u + v;
                b[j] = u - v;
            }
        }
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(n));
    for (std::size_t i = 0; i < n; ++i)
        x[i] *= scale;
}

void BlockLayout::rotate(const float* x, const float* mu, float* out) const noexcept {
    for (std::size_t i = 0; i < dim_; ++i)
        out[i] = mu ? x[i] - mu[i] : x[i];
    std::fill(out + dim_, out + padded_, 0.0f);
    for (std::size_t r = 0; r < signs_.size(); ++r) {
        const float* s = signs_[r].data();
        for (std::size_t i = 0; i < padded_; ++i)
            out[i] *= s[i];
        fwht(r % 2 == 0 ? out : out + (padded_ - window_), window_);
    }
}

void prepare_block_query(const BlockLayout& lay, const float* q, const float* mu, BlockQuery& out) {
    const std::size_t D = lay.padded(), groups = D / 4;
    out.rotated.resize(D);
    out.lut.resize(lay.pairs() * 64);
    lay.rotate(q, mu, out.rotated.data());
    const float* r = out.rotated.data();
    // Tables in float first (16 sums per group of 4), then one step for all groups.
    float tables[16];
    float lower = 0.0f, width = 0.0f, sum = 0.0f, norm2 = 0.0f;
    for (std::size_t g = 0; g < groups; ++g) {
        float lo = 0.0f, hi = 0.0f;
        for (std::size_t i = 0; i < 4; ++i) {
            const float v = r[4 * g + i];
            (v < 0 ? lo : hi) += v;
            sum += v;
            norm2 += v * v;
        }
        lower += lo;
        width = std::max(width, hi - lo);
    }
    const float delta = width > 0.0f ? width / 255.0f : 1.0f;
    const float inv = 1.0f / delta;
    for (std::size_t g = 0; g < groups; ++g) {
        const float* v = r + 4 * g;
        float lo = 0.0f;
        for (std::size_t i = 0; i < 4; ++i)
            lo += std::min(v[i], 0.0f);
        tables[0] = 0.0f;
        for (std::size_t b = 1; b < 16; ++b) {
            const std::size_t low = b & (b - 1); // b without its lowest set bit
            std::size_t bit = 0;
            while (((b >> bit) & 1u) == 0)
                ++bit;
            tables[b] = tables[low] + v[bit];
        }
        std::uint8_t* dst = out.lut.data() + 64 * (g / 2) + 32 * (g % 2);
        for (std::size_t b = 0; b < 16; ++b) {
            const float t = std::nearbyint((tables[b] - lo) * inv);
            const auto code = static_cast<std::uint8_t>(std::min(255.0f, std::max(0.0f, t)));
            dst[b] = code;
            dst[b + 16] = code;
        }
    }
    out.delta = delta;
    out.k0 = 2.0f * lower - sum;
    out.norm = std::sqrt(norm2);
    // Each of the D / 4 lookups rounds by at most delta / 2 (about delta / sqrt(12) on
    // average); for 2 <x, q'> three standard deviations of the sum: 2 * 3 * delta * sqrt(D/48).
    out.lut_err = 6.0f * delta * std::sqrt(static_cast<float>(D) / 48.0f);
}

void encode_block(const BlockLayout& lay, bool ip, const float* self, const float* const* nb,
                  std::size_t c, const float* pmu, unsigned char* block) noexcept {
    const std::size_t D = lay.padded(), n_slots = lay.batches() * 32, pairs = lay.pairs();
    auto* A = reinterpret_cast<float*>(block + lay.a_off());
    auto* B = reinterpret_cast<float*>(block + lay.b_off());
    auto* E = reinterpret_cast<float*>(block + lay.e_off());
    unsigned char* codes = block + lay.codes_off();
    std::memset(codes, 0, lay.batches() * pairs * 32);
    const float sqrt_d = std::sqrt(static_cast<float>(D));
    for (std::size_t j = 0; j < n_slots; ++j) {
        A[j] = B[j] = E[j] = 0.0f;
        if (j >= c)
            continue;
        const float* u = nb[j];
        double n2 = 0.0, s = 0.0, cross = 0.0;
        unsigned char* dst = codes + (j / 32) * pairs * 32 + (j % 32);
        for (std::size_t g = 0; g < D / 4; ++g) {
            unsigned nibble = 0;
            for (std::size_t i = 0; i < 4; ++i) {
                const std::size_t k = 4 * g + i;
                const double o = double(u[k]) - double(self[k]);
                n2 += o * o;
                s += std::fabs(o);
                cross += (ip ? double(pmu[k]) : double(self[k])) * o;
                nibble |= (o > 0.0 ? 1u : 0u) << i;
            }
            dst[(g / 2) * 32] |= static_cast<unsigned char>(nibble << (4 * (g % 2)));
        }
        if (s <= 0.0)
            continue; // a duplicate of the vertex: est = d(v), exactly
        const double norm = std::sqrt(n2);
        const double cos = std::min(1.0, s / (double(sqrt_d) * norm));
        const double spread = std::sqrt(std::max(0.0, 1.0 - cos * cos) /
                                        (cos * cos * double(std::max<std::size_t>(D - 1, 1))));
        const double mult = ip ? 1.0 : 2.0;
        A[j] = static_cast<float>(ip ? -cross : n2 + 2.0 * cross);
        B[j] = static_cast<float>(-mult * n2 / s);
        E[j] = static_cast<float>(mult * norm * spread);
    }
}

} // namespace pysim::hnsw
