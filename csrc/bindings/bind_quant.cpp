// Private bindings of the compressed-vector layer: the raw kernels (so tests can check each
// one, in each shape, against a float64 or exact-integer reference on every ISA, and benchmarks
// can time them without Python in the loop), the Quantizer (encode / decode / prepared-query
// distances) and the QuantStore. Users reach quantisation through HNSWIndex, not through these.
//
// Everything is validated here with require() (ValueError) because the callers are tests and
// the index wrapper, not users; arrays come in with .noconvert() in their exact dtypes. Every
// loop over rows runs with the GIL released, on outputs allocated beforehand.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "bindings/numpy_utils.hpp"
#include "quant/store.hpp"
#include "simd/dispatch.hpp"

namespace pysim::bindings {

namespace {

using quant::Kind;
using quant::Mode;
using quant::Space;

// ---- raw kernels ----------------------------------------------------------------------

struct KernelSpec {
    const char* name;
    char query;      // 'f' float32, 'b' int8, 'B' uint8 (a code), 'H' uint16 (bf16)
    bool int_result; // int32 output
    bool scale;      // reads the per-dimension scale
    Kind layout;     // code layout of the codes (and of a code query)
};

const KernelSpec kSpecs[] = {
    {"f16_dot", 'f', false, false, Kind::f16},        {"f16_l2sq", 'f', false, false, Kind::f16},
    {"bf16_dot", 'f', false, false, Kind::bf16},      {"bf16_l2sq", 'f', false, false, Kind::bf16},
    {"bf16_dot_bf16", 'H', false, false, Kind::bf16}, {"u8_dot", 'f', false, false, Kind::sq8},
    {"u8_l2sq", 'f', false, true, Kind::sq8},         {"u4_dot", 'f', false, false, Kind::sq4},
    {"u4_l2sq", 'f', false, true, Kind::sq4},         {"u8_dot_i8", 'b', true, false, Kind::sq8},
    {"u4_dot_i8", 'b', true, false, Kind::sq4},       {"u8_l2sq_u8", 'B', true, false, Kind::sq8},
    {"u4_l2sq_u4", 'B', true, false, Kind::sq4},
};

const KernelSpec& spec_of(const std::string& name) {
    for (const KernelSpec& s : kSpecs)
        if (name == s.name)
            return s;
    throw std::invalid_argument("unknown quantized kernel '" + name + "'");
}

// Test-only name-to-slot maps, one specialisation per (query, result) type pair of the kernel
// table (duplicates pairs their if-chains by shape).
template <typename Q, typename R>
const simd::CodeKernel<Q, R>& kernel_of(const simd::QuantKernels& k, const std::string& name);

template <>
const simd::CodeKernel<float, float>& kernel_of(const simd::QuantKernels& k, const std::string& n) {
    if (n == "f16_dot")
        return k.f16_dot;
    if (n == "f16_l2sq")
        return k.f16_l2sq;
    if (n == "bf16_dot")
        return k.bf16_dot;
    if (n == "bf16_l2sq")
        return k.bf16_l2sq;
    if (n == "u8_dot")
        return k.u8_dot;
    if (n == "u8_l2sq")
        return k.u8_l2sq;
    if (n == "u4_dot")
        return k.u4_dot;
    return k.u4_l2sq;
}
template <>
const simd::CodeKernel<std::int8_t, std::int32_t>& kernel_of(const simd::QuantKernels& k,
                                                             const std::string& n) {
    return n == "u8_dot_i8" ? k.u8_dot_i8 : k.u4_dot_i8;
}
template <>
const simd::CodeKernel<std::uint8_t, std::int32_t>& kernel_of(const simd::QuantKernels& k,
                                                              const std::string& n) {
    return n == "u8_l2sq_u8" ? k.u8_l2sq_u8 : k.u4_l2sq_u4;
}
template <>
const simd::CodeKernel<std::uint16_t, float>& kernel_of(const simd::QuantKernels& k,
                                                        const std::string&) {
    return k.bf16_dot_bf16;
}

struct KernelCall {
    std::size_t dim, n, stride;
    const std::uint8_t* codes;
    const float* scale;
    std::vector<const std::uint8_t*> ptrs; // batch form
    int form;                              // 0 pair, 1 many, 2 batch
    std::size_t repeats;
};

template <typename Q, typename R>
void run_kernel(const simd::CodeKernel<Q, R>& k, const Q* q, const KernelCall& c, R* out) {
    for (std::size_t rep = 0; rep < c.repeats; ++rep) {
        if (c.form == 0) {
            for (std::size_t i = 0; i < c.n; ++i)
                out[i] = k.pair.fn(q, c.scale, c.codes + i * c.stride, c.dim);
        } else if (c.form == 1) {
            k.many.fn(q, c.scale, c.codes, c.stride, c.n, c.dim, out);
        } else {
            k.batch.fn(q, c.scale, c.ptrs.data(), c.n, c.dim, out);
        }
    }
}

// The float32 kernels under the same harness (codes = float32 rows as bytes), for comparison.
void run_f32(const simd::KernelTable& t, bool dot, const float* q, const KernelCall& c,
             float* out) {
    const auto pair = dot ? t.f32.dot.fn : t.f32.l2sq.fn;
    const auto many = dot ? t.f32.dot_many.fn : t.f32.l2sq_many.fn;
    for (std::size_t rep = 0; rep < c.repeats; ++rep) {
        if (c.form == 1 && c.stride == c.dim * sizeof(float)) {
            many(q, reinterpret_cast<const float*>(c.codes), c.n, c.dim, out);
        } else {
            for (std::size_t i = 0; i < c.n; ++i) {
                const std::uint8_t* p = c.form == 2 ? c.ptrs[i] : c.codes + i * c.stride;
                out[i] = pair(q, reinterpret_cast<const float*>(p), c.dim);
            }
        }
    }
}

py::array quant_kernel(const std::string& name, const py::array& query,
                       const CArray<std::uint8_t>& codes, std::size_t dim, py::object scale,
                       const std::string& form, py::object order, std::size_t repeats) {
    require(dim >= 1, "dim must be >= 1");
    require(codes.ndim() == 2, "codes must be a 2-D uint8 array");
    require(repeats >= 1, "repeats must be >= 1");
    KernelCall c;
    c.dim = dim;
    c.n = static_cast<std::size_t>(codes.shape(0));
    c.stride = static_cast<std::size_t>(codes.shape(1));
    c.codes = codes.data();
    c.scale = nullptr;
    c.repeats = repeats;
    c.form = form == "pair" ? 0 : form == "many" ? 1 : form == "batch" ? 2 : -1;
    require(c.form >= 0, "form must be 'pair', 'many' or 'batch'");
    if (c.form == 2) {
        std::vector<std::int64_t> ids;
        if (order.is_none()) {
            for (std::size_t i = 0; i < c.n; ++i)
                ids.push_back(static_cast<std::int64_t>(i));
        } else {
            auto o = order.cast<CArray<std::int64_t>>();
            require(o.ndim() == 1, "order must be 1-D");
            ids.assign(o.data(), o.data() + o.shape(0));
        }
        for (std::int64_t id : ids) {
            require(id >= 0 && static_cast<std::size_t>(id) < c.n, "order: index out of range");
            c.ptrs.push_back(c.codes + static_cast<std::size_t>(id) * c.stride);
        }
        c.n = ids.size();
    }
    const simd::KernelTable& table = simd::active();
    const simd::QuantKernels& k = simd::quant_for(table);

    if (name == "f32_dot" || name == "f32_l2sq") {
        auto q = py::cast<CArray<float>>(query);
        require(static_cast<std::size_t>(q.size()) == dim, "query must hold dim float32");
        require(c.stride >= dim * sizeof(float), "codes rows are too short for dim floats");
        py::array_t<float> out(c.n);
        const float* qp = q.data();
        float* o = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            run_f32(table, name == "f32_dot", qp, c, o);
        }
        return std::move(out);
    }

    const KernelSpec& s = spec_of(name);
    require(c.stride >= quant::code_bytes(s.layout, dim), "codes rows are too short for dim");
    CArray<float> sc;
    if (s.scale) {
        require(!scale.is_none(), "this kernel needs the per-dimension scale");
        sc = scale.cast<CArray<float>>();
        require(static_cast<std::size_t>(sc.size()) == dim, "scale must hold dim float32");
        c.scale = sc.data();
    }
    if (s.int_result)
        require(dim <= quant::kMaxScalarDim, "dim too large for exact int32 sums");

    auto launch = [&](auto tag, std::size_t qlen, auto result_tag) -> py::array {
        using Q = decltype(tag);
        using R = decltype(result_tag);
        require(py::isinstance<py::array_t<Q>>(query), "query has the wrong dtype");
        auto q = py::cast<CArray<Q>>(query);
        require(static_cast<std::size_t>(q.size()) == qlen, "query has the wrong length");
        py::array_t<R> out(c.n);
        const Q* qp = q.data();
        R* o = out.mutable_data();
        const auto& kern = kernel_of<Q, R>(k, name);
        {
            py::gil_scoped_release nogil;
            run_kernel<Q, R>(kern, qp, c, o);
        }
        return std::move(out);
    };
    switch (s.query) {
    case 'f':
        return launch(float{}, dim, float{});
    case 'H':
        return launch(std::uint16_t{}, dim, float{});
    case 'b':
        return launch(std::int8_t{}, dim, std::int32_t{});
    default:
        return launch(std::uint8_t{}, quant::code_bytes(s.layout, dim), std::int32_t{});
    }
}

// FastScan over one batch of 32 codes: codes (n_pairs, 32) uint8, lut (n_pairs, 64) uint8.
py::array_t<std::uint32_t> fastscan32(const CArray<std::uint8_t>& codes,
                                      const CArray<std::uint8_t>& lut, int repeats) {
    require(codes.ndim() == 2 && codes.shape(1) == 32, "codes must have shape (n_pairs, 32)");
    require(lut.ndim() == 2 && lut.shape(1) == 64 && lut.shape(0) == codes.shape(0),
            "lut must have shape (n_pairs, 64)");
    require(repeats >= 1, "repeats must be >= 1");
    const simd::FastScanFn fn = simd::quant_for(simd::active()).fastscan32.fn;
    py::array_t<std::uint32_t> out(32);
    const std::uint8_t* c = codes.data();
    const std::uint8_t* t = lut.data();
    const auto n = static_cast<std::size_t>(codes.shape(0));
    std::uint32_t* o = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        for (int r = 0; r < repeats; ++r)
            fn(c, t, n, o);
    }
    return out;
}

py::array_t<std::uint16_t> to_half(const std::string& which, const CArray<float>& x) {
    const simd::QuantKernels& k = simd::quant_for(simd::active());
    require(which == "f16" || which == "bf16", "which must be 'f16' or 'bf16'");
    py::array_t<std::uint16_t> out(x.size());
    const float* in = x.data();
    std::uint16_t* o = out.mutable_data();
    const std::size_t n = static_cast<std::size_t>(x.size());
    {
        py::gil_scoped_release nogil;
        (which == "f16" ? k.f32_to_f16.fn : k.f32_to_bf16.fn)(in, o, n);
    }
    return out;
}

py::array_t<float> from_half(const std::string& which, const CArray<std::uint16_t>& h) {
    const simd::QuantKernels& k = simd::quant_for(simd::active());
    require(which == "f16" || which == "bf16", "which must be 'f16' or 'bf16'");
    py::array_t<float> out(h.size());
    const std::uint16_t* in = h.data();
    float* o = out.mutable_data();
    const std::size_t n = static_cast<std::size_t>(h.size());
    {
        py::gil_scoped_release nogil;
        (which == "f16" ? k.f16_to_f32.fn : k.bf16_to_f32.fn)(in, o, n);
    }
    return out;
}

} // namespace

void add_quant_kernel_info(py::dict& out, const simd::KernelTable& table) {
    const simd::QuantKernels& k = simd::quant_for(table);
    auto put = [&](const char* name, simd::Isa isa) { out[py::str(name)] = simd::isa_name(isa); };
    put("f32_to_f16", k.f32_to_f16.isa);
    put("f32_to_bf16", k.f32_to_bf16.isa);
    put("f16_to_f32", k.f16_to_f32.isa);
    put("bf16_to_f32", k.bf16_to_f32.isa);
    auto code = [&](const std::string& name, const auto& kern) {
        out[py::str(name)] = simd::isa_name(kern.pair.isa);
        out[py::str(name + "_many")] = simd::isa_name(kern.many.isa);
        out[py::str(name + "_batch")] = simd::isa_name(kern.batch.isa);
    };
    code("f16_dot", k.f16_dot);
    code("f16_l2sq", k.f16_l2sq);
    code("bf16_dot", k.bf16_dot);
    code("bf16_l2sq", k.bf16_l2sq);
    code("bf16_dot_bf16", k.bf16_dot_bf16);
    code("u8_dot", k.u8_dot);
    code("u8_l2sq", k.u8_l2sq);
    code("u4_dot", k.u4_dot);
    code("u4_l2sq", k.u4_l2sq);
    code("u8_dot_i8", k.u8_dot_i8);
    code("u4_dot_i8", k.u4_dot_i8);
    code("u8_l2sq_u8", k.u8_l2sq_u8);
    code("u4_l2sq_u4", k.u4_l2sq_u4);
    put("fastscan32", k.fastscan32.isa);
}

void bind_quant_store(py::module_& m); // bind_quant_store.cpp

void bind_quant(py::module_& m) {
    m.def("_quant_kernel", &quant_kernel, py::arg("name"), py::arg("query"),
          py::arg("codes").noconvert(), py::arg("dim"), py::arg("scale") = py::none(),
          py::arg("form") = "pair", py::arg("order") = py::none(), py::arg("repeats") = 1,
          "Runs one compressed-code kernel (tests and benchmarks).");
    m.def("_fastscan32", &fastscan32, py::arg("codes").noconvert(), py::arg("lut").noconvert(),
          py::arg("repeats") = 1, "Runs the FastScan kernel on one batch (tests, benchmarks).");
    m.def("_to_half", &to_half, py::arg("which"), py::arg("x").noconvert());
    m.def("_from_half", &from_half, py::arg("which"), py::arg("h").noconvert());
    bind_quant_store(m);
}

} // namespace pysim::bindings
