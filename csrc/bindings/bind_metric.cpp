// Metric-learning kernels (csrc/metric/): arrays are checked and copied into outputs with the
// GIL held, the sequential solver runs without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>

#include "bindings/numpy_utils.hpp"
#include "metric/itml.hpp"
#include "metric/scml.hpp"

namespace pysim::bindings {

namespace {

py::tuple itml_projections(const CArray<double>& A0, const CArray<double>& V,
                           const CArray<double>& sign, const CArray<double>& bhat0, double gamma,
                           std::size_t max_iter, double tol) {
    const auto [d, d2] = matrix_shape(A0, "A");
    require(d == d2, "A must be square");
    const auto [m, dv] = matrix_shape(V, "V");
    require(dv == d, "V must have as many columns as A");
    require(sign.ndim() == 1 && static_cast<std::size_t>(sign.shape(0)) == m,
            "sign must have one entry per row of V");
    require(bhat0.ndim() == 1 && static_cast<std::size_t>(bhat0.shape(0)) == m,
            "bhat must have one entry per row of V");
    py::array_t<double> A({d, d});
    py::array_t<double> bhat(static_cast<py::ssize_t>(m));
    py::array_t<double> lambda(static_cast<py::ssize_t>(m));
    std::copy(A0.data(), A0.data() + d * d, A.mutable_data());
    std::copy(bhat0.data(), bhat0.data() + m, bhat.mutable_data());
    std::fill(lambda.mutable_data(), lambda.mutable_data() + m, 0.0);
    double* a = A.mutable_data();
    double* b = bhat.mutable_data();
    double* l = lambda.mutable_data();
    const double* v = V.data();
    const double* s = sign.data();
    metric::ItmlResult r{};
    {
        py::gil_scoped_release nogil;
        r = metric::itml_projections(a, d, v, s, m, b, l, gamma, max_iter, tol);
    }
    return py::make_tuple(A, r.iterations, r.convergence);
}

py::tuple scml_hinge_loss_grad(const CArray<float>& Phi, const CArray<double>& w, double width,
                               std::size_t groups, int threads) {
    const auto [T, K] = matrix_shape(Phi, "Phi");
    require(w.ndim() == 1 && static_cast<std::size_t>(w.shape(0)) == K,
            "w must have one entry per column of Phi");
    require(width > 0.0, "width must be > 0");
    const std::size_t n_threads = checked_threads(threads);
    py::array_t<double> grad(static_cast<py::ssize_t>(K));
    double* g = grad.mutable_data();
    const float* phi = Phi.data();
    const double* wp = w.data();
    double loss = 0.0;
    {
        py::gil_scoped_release nogil;
        loss = metric::scml_hinge_loss_grad(phi, T, K, wp, width, groups, n_threads, g);
    }
    return py::make_tuple(loss, grad);
}

} // namespace

void bind_metric(py::module_& m) {
    m.def("itml_projections", &itml_projections, py::arg("A").noconvert(), py::arg("V").noconvert(),
          py::arg("sign").noconvert(), py::arg("bhat").noconvert(), py::arg("gamma"),
          py::arg("max_iter"), py::arg("tol"));
    m.def("scml_hinge_loss_grad", &scml_hinge_loss_grad, py::arg("Phi").noconvert(),
          py::arg("w").noconvert(), py::arg("width"), py::arg("groups"), py::arg("threads"));
}

} // namespace pysim::bindings
