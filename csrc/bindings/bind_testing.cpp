// Private hooks for the hardening tests (tests/test_hardening.py), not part of the API.
// Compiled only with the PYSIM_TESTING CMake option, so release wheels do not ship them.
//
// They drive the thread pool with synthetic work of a known shape, so interrupt latency,
// error propagation and reuse after a failure can be tested exactly (chunk length, number of
// jobs, which chunk fails) without the large inputs a real kernel would need to run that long.
#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <cstddef>

#include "bindings/numpy_utils.hpp"
#include "common/errors.hpp"
#include "common/parallel.hpp"

namespace pysim::bindings {

namespace {

// Busy-waits (no sleep: a sleeping chunk would not show a missing poll as CPU work does).
void spin_for(double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
    }
}

// Runs `jobs` consecutive parallel_for calls of `chunks` chunks, each spinning `chunk_seconds`;
// the chunk numbered `fail_at` (counting across jobs) throws std::invalid_argument.
// Returns the number of chunks that ran to the end.
std::size_t pool_spin(std::size_t jobs, std::size_t chunks, double chunk_seconds, int threads,
                      long long fail_at) {
    require(chunk_seconds >= 0 && chunk_seconds < 10, "chunk_seconds must be in [0, 10)");
    const std::size_t nt = checked_threads(threads);
    std::atomic<std::size_t> done{0};
    {
        py::gil_scoped_release nogil;
        for (std::size_t j = 0; j < jobs; ++j) {
            parallel_for(chunks, nt, 1, [&](std::size_t begin, std::size_t end) {
                for (std::size_t c = begin; c < end; ++c) {
                    if (fail_at >= 0 && j * chunks + c == static_cast<std::size_t>(fail_at))
                        throw std::invalid_argument("chunk failed on purpose");
                    spin_for(chunk_seconds);
                    done.fetch_add(1, std::memory_order_relaxed);
                }
            });
        }
    }
    return done.load();
}

} // namespace

void bind_testing(py::module_& m) {
    m.def("_pool_spin", &pool_spin, py::arg("jobs"), py::arg("chunks"), py::arg("chunk_seconds"),
          py::arg("threads"), py::arg("fail_at") = -1,
          "Test hook: run synthetic busy chunks on the thread pool (see bind_testing.cpp).");
}

} // namespace pysim::bindings
