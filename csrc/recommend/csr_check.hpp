// Defensive CSR checks for the recommend core: O(nnz), run once per call, so that a
// malformed matrix reaching _core directly is a ValueError instead of an out-of-bounds read.
#pragma once

#include <cstdint>
#include <string>

#include "common/errors.hpp"
#include "recommend/recommend.hpp"

namespace pysim::recommend {

template <typename T> void check_csr(const Csr<T>& m, const char* name) {
    const std::string who(name);
    require(m.indptr != nullptr && m.indptr[0] == 0, who + ": indptr must start at 0");
    require(m.cols <= static_cast<std::size_t>(INT32_MAX), who + ": too many columns");
    for (std::size_t r = 0; r < m.rows; ++r) {
        const std::int64_t a = m.indptr[r], b = m.indptr[r + 1];
        require(a <= b, who + ": indptr must be non-decreasing");
        for (std::int64_t p = a; p < b; ++p) {
            const std::int32_t c = m.indices[p];
            require(c >= 0 && static_cast<std::size_t>(c) < m.cols,
                    who + ": column index out of range");
            require(p == a || m.indices[p - 1] < c, who + ": columns must be sorted and unique");
        }
    }
}

} // namespace pysim::recommend
