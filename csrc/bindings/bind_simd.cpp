// simd_info, and the private hooks tests and benchmarks use to pin a level.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "simd/dispatch.hpp"

namespace pysim::bindings {

namespace py = pybind11;
void add_quant_kernel_info(py::dict& out, const simd::KernelTable& table); // bind_quant.cpp
using simd::isa_name;

namespace {

template <typename T>
void add_kernels(py::dict& out, const simd::Kernels<T>& k, const char* suffix) {
    const std::string s = suffix;
    out[py::str("dot_" + s)] = isa_name(k.dot.isa);
    out[py::str("l2sq_" + s)] = isa_name(k.l2sq.isa);
    out[py::str("norm2_" + s)] = isa_name(k.norm2.isa);
    out[py::str("dot_many_" + s)] = isa_name(k.dot_many.isa);
    out[py::str("l2sq_many_" + s)] = isa_name(k.l2sq_many.isa);
    out[py::str("l2sq_panel_" + s)] = isa_name(k.l2sq_panel.isa);
    out[py::str("dot_norm_many_" + s)] = isa_name(k.dot_norm_many.isa);
    out[py::str("norms_" + s)] = isa_name(k.norms.isa);
    out[py::str("pack_" + s)] = isa_name(k.pack.isa);
    out[py::str("tile_" + s)] = isa_name(k.tile.isa);
    out[py::str("scan_lt_" + s)] = isa_name(k.scan_lt.isa);
    out[py::str("gram_" + s)] = isa_name(k.gram.isa);
}

py::list names(const std::vector<simd::Isa>& isas) {
    py::list out;
    for (simd::Isa isa : isas)
        out.append(isa_name(isa));
    return out;
}

} // namespace

void bind_simd(py::module_& m) {
    m.def(
        "simd_info",
        [] {
            const simd::KernelTable& t = simd::active();
            py::dict info;
            info["isa"] = isa_name(t.isa);
            info["detected"] = isa_name(simd::detected_isa());
            info["compiled"] = names(simd::compiled_isas());
            info["available"] = names(simd::runnable_isas());
            const std::string req = simd::env_request();
            info["requested"] = req.empty() ? py::object(py::none()) : py::object(py::str(req));
            const std::string note = simd::override_note();
            info["override"] = note.empty() ? py::object(py::none()) : py::object(py::str(note));
            py::dict kernels;
            add_kernels(kernels, t.f32, "f32");
            add_kernels(kernels, t.f64, "f64");
            kernels["widen_dot_f32_f64"] = isa_name(t.f32_f64.dot.isa);
            kernels["widen_axpy_f32_f64"] = isa_name(t.f32_f64.axpy.isa);
            kernels["shifted_exp_f64"] = isa_name(t.shifted_exp.isa);
            add_quant_kernel_info(kernels, t);
            info["kernels"] = kernels;
            return info;
        },
        "Which instruction set each kernel dispatches to.");
    m.def(
        "_set_isa",
        [](const std::string& name) {
            simd::Isa isa;
            return simd::parse_isa(name, isa) && simd::set_active(isa);
        },
        py::arg("name"),
        "Switch the active kernel level (tests, benchmarks); False if unavailable.");
    m.def("_available_isas", [] { return names(simd::runnable_isas()); });
}

} // namespace pysim::bindings
