// Defensive CSR checks for the recommend core: O(nnz), run once per call, so that a
// malformed matrix reaching _core directly is a ValueError instead of an out-of-bounds read.
#pragma once

#include <cstdint>
#include <string>

#include "common/errors.hpp"
#include "recommend/recommend.hpp"

namespace pysim::recommend {

// The message is built only on failure: a std::string per checked entry was a measurable
// part of a recommend call.
template <typename T> void check_csr(const Csr<T>& m, const char* name) {
    auto fail = [name](const char* what) { require(false, std::string(name) + what); };
    if (m.indptr == nullptr || m.indptr[0] != 0)
        fail(": indptr must start at 0");
    if (m.cols > static_cast<std::size_t>(INT32_MAX))
        fail(": too many columns");
    const auto cols = static_cast<std::uint32_t>(m.cols);
    for (std::size_t r = 0; r < m.rows; ++r) {
        const std::int64_t a = m.indptr[r], b = m.indptr[r + 1];
        if (a > b)
            fail(": indptr must be non-decreasing");
        std::int64_t prev = -1;
        for (std::int64_t p = a; p < b; ++p) {
            const std::int32_t c = m.indices[p];
            if (static_cast<std::uint32_t>(c) >= cols)
                fail(": column index out of range");
            if (c <= prev)
                fail(": columns must be sorted and unique");
            prev = c;
        }
    }
}

} // namespace pysim::recommend
