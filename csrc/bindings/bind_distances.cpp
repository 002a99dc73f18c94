// cdist / dot / paired bindings, one per dtype (the Python layer picks, so pybind11's overload
// resolution never guesses). Outputs are allocated (or the caller's `out` checked) with the
// GIL held; the work runs with the GIL released on raw pointers only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <utility>

#include "bindings/numpy_utils.hpp"
#include "brute/distances.hpp"

namespace pysim::bindings {

namespace {

template <typename T> py::array_t<T> output_matrix(py::object out, std::size_t m, std::size_t n) {
    if (out.is_none())
        return py::array_t<T>({m, n});
    require(py::isinstance<py::array_t<T>>(out), "out has the wrong dtype");
    auto arr = out.cast<py::array>();
    require(arr.ndim() == 2 && static_cast<std::size_t>(arr.shape(0)) == m &&
                static_cast<std::size_t>(arr.shape(1)) == n,
            "out has the wrong shape");
    require((arr.flags() & py::array::c_style) != 0, "out must be C-contiguous");
    require(arr.writeable(), "out must be writeable");
    return py::reinterpret_borrow<py::array_t<T>>(arr);
}

// The (m, n) shapes, cdist and dot: checks and the output with the GIL held, then
// run(a, m, b, n, d, out, threads) without it.
template <typename T, typename Run>
py::array_t<T> all_pairs(const CArray<T>& xa, const CArray<T>& xb, int threads, py::object out,
                         Run run) {
    const auto [m, d] = matrix_shape(xa, "XA");
    const auto [n, d2] = matrix_shape(xb, "XB");
    require(d == d2, "XA and XB must have the same number of columns");
    const std::size_t nt = checked_threads(threads);
    py::array_t<T> result = output_matrix<T>(out, m, n);
    const T* a = xa.data();
    const T* b = xb.data();
    T* o = result.mutable_data();
    {
        py::gil_scoped_release nogil;
        run(a, m, b, n, d, o, nt);
    }
    return result;
}

template <typename T>
py::array_t<T> cdist(const CArray<T>& xa, const CArray<T>& xb, Metric metric, int threads,
                     py::object out) {
    return all_pairs<T>(xa, xb, threads, std::move(out),
                        [metric](const T* a, std::size_t m, const T* b, std::size_t n,
                                 std::size_t d, T* o,
                                 std::size_t nt) { brute::cdist(a, m, b, n, d, metric, o, nt); });
}

template <typename T>
py::array_t<T> dot(const CArray<T>& xa, const CArray<T>& xb, int threads, py::object out) {
    return all_pairs<T>(xa, xb, threads, std::move(out), &brute::dot<T>);
}

template <typename T>
py::array_t<T> paired(const CArray<T>& xa, const CArray<T>& xb, Metric metric, int threads) {
    const auto [m, d] = matrix_shape(xa, "XA");
    const auto [m2, d2] = matrix_shape(xb, "XB");
    require(m == m2 && d == d2, "XA and XB must have the same shape");
    const std::size_t nt = checked_threads(threads);
    py::array_t<T> result(m);
    const T* a = xa.data();
    const T* b = xb.data();
    T* o = result.mutable_data();
    {
        py::gil_scoped_release nogil;
        brute::paired(a, b, m, d, metric, o, nt);
    }
    return result;
}

template <typename T> void def_dtype(py::module_& m, const char* suffix) {
    const std::string s = suffix;
    m.def(("cdist_" + s).c_str(), &cdist<T>, py::arg("xa").noconvert(), py::arg("xb").noconvert(),
          py::arg("metric"), py::arg("threads"), py::arg("out") = py::none());
    m.def(("dot_" + s).c_str(), &dot<T>, py::arg("xa").noconvert(), py::arg("xb").noconvert(),
          py::arg("threads"), py::arg("out") = py::none());
    m.def(("paired_" + s).c_str(), &paired<T>, py::arg("xa").noconvert(), py::arg("xb").noconvert(),
          py::arg("metric"), py::arg("threads"));
}

} // namespace

void bind_distances(py::module_& m) {
    py::enum_<Metric>(m, "Metric")
        .value("sqeuclidean", Metric::sqeuclidean)
        .value("euclidean", Metric::euclidean)
        .value("cosine", Metric::cosine)
        .value("ip", Metric::ip)
        .value("mahalanobis", Metric::mahalanobis);
    def_dtype<float>(m, "f32");
    def_dtype<double>(m, "f64");
}

} // namespace pysim::bindings
