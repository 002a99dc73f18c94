// The compiled module pysim._core. Each component registers itself from its own
// bind_<component>.cpp; this file only orders them, installs the interrupt hook and maps the
// core's exceptions.
//
// Interrupts: the thread pool's caller polls `python_interrupt_check` between chunks while the
// GIL is released; it re-acquires the GIL just long enough to run Python's signal handlers.
// A pending KeyboardInterrupt is cleared there and re-raised (as KeyboardInterrupt) when the
// core unwinds with pysim::Interrupted.
#include <pybind11/pybind11.h>

#include "common/parallel.hpp"
#include "simd/dispatch.hpp"

namespace py = pybind11;

namespace pysim::bindings {
void bind_simd(py::module_& m);
void bind_distances(py::module_& m);
void bind_brute(py::module_& m);
void bind_kdtree(py::module_& m);
void bind_hnsw(py::module_& m);
#ifdef PYSIM_TESTING
void bind_testing(py::module_& m); // only in PYSIM_TESTING builds (CMakeLists.txt)
#endif
void bind_quant(py::module_& m);
void bind_recommend(py::module_& m);
void bind_metric(py::module_& m);
} // namespace pysim::bindings

namespace {

bool python_interrupt_check() {
    if (!Py_IsInitialized())
        return false;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
        PyErr_Clear();
        return true;
    }
    return false;
}

} // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "pysim compiled core (private; use the pysim package)";
    (void)pysim::simd::active(); // CPU detection and PYSIM_SIMD happen at import
    pysim::set_interrupt_check(&python_interrupt_check);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p)
                std::rethrow_exception(p);
        } catch (const pysim::Interrupted&) {
            PyErr_SetNone(PyExc_KeyboardInterrupt);
        }
    });
    pysim::bindings::bind_simd(m);
    pysim::bindings::bind_distances(m);
    pysim::bindings::bind_brute(m);
    pysim::bindings::bind_kdtree(m);
    pysim::bindings::bind_hnsw(m);
#ifdef PYSIM_TESTING
    pysim::bindings::bind_testing(m);
#endif
    pysim::bindings::bind_quant(m);
    pysim::bindings::bind_recommend(m);
    pysim::bindings::bind_metric(m);
}
