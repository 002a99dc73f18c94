// Quantizer: what one compressed vector ("record") is, how rows become records, and how a query
// is prepared so that a distance to a record is one kernel call plus an affine correction.
//
// Kinds. f16 / bf16 round every element (IEEE half: 11-bit significand, |x| <= 65504; bfloat16:
// 8-bit significand, float32's range). sq8 / sq4 are scalar quantisers with L = 256 / 16 levels
// and a range [lo_j, hi_j] per dimension, learned from data (min/max, or clipped quantiles so a
// few outliers do not waste levels): step_j = (hi_j - lo_j) / (L - 1),
//     code c_j = clamp(round((x_j - lo_j) / step_j), 0, L - 1),   decoded x^_j = lo_j + step_j c_j,
// so |x_j - x^_j| <= step_j / 2 = (hi_j - lo_j) / (2L - 2) for every x_j inside the range (plus
// float32 rounding of the decoded value); values outside are clipped to the nearest end and
// counted, which is how a store notices that the data drifted and its ranges need a re-fit.
//
// Spaces. Every metric reaches the core as l2 (squared Euclidean; euclidean takes a sqrt later,
// mahalanobis arrives as euclidean on mapped rows) or ip (1 - a.b; cosine is ip on rows and
// queries normalised to unit length first, done here so the ranges are learned on what is
// stored). Distances are always in those units, so a graph search is unaware of the codes.
//
// Two ways to score sq codes (Mode):
//   asymmetric: the query stays float32. l2: sum (a_j - s_j c_j)^2 with a = q - lo, s = step,
//     which is exactly ||q - x^||^2 up to float32 rounding; ip: sum (q_j s_j) c_j + sum q_j lo_j.
//   symmetric: the query is quantised too, per query, to int8 t_j = round(w_j / sigma) with one
//     scale sigma = max |w_j| / 127, where w_j = (q_j - m_j) s_j and m_j = lo_j + C s_j is the
//     middle of the range (C = (L - 1) / 2), and S = sum t_j c_j is one exact integer kernel
//     (vpdpbusd on VNNI). Since sum w_j (c_j - C) = sigma (S - C sum t) + sum d_j (c_j - C) with
//     |d_j| = |w_j - sigma t_j| <= sigma / 2:
//       l2: ||q - x^||^2 = ||q - m||^2 - 2 sigma (S - C sum t) + ||x^ - m||^2 + err,
//           ||x^ - m||^2 stored as a float after each code (the record's trailer);
//       ip: q.x^ = q.m + sigma (S - C sum t) + err/2 (w_j = q_j s_j; no trailer),
//     with |err| <= sigma sum_j |c_j - C| (l2) - a bound the tests check. Centring on m keeps
//     both the int8 rounding and the float cancellation at the scale of the ranges, not of
//     |x|^2. bf16 has a symmetric form for ip too: the query is rounded to bf16 and scored with
//     vdpbf16ps where the CPU has it.
// Measured (benchmarks/bench_quant_kernels.py; AMD EPYC with AVX-512 VNNI, one thread): the
// symmetric form scores 1.3-2.4x more codes per second (d = 384, codes in L2: u8_dot_i8 262 vs
// u8_l2sq 107 Mcodes/s; random ids into 100 MB at d = 784: 20 vs 27 ns per code) and ranks
// within 0-2 points of recall@10 of the asymmetric one on its own (brute-force top-10:
// clustered 0.933 vs 0.951, MNIST 0.9995 vs 1.0, MiniLM 0.9935 vs 0.995). Re-scoring its best
// 50 with the decoded (asymmetric) distance gives exactly the asymmetric recall, and with the
// float32 rows both reach 1.0. So: traverse with the symmetric form, re-rank with refine().
// Ranges: sq8 is best with min/max (clip 0); sq4 gains from clipping on MiniLM and clustered
// data (clip 0.003-0.01) and loses a little on MNIST (measured by
// benchmarks/bench_quant_kernels.py).
//
// Record layout: [code (code_bytes)][pad to 4][float ||x^ - m||^2, only for symmetric l2].
// Thread safety: const members are safe to call concurrently; fit/set_ranges are not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/types.hpp"
#include "simd/dispatch.hpp"

namespace pysim::quant {

enum class Kind : std::uint8_t { f16 = 0, bf16 = 1, sq8 = 2, sq4 = 3 };
using Space = pysim::Space; // common/types.hpp
enum class Mode : std::uint8_t { asymmetric = 0, symmetric = 1 };

const char* kind_name(Kind kind) noexcept;
bool parse_kind(const std::string& name, Kind& out) noexcept;

/// Bytes of the code of one dim-vector (no trailer): 2 dim, 2 dim, dim, ceil(dim / 2).
std::size_t code_bytes(Kind kind, std::size_t dim) noexcept;

/// Largest dimension the integer kernels are exact for (quant_kernels.hpp): 65,536.
inline constexpr std::size_t kMaxScalarDim = 65536;

/// The largest |x| a kind stores without overflow (f16: 65504, bf16: 3.3895e38), else +inf.
double max_abs(Kind kind) noexcept;

struct Query;

class Quantizer {
  public:
    /// Throws std::invalid_argument for dim == 0, symmetric f16, symmetric bf16 in l2, or a
    /// scalar kind with dim > kMaxScalarDim.
    Quantizer(Kind kind, std::size_t dim, Space space, bool normalize, Mode mode);

    Kind kind() const noexcept { return kind_; }
    std::size_t dim() const noexcept { return dim_; }
    Space space() const noexcept { return space_; }
    bool normalizes() const noexcept { return normalize_; }
    Mode mode() const noexcept { return mode_; }
    bool scalar() const noexcept { return kind_ == Kind::sq8 || kind_ == Kind::sq4; }
    unsigned levels() const noexcept { return kind_ == Kind::sq8 ? 256u : 16u; }
    std::size_t code_bytes() const noexcept { return code_bytes_; }
    std::size_t record_bytes() const noexcept { return record_bytes_; }
    bool has_trailer() const noexcept { return trailer_; }
    std::size_t trailer_offset() const noexcept { return trailer_offset_; }

    /// Ranges: always "fitted" for f16/bf16; sq needs fit() or set_ranges() first.
    bool fitted() const noexcept { return !scalar() || !lo_.empty(); }
    /// Learns per-dimension ranges from n rows (normalised first for cosine): min/max when
    /// clip == 0, else the clip and 1 - clip quantiles of at most kFitSample rows taken at an
    /// even stride. No-op for f16/bf16. Throws std::invalid_argument for n == 0 or clip
    /// outside [0, 0.5).
    /// `normalised`: the rows are already in stored form (skip the cosine normalisation).
    void fit(const float* rows, std::size_t n, double clip, std::size_t threads,
             bool normalised = false);
    /// Sets lo/hi (dim each, finite, lo <= hi). Throws std::invalid_argument otherwise.
    void set_ranges(const float* lo, const float* hi);
    /// Sets the encoded form directly (persistence): lo finite, step finite and >= 0.
    void set_lo_step(const float* lo, const float* step);
    const std::vector<float>& lo() const noexcept { return lo_; }
    const std::vector<float>& step() const noexcept { return step_; }
    /// The top of each range as encoded: lo + step (L - 1).
    std::vector<float> hi() const;

    static constexpr std::size_t kFitSample = 65536;

    /// Throws std::invalid_argument naming the first row (offset by `first_row`) that has a
    /// non-finite value or one the kind cannot store (f16 past 65504).
    void check_rows(const float* rows, std::size_t n, std::size_t first_row = 0) const;

    /// Writes the record of one row (record_bytes()); `scratch` holds dim floats. Returns how
    /// many elements fell outside the ranges (sq; clipped) - 0 for f16/bf16. Requires fitted().
    std::size_t encode(const float* row, std::uint8_t* record, float* scratch,
                       const simd::QuantKernels& k) const noexcept;
    /// encode() for a row already in stored form (normalised for cosine).
    std::size_t encode_normalised(const float* x, std::uint8_t* record,
                                  const simd::QuantKernels& k) const noexcept;
    /// Rewrites the trailer of a record from its code (no-op without a trailer).
    void write_trailer(std::uint8_t* record) const noexcept;
    /// The row in stored form: normalised into out for cosine, copied otherwise.
    void normalise(const float* row, float* out) const noexcept;
    /// Elements of n rows that fall outside the ranges (sq; 0 otherwise, or when not fitted).
    std::size_t count_clipped(const float* rows, std::size_t n) const noexcept;
    /// The stored vector of a record (normalised for cosine) as dim floats.
    void decode(const std::uint8_t* record, float* out, const simd::QuantKernels& k) const noexcept;

    /// Prepares a raw query (normalised here for cosine). Allocates into `out` only when its
    /// buffers are too small, so a per-thread Query reused across a batch allocates once.
    void prepare(const float* q, const simd::KernelTable& table, Query& out) const;
    /// Prepares a stored record as a query (its decoded vector), e.g. for node-to-node distances.
    /// `search_form` false: only the decoded and exact forms (the search form is the decoded
    /// one), which saves the symmetric preparation when only decoded distances are wanted.
    void prepare_record(const std::uint8_t* record, const simd::KernelTable& table, Query& out,
                        bool search_form = true) const;
    /// Prepares a query already in stored form (e.g. a kept float32 row).
    void prepare_normalised(const float* q, const simd::KernelTable& table, Query& out,
                            bool search_form = true) const;

    /// The sq code of dimension j in a record (0 .. levels() - 1). Requires scalar().
    unsigned code_at(const std::uint8_t* record, std::size_t j) const noexcept;

  private:
    void set_steps(const std::vector<double>& lo, const std::vector<double>& hi);

    Kind kind_;
    std::size_t dim_;
    Space space_;
    bool normalize_;
    Mode mode_;
    std::size_t code_bytes_, record_bytes_, trailer_offset_;
    bool trailer_;
    std::vector<float> lo_, step_;
    std::vector<double> mid_; // lo + C step: the centre used by the symmetric form
};

} // namespace pysim::quant
