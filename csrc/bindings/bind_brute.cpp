// Bindings of the exact brute-force search (brute/brute_force.hpp), one function per dtype.
//
// Stateless on purpose: the Python class (pysim/_brute.py) owns the rows and their squared
// norms as numpy arrays and passes them on every call. The arrays are arguments, so they stay
// alive for the whole call even if another Python thread add()s to the index meanwhile (add
// swaps in new arrays; it never writes the rows a running query reads). Outputs are allocated
// with the GIL held, the search runs with the GIL released on raw pointers only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <utility>

#include "bindings/numpy_utils.hpp"
#include "brute/brute_force.hpp"
#include "brute/distances.hpp"

namespace pysim::bindings {

namespace {

template <typename T>
brute::Dataset<T> dataset(const CArray<T>& data, const CArray<T>& sqnorms, double max_sqnorm,
                          Metric metric) {
    const auto [n, d] = matrix_shape(data, "data");
    require(sqnorms.ndim() == 1 && static_cast<std::size_t>(sqnorms.shape(0)) == n,
            "sqnorms must have one entry per data row");
    require(d > 0, "data must have at least one column");
    require(std::isfinite(max_sqnorm) && max_sqnorm >= 0, "max_sqnorm must be finite and >= 0");
    brute::Dataset<T> ds;
    ds.rows = data.data();
    ds.n = n;
    ds.dim = d;
    ds.sqnorms = sqnorms.data();
    ds.max_sqnorm = max_sqnorm;
    ds.metric = metric;
    return ds;
}

template <typename T> py::array_t<T> sqnorms(const CArray<T>& data, int threads) {
    const auto [n, d] = matrix_shape(data, "data");
    const std::size_t nt = checked_threads(threads);
    py::array_t<T> out(static_cast<py::ssize_t>(n));
    const T* x = data.data();
    T* o = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        brute::squared_norms(x, n, d, o, nt);
    }
    return out;
}

// The search bindings open alike (shape, dimension, k or radii, threads: the common.hpp checks in
// one order, each with its own message), here and in bind_kdtree.cpp / bind_hnsw.cpp; duplicates
// pairs the prologues by shape.
template <typename T>
py::tuple knn(const CArray<T>& data, const CArray<T>& norms, double max_sqnorm, Metric metric,
              const CArray<T>& queries, py::ssize_t k, int threads) {
    const brute::Dataset<T> ds = dataset(data, norms, max_sqnorm, metric);
    const auto [m, d] = matrix_shape(queries, "Q");
    require(d == ds.dim, "Q must have as many columns as the index dimension");
    require(k >= 1, "k must be >= 1");
    const std::size_t nt = checked_threads(threads);
    const auto kk = static_cast<std::size_t>(k);
    py::array_t<T> dist({m, kk});
    py::array_t<index_t> idx({m, kk});
    const T* q = queries.data();
    T* od = dist.mutable_data();
    index_t* oi = idx.mutable_data();
    {
        py::gil_scoped_release nogil;
        brute::knn(ds, q, m, kk, od, oi, nt);
    }
    return py::make_tuple(dist, idx);
}

template <typename T>
py::tuple radius(const CArray<T>& data, const CArray<T>& norms, double max_sqnorm, Metric metric,
                 const CArray<T>& queries, const CArray<double>& radii, bool sort, int threads) {
    const brute::Dataset<T> ds = dataset(data, norms, max_sqnorm, metric);
    const auto [m, d] = matrix_shape(queries, "Q");
    require(d == ds.dim, "Q must have as many columns as the index dimension");
    require(radii.ndim() == 1 && static_cast<std::size_t>(radii.shape(0)) == m,
            "r must have one radius per query");
    const std::size_t nt = checked_threads(threads);
    const T* q = queries.data();
    const double* r = radii.data();
    brute::RadiusResult<T> res;
    {
        py::gil_scoped_release nogil;
        res = brute::radius(ds, q, m, r, sort, nt);
    }
    return py::make_tuple(vector_to_array(std::move(res.indptr)),
                          vector_to_array(std::move(res.indices)),
                          vector_to_array(std::move(res.distances)));
}

template <typename T> void def_dtype(py::module_& m, const char* suffix) {
    const std::string s = suffix;
    m.def(("brute_sqnorms_" + s).c_str(), &sqnorms<T>, py::arg("data").noconvert(),
          py::arg("threads"));
    m.def(("brute_knn_" + s).c_str(), &knn<T>, py::arg("data").noconvert(),
          py::arg("sqnorms").noconvert(), py::arg("max_sqnorm"), py::arg("metric"),
          py::arg("queries").noconvert(), py::arg("k"), py::arg("threads"));
    m.def(("brute_radius_" + s).c_str(), &radius<T>, py::arg("data").noconvert(),
          py::arg("sqnorms").noconvert(), py::arg("max_sqnorm"), py::arg("metric"),
          py::arg("queries").noconvert(), py::arg("radii").noconvert(), py::arg("sort"),
          py::arg("threads"));
    m.attr(("brute_max_safe_sqnorm_" + s).c_str()) = brute::max_safe_sqnorm<T>();
}

} // namespace

void bind_brute(py::module_& m) {
    def_dtype<float>(m, "f32");
    def_dtype<double>(m, "f64");
}

} // namespace pysim::bindings
