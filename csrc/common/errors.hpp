// Error helpers. User-facing validation happens in Python (pysim/_validation.py); the checks
// here are the defensive second line that keeps `_core` safe when called directly.
// std::invalid_argument becomes ValueError through pybind11's built-in translation.
#pragma once

#include <stdexcept>
#include <string>

namespace pysim {

/// Throws std::invalid_argument(message) when `condition` is false.
inline void require(bool condition, const char* message) {
    if (!condition)
        throw std::invalid_argument(message);
}
inline void require(bool condition, const std::string& message) {
    if (!condition)
        throw std::invalid_argument(message);
}

} // namespace pysim

#if defined(PYSIM_DEBUG_ASSERTS) || !defined(NDEBUG)
#include <cassert>
#define PYSIM_ASSERT(x) assert(x)
#else
#define PYSIM_ASSERT(x) ((void)0)
#endif
