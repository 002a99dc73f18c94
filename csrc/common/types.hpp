// Basic vocabulary shared by every component: the user-visible index type, the metric names
// (spelled exactly as the Python strings), the storage spaces and the padding value for
// missing results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pysim {

/// Index type of every user-visible row number or id (numpy int64).
using index_t = std::int64_t;

/// Padding index for results that do not exist (k larger than the index, filtered points).
inline constexpr index_t kNoIndex = -1;

/// Distance metrics. Mahalanobis never reaches the core: the Python layer maps rows through
/// the factor L of VI = L^T L and asks for euclidean.
enum class Metric : std::uint8_t {
    sqeuclidean = 0,
    euclidean = 1,
    cosine = 2,
    ip = 3,
    mahalanobis = 4
};

/// The two geometries a graph or quantised index stores vectors for: every metric reaches them
/// as l2 (squared Euclidean; euclidean takes a sqrt later) or ip (1 - dot; cosine is ip over
/// normalised rows).
enum class Space : std::uint8_t { l2 = 0, ip = 1 };

} // namespace pysim
