// Metric-learning kernels (csrc/metric/): arrays are checked and copied into outputs with the
// GIL held, the work (ITML's sequential solver, the softmax exponentials) runs without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>

#include "bindings/numpy_utils.hpp"
#include "metric/exp_rows.hpp"
#include "metric/gram.hpp"
#include "metric/itml.hpp"
#include "metric/nca.hpp"
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

// Xᵀ X and the column sums of a C-contiguous X (csrc/metric/gram.hpp).
template <typename T> py::tuple gram(const CArray<T>& X, int threads) {
    const auto [n, d] = matrix_shape(X, "X");
    require(d >= 1, "X must have at least one column");
    const std::size_t n_threads = checked_threads(threads);
    py::array_t<T> G({d, d});
    py::array_t<T> colsum(static_cast<py::ssize_t>(d));
    T* g = G.mutable_data();
    T* c = colsum.mutable_data();
    const T* x = X.data();
    {
        py::gil_scoped_release nogil;
        metric::gram(x, n, d, n_threads, g, c);
    }
    return py::make_tuple(G, colsum);
}

// NCA's objective and gradient for n <= 512 rows sorted by class (pysim.metric_learning._nca).
py::tuple nca_dense_objective(const CArray<double>& X, const CArray<double>& XT,
                              const CArray<double>& L, const CArray<std::int64_t>& starts,
                              int threads) {
    const auto [n, d] = matrix_shape(X, "X");
    const auto [dt, nt] = matrix_shape(XT, "XT");
    require(dt == d && nt == n, "XT must be the transpose of X");
    const auto [k, dl] = matrix_shape(L, "L");
    require(dl == d, "L must have as many columns as X");
    require(n >= 2 && k >= 1, "X needs 2 rows or more and L one row or more");
    require(starts.ndim() == 1 && starts.shape(0) >= 2, "starts must be 1-D with 2+ entries");
    const std::size_t n_classes = static_cast<std::size_t>(starts.shape(0)) - 1;
    const std::int64_t* s = starts.data();
    require(s[0] == 0 && s[n_classes] == static_cast<std::int64_t>(n),
            "starts must run from 0 to the number of rows");
    for (std::size_t c = 0; c < n_classes; ++c)
        require(s[c] <= s[c + 1], "starts must be non-decreasing");
    const std::size_t n_threads = checked_threads(threads);
    py::array_t<double> grad({k, d});
    double* g = grad.mutable_data();
    const double* x = X.data();
    const double* xt = XT.data();
    const double* l = L.data();
    double f = 0.0;
    {
        py::gil_scoped_release nogil;
        f = metric::nca_dense_objective(x, xt, n, d, l, k, s, n_classes, n_threads, g);
    }
    return py::make_tuple(f, grad);
}

// out = exp(E - shifts[:, None]); `out` may be E itself (in place) or None (a new array).
py::array_t<double> shifted_exp_rows(const CArray<double>& E, const CArray<double>& shifts,
                                     py::object out, int threads) {
    const auto [rows, cols] = matrix_shape(E, "E");
    require(shifts.ndim() == 1 && static_cast<std::size_t>(shifts.shape(0)) == rows,
            "shifts must be 1-D with one entry per row of E");
    const std::size_t nt = checked_threads(threads);
    py::array_t<double> result;
    if (out.is_none()) {
        result = py::array_t<double>({rows, cols});
    } else {
        if (!py::isinstance<py::array_t<double>>(out))
            throw py::type_error("out must be a float64 array");
        auto arr = out.cast<py::array>();
        require(arr.ndim() == 2 && static_cast<std::size_t>(arr.shape(0)) == rows &&
                    static_cast<std::size_t>(arr.shape(1)) == cols,
                "out must have the shape of E");
        require((arr.flags() & py::array::c_style) != 0, "out must be C-contiguous");
        require(arr.writeable(), "out must be writeable");
        result = py::reinterpret_borrow<py::array_t<double>>(arr);
    }
    const double* x = E.data();
    const double* s = shifts.data();
    double* o = result.mutable_data();
    {
        py::gil_scoped_release nogil;
        metric::shifted_exp_rows(x, rows, cols, s, o, nt);
    }
    return result;
}

} // namespace

void bind_metric(py::module_& m) {
    m.def("itml_projections", &itml_projections, py::arg("A").noconvert(), py::arg("V").noconvert(),
          py::arg("sign").noconvert(), py::arg("bhat").noconvert(), py::arg("gamma"),
          py::arg("max_iter"), py::arg("tol"));
    m.def("scml_hinge_loss_grad", &scml_hinge_loss_grad, py::arg("Phi").noconvert(),
          py::arg("w").noconvert(), py::arg("width"), py::arg("groups"), py::arg("threads"));
    m.def("gram_f32", &gram<float>, py::arg("X").noconvert(), py::arg("threads") = 1,
          "(X.T @ X, X.sum(axis=0)) for a C-contiguous float32 X, one pass over X.");
    m.def("gram_f64", &gram<double>, py::arg("X").noconvert(), py::arg("threads") = 1,
          "(X.T @ X, X.sum(axis=0)) for a C-contiguous float64 X, one pass over X.");
    m.def("nca_dense_objective", &nca_dense_objective, py::arg("X").noconvert(),
          py::arg("XT").noconvert(), py::arg("L").noconvert(), py::arg("starts").noconvert(),
          py::arg("threads") = 1,
          "NCA's objective sum_i p_i and its gradient (k, d) for rows sorted by class.");
    m.def("shifted_exp_rows", &shifted_exp_rows, py::arg("E").noconvert(),
          py::arg("shifts").noconvert(), py::arg("out") = py::none(), py::arg("threads") = 1,
          "out[i, j] = exp(E[i, j] - shifts[i]) (float64, C-contiguous; out may be E).");
}

} // namespace pysim::bindings
