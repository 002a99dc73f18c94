// Runtime selection of the kernel table (see dispatch.cpp for the detection rules).
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "simd/kernels.hpp"
#include "simd/quant_kernels.hpp"

namespace pysim::simd {

/// The active kernel table. Callers read it once per batch call, never cache it across calls.
const KernelTable& active() noexcept;

/// The float32 or float64 half of a table: kernels<T>(active()) in code templated on the dtype.
template <typename T> const Kernels<T>& kernels(const KernelTable& table) noexcept {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
    if constexpr (std::is_same_v<T, float>) {
        return table.f32;
    } else {
        return table.f64;
    }
}

/// The compressed-code kernels of the same level as `table` (read `active()` once per batch,
/// then this).
const QuantKernels& quant_for(const KernelTable& table) noexcept;

/// The table of a given level, or nullptr when that level cannot run here.
const KernelTable* table_for(Isa isa) noexcept;

/// Switches the active level; false (and no change) when the level cannot run here.
bool set_active(Isa isa) noexcept;

const char* isa_name(Isa isa) noexcept;
bool parse_isa(const std::string& name, Isa& out) noexcept;

/// Levels compiled into this build, and the subset this CPU can run.
std::vector<Isa> compiled_isas();
std::vector<Isa> runnable_isas();

/// The best level this CPU can run.
Isa detected_isa() noexcept;

/// What PYSIM_SIMD asked for at start-up ("" when unset) and a note when the request could
/// not be honoured ("" otherwise).
std::string env_request();
std::string override_note();

} // namespace pysim::simd
