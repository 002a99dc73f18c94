// Quantizer: range fitting, row encoding / decoding and query preparation (see quantizer.hpp).
//
// Encoding runs in double: (x - lo) * (1 / step) is rounded to the nearest level, so the
// round-trip bound step / 2 holds up to one rounding of the decoded float. Normalisation for
// cosine computes the norm in double and rounds each scaled element once to float32, the same
// arithmetic in fit(), encode() and prepare(), so ranges are learned on exactly what is stored.
#include "quant/quantizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "common/errors.hpp"
#include "common/norms.hpp"
#include "common/parallel.hpp"
#include "quant/query.hpp"

namespace pysim::quant {
namespace {

// Round to nearest, ties to even - std::nearbyint for |v| < 2^51 - without the libm call that
// the baseline x86-64 target (no SSE4.1 roundsd) makes of nearbyint: adding and subtracting
// 1.5 * 2^52 leaves the integer part in the significand. Every caller clamps v to [-127, 255].
// sum_j a_j * b_j in double with four partial sums (see prepare_normalised).
template <class T> double sum_products(const float* a, const T* b, std::size_t n) noexcept {
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    std::size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        for (std::size_t u = 0; u < 4; ++u)
            acc[u] += double(a[j + u]) * double(b[j + u]);
    }
    for (; j < n; ++j)
        acc[0] += double(a[j]) * double(b[j]);
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

inline double round_small(double v) noexcept {
    constexpr double kMagic = 6755399441055744.0; // 1.5 * 2^52
    return (v + kMagic) - kMagic; // IEEE arithmetic (no -ffast-math): not folded away
}

void normalise_into(const float* x, std::size_t dim, float* out) noexcept {
    const double inv = inverse_norm(x, dim);
    for (std::size_t i = 0; i < dim; ++i)
        out[i] = static_cast<float>(x[i] * inv);
}

// Position of dimension j in the 4-bit layout (quant_kernels.hpp): byte offset and nibble.
struct NibblePos {
    std::size_t byte;
    bool high;
};

NibblePos nibble_pos(std::size_t j, std::size_t dim) noexcept {
    const std::size_t base = j - j % simd::kNibbleBlock;
    const std::size_t r = std::min(simd::kNibbleBlock, dim - base);
    const std::size_t h = (r + 1) / 2, k = j - base;
    return k < h ? NibblePos{base / 2 + k, false} : NibblePos{base / 2 + k - h, true};
}

unsigned nibble_at(const std::uint8_t* code, NibblePos p) noexcept {
    return p.high ? code[p.byte] >> 4 : code[p.byte] & 0x0Fu;
}

} // namespace

// An enum-to-name switch, like isa_name()'s in dispatch.cpp: the compiler checks each covers its
// enum (duplicates pairs them by shape).
const char* kind_name(Kind kind) noexcept {
    switch (kind) {
    case Kind::f16:
        return "f16";
    case Kind::bf16:
        return "bf16";
    case Kind::sq8:
        return "sq8";
    case Kind::sq4:
        return "sq4";
    }
    return "unknown";
}

bool parse_kind(const std::string& name, Kind& out) noexcept {
    for (Kind k : {Kind::f16, Kind::bf16, Kind::sq8, Kind::sq4}) {
        if (name == kind_name(k)) {
            out = k;
            return true;
        }
    }
    return false;
}

std::size_t code_bytes(Kind kind, std::size_t dim) noexcept {
    switch (kind) {
    case Kind::f16:
    case Kind::bf16:
        return 2 * dim;
    case Kind::sq8:
        return dim;
    case Kind::sq4:
        return (dim + 1) / 2;
    }
    return 0;
}

double max_abs(Kind kind) noexcept {
    switch (kind) {
    case Kind::f16:
        return 65504.0;
    case Kind::bf16:
        return 3.3895313892515355e38; // 0x7F7F
    default:
        return std::numeric_limits<double>::infinity();
    }
}

Quantizer::Quantizer(Kind kind, std::size_t dim, Space space, bool normalize, Mode mode)
    : kind_(kind), dim_(dim), space_(space), normalize_(normalize), mode_(mode) {
    require(dim > 0, "dim must be >= 1");
    require(!(scalar() && dim > kMaxScalarDim),
            "dim: scalar quantisation supports at most 65536 dimensions");
    require(!(mode == Mode::symmetric && kind == Kind::f16),
            "the symmetric mode needs sq8, sq4 or bf16 codes (f16 has no integer or f16 dot "
            "product here)");
    require(!(mode == Mode::symmetric && kind == Kind::bf16 && space == Space::l2),
            "the symmetric bf16 mode supports the ip and cosine metrics only");
    code_bytes_ = quant::code_bytes(kind, dim);
    trailer_ = scalar() && mode == Mode::symmetric && space == Space::l2;
    trailer_offset_ = (code_bytes_ + 3) / 4 * 4;
    record_bytes_ = trailer_ ? trailer_offset_ + sizeof(float) : code_bytes_;
}

void Quantizer::fit(const float* rows, std::size_t n, double clip, std::size_t threads,
                    bool normalised) {
    require(n > 0, "fit: no rows to learn the ranges from");
    require(clip >= 0.0 && clip < 0.5, "clip must be in [0, 0.5)");
    if (!scalar())
        return;
    const std::size_t dim = dim_;
    // Row scale factors (1 without normalisation), computed once.
    const bool scale_rows = normalize_ && !normalised;
    std::vector<double> inv(scale_rows ? n : 0);
    if (scale_rows) {
        parallel_for(n, threads, balanced_grain(n, threads, 256),
                     [&](std::size_t b, std::size_t e) {
                         for (std::size_t i = b; i < e; ++i)
                             inv[i] = inverse_norm(rows + i * dim, dim);
                     });
    }
    auto value = [&](std::size_t i, std::size_t j) {
        return scale_rows ? static_cast<float>(rows[i * dim + j] * inv[i]) : rows[i * dim + j];
    };
    std::vector<double> lo(dim), hi(dim);
    if (clip == 0.0) {
        // Blocks of dimensions, each scanning every row: contiguous within a row.
        constexpr std::size_t kBlock = 64;
        const std::size_t blocks = (dim + kBlock - 1) / kBlock;
        parallel_for(blocks, threads, 1, [&](std::size_t b, std::size_t e) {
            for (std::size_t blk = b; blk < e; ++blk) {
                const std::size_t j0 = blk * kBlock, j1 = std::min(dim, j0 + kBlock);
                for (std::size_t j = j0; j < j1; ++j)
                    lo[j] = hi[j] = value(0, j);
                for (std::size_t i = 1; i < n; ++i) {
                    for (std::size_t j = j0; j < j1; ++j) {
                        const double v = value(i, j);
                        lo[j] = std::min(lo[j], v);
                        hi[j] = std::max(hi[j], v);
                    }
                }
            }
        });
    } else {
        const std::size_t s = std::min(n, kFitSample);
        const std::size_t lo_rank = static_cast<std::size_t>(std::floor(clip * double(s - 1)));
        const std::size_t hi_rank =
            static_cast<std::size_t>(std::ceil((1.0 - clip) * double(s - 1)));
        parallel_for(dim, threads, balanced_grain(dim, threads, 4),
                     [&](std::size_t b, std::size_t e) {
                         std::vector<float> col(s);
                         for (std::size_t j = b; j < e; ++j) {
                             for (std::size_t i = 0; i < s; ++i)
                                 col[i] = value(i * n / s, j);
                             std::nth_element(col.begin(), col.begin() + lo_rank, col.end());
                             lo[j] = col[lo_rank];
                             std::nth_element(col.begin(), col.begin() + hi_rank, col.end());
                             hi[j] = col[hi_rank];
                         }
                     });
    }
    set_steps(lo, hi);
}

void Quantizer::set_ranges(const float* lo, const float* hi) {
    require(scalar(), "ranges apply to the sq8 and sq4 quantisers only");
    std::vector<double> l(dim_), h(dim_);
    for (std::size_t j = 0; j < dim_; ++j) {
        require(std::isfinite(lo[j]) && std::isfinite(hi[j]), "ranges must be finite");
        require(lo[j] <= hi[j], "ranges: lo must be <= hi in every dimension");
        l[j] = lo[j];
        h[j] = hi[j];
    }
    set_steps(l, h);
}

void Quantizer::set_lo_step(const float* lo, const float* step) {
    require(scalar(), "ranges apply to the sq8 and sq4 quantisers only");
    std::vector<float> l(lo, lo + dim_), s(step, step + dim_);
    std::vector<double> m(dim_);
    const double c = (levels() - 1) / 2.0;
    for (std::size_t j = 0; j < dim_; ++j) {
        require(std::isfinite(l[j]) && std::isfinite(s[j]) && s[j] >= 0.0f,
                "ranges: lo must be finite and step finite and >= 0");
        require(std::isfinite(double(l[j]) + double(s[j]) * (levels() - 1)),
                "ranges: lo + step (levels - 1) must be finite");
        m[j] = double(l[j]) + c * double(s[j]);
    }
    lo_.swap(l);
    step_.swap(s);
    mid_.swap(m);
}

void Quantizer::set_steps(const std::vector<double>& lo, const std::vector<double>& hi) {
    std::vector<float> l(dim_), s(dim_);
    const double span = levels() - 1;
    for (std::size_t j = 0; j < dim_; ++j) {
        l[j] = static_cast<float>(lo[j]);
        s[j] = static_cast<float>(std::max(0.0, hi[j] - double(l[j])) / span);
        require(std::isfinite(s[j]), "ranges: hi - lo overflows float32");
    }
    set_lo_step(l.data(), s.data());
}

std::vector<float> Quantizer::hi() const {
    std::vector<float> h(lo_.size());
    for (std::size_t j = 0; j < h.size(); ++j)
        h[j] = static_cast<float>(double(lo_[j]) + double(step_[j]) * (levels() - 1));
    return h;
}

void Quantizer::check_rows(const float* rows, std::size_t n, std::size_t first_row) const {
    // Rounding to f16 / bf16 overflows at these magnitudes (half-way past the largest finite).
    const double limit = kind_ == Kind::f16    ? 65520.0
                         : kind_ == Kind::bf16 ? 3.3961514e38
                                               : std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < n; ++i) {
        const float* x = rows + i * dim_;
        for (std::size_t j = 0; j < dim_; ++j) {
            if (!std::isfinite(x[j])) {
                throw std::invalid_argument("row " + std::to_string(first_row + i) +
                                            " contains NaN or infinity");
            }
            if (!normalize_ && std::fabs(double(x[j])) >= limit) {
                throw std::invalid_argument("row " + std::to_string(first_row + i) +
                                            " has a value beyond the " + kind_name(kind_) +
                                            " range (|x| must stay below " + std::to_string(limit) +
                                            "); use another quantization or scale the data");
            }
        }
    }
}

void Quantizer::normalise(const float* row, float* out) const noexcept {
    if (normalize_) {
        normalise_into(row, dim_, out);
    } else {
        std::copy(row, row + dim_, out);
    }
}

std::size_t Quantizer::count_clipped(const float* rows, std::size_t n) const noexcept {
    if (!scalar() || !fitted())
        return 0;
    const double top = levels() - 1;
    std::vector<float> x(dim_);
    std::size_t clipped = 0;
    for (std::size_t i = 0; i < n; ++i) {
        normalise(rows + i * dim_, x.data());
        for (std::size_t j = 0; j < dim_; ++j) {
            if (step_[j] > 0.0f) {
                const double v = (double(x[j]) - double(lo_[j])) / double(step_[j]);
                clipped += (v < -0.5 || v > top + 0.5) ? 1 : 0;
            } else {
                clipped += x[j] != lo_[j] ? 1 : 0;
            }
        }
    }
    return clipped;
}

std::size_t Quantizer::encode(const float* row, std::uint8_t* record, float* scratch,
                              const simd::QuantKernels& k) const noexcept {
    const float* x = row;
    if (normalize_) {
        normalise_into(row, dim_, scratch);
        x = scratch;
    }
    return encode_normalised(x, record, k);
}

unsigned Quantizer::code_at(const std::uint8_t* record, std::size_t j) const noexcept {
    return kind_ == Kind::sq8 ? record[j] : nibble_at(record, nibble_pos(j, dim_));
}

void Quantizer::write_trailer(std::uint8_t* record) const noexcept {
    if (!trailer_)
        return;
    const double c_mid = (levels() - 1) / 2.0;
    double sum = 0.0;
    if (kind_ == Kind::sq8) {
        // Four partial sums: one accumulator is a dependency chain (every add, reorder and
        // load of an index recomputes every trailer).
        double acc[4] = {0.0, 0.0, 0.0, 0.0};
        const float* st = step_.data();
        const std::size_t n = dim_;
        std::size_t j = 0;
        for (; j + 4 <= n; j += 4) {
            for (std::size_t u = 0; u < 4; ++u) {
                const double d = double(st[j + u]) * (double(record[j + u]) - c_mid);
                acc[u] += d * d;
            }
        }
        for (; j < n; ++j) {
            const double d = double(st[j]) * (double(record[j]) - c_mid);
            acc[0] += d * d;
        }
        sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    } else {
        for (std::size_t j = 0; j < dim_; ++j) {
            const double d = double(step_[j]) * (double(code_at(record, j)) - c_mid);
            sum += d * d;
        }
    }
    std::fill(record + code_bytes_, record + trailer_offset_, std::uint8_t{0});
    const float t = static_cast<float>(sum);
    std::memcpy(record + trailer_offset_, &t, sizeof t);
}

std::size_t Quantizer::encode_normalised(const float* x, std::uint8_t* record,
                                         const simd::QuantKernels& k) const noexcept {
    if (kind_ == Kind::f16 || kind_ == Kind::bf16) {
        auto* out = reinterpret_cast<std::uint16_t*>(record);
        (kind_ == Kind::f16 ? k.f32_to_f16.fn : k.f32_to_bf16.fn)(x, out, dim_);
        return 0;
    }
    const double top = levels() - 1;
    std::size_t clipped = 0;
    if (kind_ == Kind::sq4)
        std::fill(record, record + code_bytes_, std::uint8_t{0});
    for (std::size_t j = 0; j < dim_; ++j) {
        double v = 0.0;
        if (step_[j] > 0.0f) {
            v = (double(x[j]) - double(lo_[j])) / double(step_[j]);
            if (v < -0.5 || v > top + 0.5)
                ++clipped;
            v = round_small(std::min(top, std::max(0.0, v)));
        } else if (x[j] != lo_[j]) {
            ++clipped;
        }
        const unsigned c = static_cast<unsigned>(v);
        if (kind_ == Kind::sq8) {
            record[j] = static_cast<std::uint8_t>(c);
        } else {
            const NibblePos p = nibble_pos(j, dim_);
            record[p.byte] = static_cast<std::uint8_t>(record[p.byte] | (p.high ? c << 4 : c));
        }
    }
    write_trailer(record);
    return clipped;
}

void Quantizer::decode(const std::uint8_t* record, float* out,
                       const simd::QuantKernels& k) const noexcept {
    switch (kind_) {
    case Kind::f16:
        k.f16_to_f32.fn(reinterpret_cast<const std::uint16_t*>(record), out, dim_);
        return;
    case Kind::bf16:
        k.bf16_to_f32.fn(reinterpret_cast<const std::uint16_t*>(record), out, dim_);
        return;
    case Kind::sq8:
        for (std::size_t j = 0; j < dim_; ++j)
            out[j] = static_cast<float>(double(lo_[j]) + double(step_[j]) * record[j]);
        return;
    case Kind::sq4:
        for (std::size_t j = 0; j < dim_; ++j)
            out[j] = static_cast<float>(double(lo_[j]) + double(step_[j]) * code_at(record, j));
        return;
    }
}

void Quantizer::prepare(const float* q, const simd::KernelTable& table, Query& out) const {
    out.normalised.resize(dim_);
    if (normalize_) {
        normalise_into(q, dim_, out.normalised.data());
    } else {
        std::copy(q, q + dim_, out.normalised.begin());
    }
    prepare_normalised(out.normalised.data(), table, out);
}

void Quantizer::prepare_record(const std::uint8_t* record, const simd::KernelTable& table,
                               Query& out, bool search_form) const {
    out.normalised.resize(dim_);
    decode(record, out.normalised.data(), simd::quant_for(table));
    prepare_normalised(out.normalised.data(), table, out, search_form);
}

void Quantizer::prepare_normalised(const float* qn, const simd::KernelTable& table, Query& out,
                                   bool search_form) const {
    const simd::QuantKernels& k = simd::quant_for(table);
    const bool ip = space_ == Space::ip;
    out.dim = dim_;
    out.exact = qn;
    out.exact_fn = ip ? table.f32.dot.fn : table.f32.l2sq.fn;
    out.exact_ip = ip;
    out.decoded_affine = ip;
    out.form = ip ? Form::affine : Form::plain;

    if (!scalar()) {
        const bool f16 = kind_ == Kind::f16;
        const auto& kern = ip ? (f16 ? k.f16_dot : k.bf16_dot) : (f16 ? k.f16_l2sq : k.bf16_l2sq);
        out.decoded = {kern.pair.fn,   kern.batch.fn,  qn, nullptr, dim_,
                       ip ? 1.0 : 0.0, ip ? -1.0 : 1.0};
        if (mode_ == Mode::symmetric && search_form) { // bf16, ip (checked in the constructor)
            out.h.resize(dim_);
            k.f32_to_bf16.fn(qn, out.h.data(), dim_);
            out.half = {k.bf16_dot_bf16.pair.fn, k.bf16_dot_bf16.batch.fn, out.h.data(), dim_};
            out.form = Form::half;
        }
        return;
    }

    // Asymmetric (decoded) form: l2 reads a = q - lo with the steps, ip reads w = q * step.
    const bool sq8 = kind_ == Kind::sq8;
    // float32 arithmetic on float32 operands is correctly rounded, i.e. equal to the double
    // result rounded to float, and these element-wise loops vectorise. (This preparation runs
    // once per query; at d = 784 its scalar double form cost as much as the graph walk.)
    out.fq.resize(dim_);
    float* fq = out.fq.data();
    double bias = 0.0;
    if (ip) {
        for (std::size_t j = 0; j < dim_; ++j)
            fq[j] = qn[j] * step_[j];
        bias = sum_products(qn, lo_.data(), dim_);
    } else {
        for (std::size_t j = 0; j < dim_; ++j)
            fq[j] = qn[j] - lo_[j];
    }
    const auto& kern = ip ? (sq8 ? k.u8_dot : k.u4_dot) : (sq8 ? k.u8_l2sq : k.u4_l2sq);
    out.decoded = {kern.pair.fn, kern.batch.fn,         out.fq.data(),  ip ? nullptr : step_.data(),
                   dim_,         ip ? 1.0 - bias : 0.0, ip ? -1.0 : 1.0};
    if (mode_ == Mode::asymmetric || !search_form)
        return;

    // Symmetric form: int8 query on one scale, centred on the middle of the ranges. Element-
    // wise loops first (they vectorise), then the reductions with four independent partial
    // sums (a single double accumulator is one long dependency chain).
    const double c_mid = (levels() - 1) / 2.0;
    out.t.resize(dim_);
    std::vector<double>& w = out.w;
    w.resize(dim_);
    const double* mid = mid_.data();
    const float* st = step_.data();
    double* wp = w.data();
    double qm = 0.0;
    if (ip) {
        for (std::size_t j = 0; j < dim_; ++j)
            wp[j] = double(qn[j]) * double(st[j]);
        qm = sum_products(qn, mid, dim_);
    } else {
        for (std::size_t j = 0; j < dim_; ++j)
            wp[j] = (double(qn[j]) - mid[j]) * double(st[j]);
        double acc[4] = {0.0, 0.0, 0.0, 0.0};
        std::size_t j = 0;
        for (; j + 4 <= dim_; j += 4) {
            for (std::size_t u = 0; u < 4; ++u) {
                const double d = double(qn[j + u]) - mid[j + u];
                acc[u] += d * d;
            }
        }
        for (; j < dim_; ++j) {
            const double d = double(qn[j]) - mid[j];
            acc[0] += d * d;
        }
        qm = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
    const std::size_t n = dim_; // a local: int8 stores below may alias any member
    double mx[4] = {0.0, 0.0, 0.0, 0.0};
    std::size_t j4 = 0;
    for (; j4 + 4 <= n; j4 += 4) {
        for (std::size_t u = 0; u < 4; ++u)
            mx[u] = std::max(mx[u], std::fabs(wp[j4 + u]));
    }
    for (; j4 < n; ++j4)
        mx[0] = std::max(mx[0], std::fabs(wp[j4]));
    const double wmax = std::max(std::max(mx[0], mx[1]), std::max(mx[2], mx[3]));
    const double sigma = wmax > 0.0 ? wmax / 127.0 : 1.0;
    const double inv_sigma = 1.0 / sigma;
    // |w_j| <= wmax, so |w_j / sigma| <= 127 up to three roundings - far from 127.5: no clamp
    // is needed, and without one this loop vectorises. (w is not needed after this.)
    for (std::size_t j = 0; j < n; ++j)
        wp[j] = round_small(wp[j] * inv_sigma);
    std::int8_t* t = out.t.data();
    int tsum = 0; // |t_j| <= 127 and dim <= kMaxScalarDim: far inside int
    for (std::size_t j = 0; j < n; ++j) {
        const int ti = static_cast<int>(wp[j]);
        t[j] = static_cast<std::int8_t>(ti);
        tsum += ti;
    }
    const auto& ik = sq8 ? k.u8_dot_i8 : k.u4_dot_i8;
    const double ct = sigma * c_mid * double(tsum);
    if (ip) {
        // d = 1 - q.m - sigma (S - C sum t)
        out.sym = {ik.pair.fn, ik.batch.fn, out.t.data(), dim_, 1.0 - qm + ct, -sigma, 0};
        out.form = Form::sym;
    } else {
        // d = ||q - m||^2 - 2 sigma (S - C sum t) + trailer
        out.sym = {ik.pair.fn,    ik.batch.fn,  out.t.data(),   dim_,
                   qm + 2.0 * ct, -2.0 * sigma, trailer_offset_};
        out.form = Form::sym_trailer;
    }
    out.sigma = sigma;
}

} // namespace pysim::quant
