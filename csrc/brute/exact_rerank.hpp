// Internal to the brute-force search (knn.cpp, radius.cpp): the pieces that make the fast
// float search exact.
//
//   ErrorModel + *_error()  bounds |D~ - D| <= abs + rel |D~| of each way of computing an
//                           approximate distance (derivations in brute_force.hpp), and the
//                           limits they imply for k-NN ranking and radius membership;
//   Exact<T>                the float64 distance by the direct formulas (the reference's);
//   Candidates<T>           the kc smallest approximate (distance, row) pairs of one query.
// Kept apart so the scans (scan.hpp, engine.hpp) read as blocking and threading only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "brute/brute_force.hpp"
#include "simd/dispatch.hpp"

namespace pysim::brute::detail {

/// Candidates kept per query: k plus slack, so that a few near-ties at the k-th place do not
/// force the exact fallback.
inline std::size_t candidates_for(std::size_t k, std::size_t n) {
    return std::min(n, k + std::max<std::size_t>(16, k / 2));
}

// ---------------------------------------------------------------------------------------------
// Error models: |D~ - D| <= abs + rel |D~| for an approximate distance D~ of exact distance D.

struct ErrorModel {
    double abs = 0.0;
    double rel = 0.0;
};

template <typename T> constexpr double unit_roundoff() {
    return std::numeric_limits<T>::epsilon() / 2;
}

// gamma_j of Higham; infinite (no pruning at all) when j u is not small.
template <typename T> double gamma(std::size_t j) {
    const double ju = static_cast<double>(j) * unit_roundoff<T>();
    return ju < 0.25 ? ju / (1 - ju) : std::numeric_limits<double>::infinity();
}

// Absolute error that gradual underflow can add to a length-d reduction.
template <typename T> double underflow_slack(std::size_t d) {
    return 4.0 * static_cast<double>(d + 8) * std::numeric_limits<T>::denorm_min();
}

inline constexpr double kSafety = 1.05; // covers the rounding of the bound's own arithmetic

template <typename T> ErrorModel identity_l2_error(double qn, double max_sqnorm, std::size_t d) {
    return {2 * gamma<T>(d + 8) * (qn + max_sqnorm) * kSafety + underflow_slack<T>(d), 0.0};
}
template <typename T> ErrorModel direct_l2_error(std::size_t d) {
    return {underflow_slack<T>(d), gamma<T>(d + 8) * kSafety};
}
template <typename T> ErrorModel ip_error(double qn, double max_sqnorm, std::size_t d) {
    const double u = unit_roundoff<T>();
    return {(gamma<T>(d + 8) * std::sqrt(qn * max_sqnorm) + 2 * u) * kSafety +
                underflow_slack<T>(d),
            0.0};
}
template <typename T> ErrorModel cosine_error(std::size_t d) {
    return {static_cast<double>(2 * d + 26) * unit_roundoff<T>() * kSafety + underflow_slack<T>(d),
            0.0};
}

// The largest D~ whose point could still tie or beat the point ranked k-th at D~ = tau:
// D_j >= D~_j - abs - rel D~_j must not exceed D_kth <= tau + abs + rel tau.
inline double knn_limit(double tau, const ErrorModel& e) {
    const double v = (tau * (1 + e.rel) + 2 * e.abs) / (1 - e.rel);
    return v + std::abs(v) * 1e-12;
}

// The largest D~ whose exact distance can be <= r.
inline double radius_limit(double r, const ErrorModel& e) {
    const double v = (r + e.abs) / (1 - e.rel);
    return v + std::abs(v) * 1e-12;
}

// The smallest T strictly above `limit`, so that `v < result` accepts every v <= limit.
template <typename T> T threshold_above(double limit) {
    if (std::isnan(limit) || limit == std::numeric_limits<double>::infinity())
        return std::numeric_limits<T>::infinity();
    if (limit == -std::numeric_limits<double>::infinity())
        return -std::numeric_limits<T>::infinity();
    T t = static_cast<T>(limit);
    if (static_cast<double>(t) < limit)
        t = std::nextafter(t, std::numeric_limits<T>::infinity());
    return std::nextafter(t, std::numeric_limits<T>::infinity());
}

inline bool is_l2(Metric m) {
    return m == Metric::sqeuclidean || m == Metric::euclidean;
}

// ---------------------------------------------------------------------------------------------
// Exact distances in float64 (direct formulas, the reference's), one query at a time.

template <typename T> class Exact {
  public:
    Exact(Metric metric, std::size_t dim)
        : metric_(metric), dim_(dim), k64_(simd::kernels<double>(simd::active())) {
        if constexpr (!std::is_same_v<T, double>) {
            query_.resize(dim);
            row_.resize(dim);
        }
    }

    void set_query(const T* q) {
        q_ = convert(q, query_);
        if (metric_ == Metric::cosine)
            qn_ = k64_.norm2.fn(q_, q_, dim_);
    }

    /// The metric's value (sqrt taken for euclidean), as the float64 reference computes it.
    double distance(const T* row) {
        const double* r = convert(row, row_);
        switch (metric_) {
        case Metric::sqeuclidean:
            return k64_.l2sq.fn(q_, r, dim_);
        case Metric::euclidean:
        case Metric::mahalanobis:
            return std::sqrt(k64_.l2sq.fn(q_, r, dim_));
        case Metric::ip:
            return 1.0 - k64_.dot.fn(q_, r, dim_);
        case Metric::cosine: {
            const double rn = k64_.norm2.fn(r, r, dim_);
            if (!(qn_ > 0) || !(rn > 0))
                return 1.0;
            const double v = 1.0 - k64_.dot.fn(q_, r, dim_) / (std::sqrt(qn_) * std::sqrt(rn));
            return v < 0 ? 0.0 : (v > 2 ? 2.0 : v);
        }
        }
        return 0.0;
    }

  private:
    const double* convert(const T* x, std::vector<double>& buf) {
        if constexpr (std::is_same_v<T, double>) {
            (void)buf;
            return x;
        } else {
            for (std::size_t i = 0; i < dim_; ++i)
                buf[i] = static_cast<double>(x[i]);
            return buf.data();
        }
    }

    Metric metric_;
    std::size_t dim_;
    const simd::Kernels<double>& k64_;
    std::vector<double> query_, row_;
    const double* q_ = nullptr;
    double qn_ = 0.0;
};

/// The kc smallest (value, row) pairs offered so far, unordered. Offers are appended to a
/// buffer of 2 kc; a full buffer is cut back to its kc smallest with nth_element. Amortised
/// O(1) per offer with sequential writes, where a binary heap costs log(kc) scattered
/// accesses (which miss the cache once a task's heaps outgrow L2, e.g. k = 1000).
/// Rows are offered in ascending order within a data split, so a value equal to the bound
/// loses the tie and can be refused: callers offer only v < bound().
template <typename T> class Candidates {
  public:
    using Item = std::pair<T, index_t>;

    void init(Item* storage, std::size_t kc) {
        items_ = storage;
        kc_ = kc;
        size_ = 0;
        bound_ = std::numeric_limits<T>::infinity();
    }
    T bound() const noexcept { return bound_; }
    const Item* begin() const noexcept { return items_; }
    const Item* end() const noexcept { return items_ + size_; }

    /// Appends (v, j); returns the new bound.
    T offer(T v, index_t j) {
        items_[size_++] = {v, j};
        if (size_ == 2 * kc_) {
            std::nth_element(items_, items_ + kc_ - 1, items_ + size_);
            size_ = kc_;
            bound_ = items_[kc_ - 1].first;
        }
        return bound_;
    }

  private:
    Item* items_ = nullptr;
    std::size_t kc_ = 0, size_ = 0;
    T bound_ = std::numeric_limits<T>::infinity();
};

} // namespace pysim::brute::detail
