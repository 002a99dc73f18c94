// Helpers shared by the binding files: canonical array types and shape checks.
//
// Canonical input is an exact dtype, C-contiguous array; the Python layer
// (pysim/_validation.py) produces it, and bindings take it with .noconvert() so a mistake
// surfaces as a TypeError instead of a silent copy.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.hpp"

namespace pysim::bindings {

namespace py = pybind11;

template <typename T> using CArray = py::array_t<T, py::array::c_style>;

/// Rows and columns of a 2-D array, checked.
template <typename T>
std::pair<std::size_t, std::size_t> matrix_shape(const CArray<T>& a, const char* name) {
    require(a.ndim() == 2, std::string(name) + " must be a 2-D array");
    return {static_cast<std::size_t>(a.shape(0)), static_cast<std::size_t>(a.shape(1))};
}

/// Moves a std::vector into a 1-D numpy array without copying (a capsule owns the vector).
template <typename T> py::array_t<T> vector_to_array(std::vector<T>&& v) {
    auto* owner = new std::vector<T>(std::move(v));
    py::capsule free_when_done(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>({static_cast<py::ssize_t>(owner->size())}, {sizeof(T)}, owner->data(),
                          free_when_done);
}

/// Threads count coming from Python: resolved there, re-checked here.
inline std::size_t checked_threads(int threads) {
    require(threads >= 1, "threads must be >= 1");
    return static_cast<std::size_t>(threads);
}

} // namespace pysim::bindings
