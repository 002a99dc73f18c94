// Neighbour codes co-located with each vertex: the "rabitq" block layout of HnswIndex.
//
// Why (after NGT-QG and SymphonyQG): a graph search step reads the expanded vertex and then
// computes distances to its neighbours, each a random jump in memory. Here every level-0
// record holds, next to the vertex's own float32 vector and its links, 1-bit RaBitQ codes of
// all its neighbours' offsets from it, packed in FastScan batches of 32:
//
//     [ float32 vector ][ block: seal word | A, B, E (M0p floats each) | codes ][ header | links ]
//
// so one hop reads one contiguous record: the vertex's exact distance (its vector) and
// estimates for all its neighbours (one FastScan call over the codes, tables in registers).
// Neighbours enter the beam by their estimates; only vertices that are expanded pay an exact
// distance, which is what the results hold - there is no separate re-rank pass.
//
// Codes (Gao & Long, "RaBitQ", SIGMOD 2024). Vectors live in a rotated, zero-padded space of
// D = round_up(dim, 64) dimensions: x' = P (x - mu), P a fixed random orthogonal transform
// (random signs + fast Walsh-Hadamard transforms on two overlapping power-of-two windows, a
// Kac-style walk; O(D log D) per vector instead of a dense D x D product) and mu the data
// mean. For an edge v -> u the residual o = u' - v' is stored as its sign bits x (D bits) and
// three floats. With q' = P (q - mu), the identity
//     |q - u|^2 = |q - v|^2 + |o|^2 + 2 <v', o> - 2 <q', o>          (l2)
//     1 - q.u   = (1 - q.v) - <P mu, o> - <q', o>                      (ip, cosine)
// needs only <q', o>, estimated by RaBitQ as |o|^2 / s * (2 <x, q'> - sum q') with
// s = sum |o_i|, and <x, q'> = sum over 4-dimension groups of a 16-entry table lookup: the
// FastScan kernel, with the tables built once per query (quantised to 8 bits: <x, q'> ~=
// delta * S + lower). So est(u) = d(v) + A + B * (2 (delta S + lower) - sum q') with
//     A = |o|^2 + 2 <v', o>  (l2)   or  -<P mu, o>  (ip),     B = -2 |o|^2 / s  or  -|o|^2 / s,
// and RaBitQ's bound |error| <= E * |q'| * eps0 with E = 2 |o| sqrt((1 - c^2) / (c^2 (D - 1)))
// (half that for ip), c = s / (sqrt(D) |o|), eps0 = 1.9 (the paper's confidence).
//
// Sealing. A block is valid only for the list it was computed from: its seal word holds
// 1 + the list's count, and Graph zeroes it whenever the level-0 list is rewritten, so a
// search that meets an unsealed vertex (a list changed by an add still running) scores its
// neighbours exactly instead. HnswIndex seals dirty vertices after every add (block_search.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pysim::hnsw {

/// Geometry of a block for (dim, M0) and the fixed rotation of the index.
class BlockLayout {
  public:
    BlockLayout() = default;
    BlockLayout(std::size_t dim, std::size_t m0, std::uint64_t seed);

    std::size_t dim() const noexcept { return dim_; }
    std::size_t padded() const noexcept { return padded_; } // D
    std::size_t m0() const noexcept { return m0_; }
    std::size_t batches() const noexcept { return batches_; }  // of 32 neighbours
    std::size_t pairs() const noexcept { return padded_ / 8; } // code blocks per batch
    std::size_t bytes() const noexcept { return codes_off_ + batches_ * pairs() * 32; }

    // Offsets inside a block.
    static constexpr std::size_t kSealOff = 0;
    std::size_t a_off() const noexcept { return 16; }
    std::size_t b_off() const noexcept { return 16 + 4 * batches_ * 32; }
    std::size_t e_off() const noexcept { return 16 + 8 * batches_ * 32; }
    std::size_t codes_off() const noexcept { return codes_off_; }

    /// out (D floats) = P (x - mu), x dim floats (mu may be nullptr: no centring).
    void rotate(const float* x, const float* mu, float* out) const noexcept;

  private:
    void fwht(float* x, std::size_t n) const noexcept;

    std::size_t dim_ = 0, padded_ = 0, m0_ = 0, batches_ = 0, codes_off_ = 0;
    std::size_t window_ = 0;                // power-of-two length of the Hadamard windows
    std::vector<std::vector<float>> signs_; // one +-1 vector (D) per round
};

/// A query prepared for FastScan: the rotated query, its tables and the scalars of est().
struct BlockQuery {
    std::vector<float> rotated;    // q' (D)
    std::vector<std::uint8_t> lut; // pairs * 64 bytes, the kernel's layout
    float delta = 0.0f;            // table step
    float k0 = 0.0f;               // 2 * lower - sum q'
    float norm = 0.0f;             // |q'|
    float lut_err = 0.0f;          // bound on the table rounding error of 2 <x, q'>
};

/// Prepares q (dim floats, in stored form: normalised for cosine) against mean mu.
void prepare_block_query(const BlockLayout& lay, const float* q, const float* mu, BlockQuery& out);

/// Writes the block of a vertex: `self` its rotated vector, nb[j] the rotated vectors of its c
/// neighbours (in list order), `pmu` = P mu (ip only; nullptr for l2), `ip` the space. Leaves
/// the seal word alone (the caller publishes it last).
void encode_block(const BlockLayout& lay, bool ip, const float* self, const float* const* nb,
                  std::size_t c, const float* pmu, unsigned char* block) noexcept;

} // namespace pysim::hnsw
