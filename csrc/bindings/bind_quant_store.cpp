// Private bindings of quant::Quantizer and quant::QuantStore (see bind_quant.cpp for the why).
// Tests use both classes to check round-trip bounds, prepared-query distances, re-fitting and
// state.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings/numpy_utils.hpp"
#include "bindings/quant_state.hpp"
#include "quant/store.hpp"
#include "simd/dispatch.hpp"

namespace pysim::bindings {

namespace {

template <typename T> std::vector<T> vec_of(const py::dict& d, const char* key) {
    auto a = d[key].cast<CArray<T>>();
    return std::vector<T>(a.data(), a.data() + a.size());
}

using quant::Kind;
using quant::Mode;
using quant::Quantizer;
using quant::QuantStore;
using quant::Space;

Kind kind_arg(const std::string& s) {
    Kind k;
    require(quant::parse_kind(s, k), "kind must be 'f16', 'bf16', 'sq8' or 'sq4'");
    return k;
}
Space space_arg(const std::string& s) {
    require(s == "l2" || s == "ip", "space must be 'l2' or 'ip'");
    return s == "l2" ? Space::l2 : Space::ip;
}
Mode mode_arg(const std::string& s) {
    require(s == "asymmetric" || s == "symmetric", "mode must be 'asymmetric' or 'symmetric'");
    return s == "asymmetric" ? Mode::asymmetric : Mode::symmetric;
}
const char* form_name(quant::Form f) {
    switch (f) {
    case quant::Form::plain:
        return "plain";
    case quant::Form::affine:
        return "affine";
    case quant::Form::sym:
        return "sym";
    case quant::Form::sym_trailer:
        return "sym_trailer";
    case quant::Form::half:
        return "half";
    }
    return "unknown";
}

std::size_t rows_of(const CArray<float>& x, std::size_t dim, const char* name) {
    const auto [n, d] = matrix_shape(x, name);
    require(d == dim, std::string(name) + " must have dim columns");
    return n;
}

template <typename T> py::array_t<T> matrix(std::size_t n, std::size_t d) {
    return py::array_t<T>({n, d});
}

std::vector<std::uint32_t> slots_arg(const CArray<std::int64_t>& s, std::size_t size) {
    require(s.ndim() == 1, "slots must be 1-D");
    std::vector<std::uint32_t> out(static_cast<std::size_t>(s.shape(0)));
    for (std::size_t i = 0; i < out.size(); ++i) {
        require(s.data()[i] >= 0 && static_cast<std::size_t>(s.data()[i]) < size,
                "slots: index out of range");
        out[i] = static_cast<std::uint32_t>(s.data()[i]);
    }
    return out;
}

// (m, n) distances from m queries to n records: which = search | decoded | exact (store only).
template <class Fn>
py::array_t<float> query_matrix(const CArray<float>& q, std::size_t dim, std::size_t n,
                                const Fn& fn) {
    const std::size_t m = rows_of(q, dim, "queries");
    py::array_t<float> out = matrix<float>(m, n);
    const float* qp = q.data();
    float* o = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        const simd::KernelTable& table = simd::active();
        quant::Query query;
        for (std::size_t i = 0; i < m; ++i)
            fn(qp + i * dim, table, query, o + i * n);
    }
    return out;
}

// (m, n) distances from m queries to n records in the search or the decoded form, through the
// batch shape or one record at a time.
py::array_t<float> quantizer_distances(const Quantizer& qz, const CArray<float>& q,
                                       const CArray<std::uint8_t>& rec, const std::string& which,
                                       const std::string& form) {
    const auto [n, b] = matrix_shape(rec, "records");
    require(b == qz.record_bytes(), "records must have record_bytes columns");
    require(which == "search" || which == "decoded", "which must be 'search' or 'decoded'");
    require(form == "pair" || form == "batch", "form must be 'pair' or 'batch'");
    require(qz.fitted(), "distances: the ranges are not fitted");
    const std::uint8_t* base = rec.data();
    const bool search = which == "search", batch = form == "batch";
    std::vector<const std::uint8_t*> ptrs(n);
    for (std::size_t j = 0; j < n; ++j)
        ptrs[j] = base + j * b;
    auto row = [&](const float* qr, const simd::KernelTable& t, quant::Query& query, float* o) {
        qz.prepare(qr, t, query);
        if (batch && search) {
            query.distances(ptrs.data(), n, o);
        } else if (batch) {
            query.decoded_distances(ptrs.data(), n, o);
        } else {
            for (std::size_t j = 0; j < n; ++j)
                o[j] = search ? query.distance(ptrs[j]) : query.decoded_distance(ptrs[j]);
        }
    };
    return query_matrix(q, qz.dim(), n, row);
}

// (m, n) distances from m queries to n slots: search (batch shape), pair (one slot at a time),
// refine (exact, or decoded without the float32 copy) or decoded.
py::array_t<float> store_distances(const QuantStore& s, const CArray<float>& q,
                                   const CArray<std::int64_t>& slots, const std::string& which) {
    require(which == "search" || which == "pair" || which == "refine" || which == "decoded",
            "which must be 'search', 'pair', 'refine' or 'decoded'");
    require(s.fitted() || s.size() == 0, "distances: the ranges are not fitted");
    const std::vector<std::uint32_t> sl = slots_arg(slots, s.size());
    auto row = [&](const float* qr, const simd::KernelTable& t, quant::Query& query, float* o) {
        s.prepare(qr, t, query);
        if (which == "search") {
            s.distances(query, sl.data(), sl.size(), o);
        } else if (which == "refine") {
            s.refine(query, sl.data(), sl.size(), o);
        } else {
            for (std::size_t j = 0; j < sl.size(); ++j) {
                o[j] = which == "pair" ? s.distance(query, sl[j])
                                       : query.decoded_distance(s.record(sl[j]));
            }
        }
    };
    return query_matrix(q, s.dim(), sl.size(), row);
}

void bind_quantizer(py::module_& m) {
    py::class_<Quantizer>(m, "_Quantizer")
        .def(py::init([](const std::string& kind, std::size_t dim, const std::string& space,
                         bool normalize, const std::string& mode) {
                 return Quantizer(kind_arg(kind), dim, space_arg(space), normalize, mode_arg(mode));
             }),
             py::arg("kind"), py::arg("dim"), py::arg("space") = "l2", py::arg("normalize") = false,
             py::arg("mode") = "asymmetric")
        .def_property_readonly("code_bytes", &Quantizer::code_bytes)
        .def_property_readonly("record_bytes", &Quantizer::record_bytes)
        .def_property_readonly("trailer_offset",
                               [](const Quantizer& q) -> py::object {
                                   if (!q.has_trailer())
                                       return py::none();
                                   return py::int_(q.trailer_offset());
                               })
        .def_property_readonly("levels", &Quantizer::levels)
        .def_property_readonly("fitted", &Quantizer::fitted)
        .def_property_readonly(
            "lo", [](const Quantizer& q) { return vector_to_array(std::vector<float>(q.lo())); })
        .def_property_readonly(
            "step",
            [](const Quantizer& q) { return vector_to_array(std::vector<float>(q.step())); })
        .def_property_readonly("hi", [](const Quantizer& q) { return vector_to_array(q.hi()); })
        .def(
            "fit",
            [](Quantizer& q, const CArray<float>& x, double clip, int threads) {
                const std::size_t n = rows_of(x, q.dim(), "X");
                const std::size_t nt = checked_threads(threads);
                const float* p = x.data();
                py::gil_scoped_release nogil;
                q.fit(p, n, clip, nt);
            },
            py::arg("X").noconvert(), py::arg("clip") = 0.0, py::arg("threads") = 1)
        .def(
            "set_ranges",
            [](Quantizer& q, const CArray<float>& lo, const CArray<float>& hi) {
                require(static_cast<std::size_t>(lo.size()) == q.dim() &&
                            static_cast<std::size_t>(hi.size()) == q.dim(),
                        "lo and hi must hold dim values");
                q.set_ranges(lo.data(), hi.data());
            },
            py::arg("lo").noconvert(), py::arg("hi").noconvert())
        .def(
            "check_rows",
            [](const Quantizer& q, const CArray<float>& x) {
                q.check_rows(x.data(), rows_of(x, q.dim(), "X"));
            },
            py::arg("X").noconvert())
        .def(
            "count_clipped",
            [](const Quantizer& q, const CArray<float>& x) {
                return q.count_clipped(x.data(), rows_of(x, q.dim(), "X"));
            },
            py::arg("X").noconvert())
        .def(
            "encode",
            [](const Quantizer& q, const CArray<float>& x) {
                require(q.fitted(), "encode: the ranges are not fitted");
                const std::size_t n = rows_of(x, q.dim(), "X");
                auto out = matrix<std::uint8_t>(n, q.record_bytes());
                const float* p = x.data();
                std::uint8_t* o = out.mutable_data();
                std::size_t clipped = 0;
                {
                    py::gil_scoped_release nogil;
                    const simd::QuantKernels& k = simd::quant_for(simd::active());
                    std::vector<float> scratch(q.dim());
                    for (std::size_t i = 0; i < n; ++i)
                        clipped +=
                            q.encode(p + i * q.dim(), o + i * q.record_bytes(), scratch.data(), k);
                }
                return py::make_tuple(out, clipped);
            },
            py::arg("X").noconvert())
        .def(
            "decode",
            [](const Quantizer& q, const CArray<std::uint8_t>& rec) {
                const auto [n, b] = matrix_shape(rec, "records");
                require(b == q.record_bytes(), "records must have record_bytes columns");
                auto out = matrix<float>(n, q.dim());
                const std::uint8_t* p = rec.data();
                float* o = out.mutable_data();
                {
                    py::gil_scoped_release nogil;
                    const simd::QuantKernels& k = simd::quant_for(simd::active());
                    for (std::size_t i = 0; i < n; ++i)
                        q.decode(p + i * b, o + i * q.dim(), k);
                }
                return out;
            },
            py::arg("records").noconvert())
        .def("distances", &quantizer_distances, py::arg("queries").noconvert(),
             py::arg("records").noconvert(), py::arg("which") = "search", py::arg("form") = "batch")
        .def(
            "prepared",
            [](const Quantizer& qz, const CArray<float>& q) {
                require(static_cast<std::size_t>(q.size()) == qz.dim(), "query must hold dim");
                require(qz.fitted(), "prepared: the ranges are not fitted");
                quant::Query query;
                qz.prepare(q.data(), simd::active(), query);
                py::dict d;
                d["form"] = form_name(query.form);
                d["sigma"] = query.sigma;
                d["t"] = vector_to_array(std::vector<std::int8_t>(query.t));
                d["normalised"] = vector_to_array(std::vector<float>(query.normalised));
                return d;
            },
            py::arg("query").noconvert());
}

void bind_store(py::module_& m) {
    py::class_<QuantStore>(m, "_QuantStore")
        .def(py::init([](const std::string& kind, std::size_t dim, const std::string& space,
                         bool normalize, const std::string& mode, bool keep_full, double clip) {
                 quant::StoreOptions o;
                 o.kind = kind_arg(kind);
                 o.dim = dim;
                 o.space = space_arg(space);
                 o.normalize = normalize;
                 o.mode = mode_arg(mode);
                 o.keep_full = keep_full;
                 o.clip = clip;
                 return std::make_unique<QuantStore>(o);
             }),
             py::arg("kind"), py::arg("dim"), py::arg("space") = "l2", py::arg("normalize") = false,
             py::arg("mode") = "asymmetric", py::arg("keep_full") = true, py::arg("clip") = 0.0)
        .def("__len__", &QuantStore::size)
        .def_property_readonly("capacity", &QuantStore::capacity)
        .def_property_readonly("stride", &QuantStore::stride)
        .def_property_readonly("fitted", &QuantStore::fitted)
        .def_property_readonly("memory_bytes", &QuantStore::memory_bytes)
        .def_property_readonly("lo",
                               [](const QuantStore& s) {
                                   return vector_to_array(std::vector<float>(s.quantizer().lo()));
                               })
        .def_property_readonly("step",
                               [](const QuantStore& s) {
                                   return vector_to_array(std::vector<float>(s.quantizer().step()));
                               })
        .def_property_readonly("drift",
                               [](const QuantStore& s) {
                                   const quant::DriftStats d = s.drift();
                                   return py::make_tuple(d.rows_at_fit, d.rows_since_fit,
                                                         d.clipped_since_fit);
                               })
        .def(
            "append",
            [](QuantStore& s, const CArray<float>& x, int threads) {
                const std::size_t n = rows_of(x, s.dim(), "X");
                const std::size_t nt = checked_threads(threads);
                const float* p = x.data();
                py::gil_scoped_release nogil;
                return s.append(p, n, nt);
            },
            py::arg("X").noconvert(), py::arg("threads") = 1)
        .def(
            "set_rows",
            [](QuantStore& s, const CArray<std::int64_t>& slots, const CArray<float>& x,
               int threads) {
                const std::size_t n = rows_of(x, s.dim(), "X");
                std::vector<std::uint32_t> sl = slots_arg(slots, s.size());
                require(sl.size() == n, "slots and X must have the same length");
                s.check_rows(x.data(), n);
                const std::size_t nt = checked_threads(threads);
                const float* p = x.data();
                py::gil_scoped_release nogil;
                s.set_rows(sl.data(), 0, p, n, nt);
            },
            py::arg("slots").noconvert(), py::arg("X").noconvert(), py::arg("threads") = 1)
        .def(
            "refit",
            [](QuantStore& s, py::object extra, int threads) {
                CArray<float> e;
                std::size_t n = 0;
                if (!extra.is_none()) {
                    e = extra.cast<CArray<float>>();
                    n = rows_of(e, s.dim(), "extra");
                }
                const float* p = n ? e.data() : nullptr;
                const std::size_t nt = checked_threads(threads);
                py::gil_scoped_release nogil;
                s.refit(p, n, nt);
            },
            py::arg("extra") = py::none(), py::arg("threads") = 1)
        .def(
            "count_clipped",
            [](const QuantStore& s, const CArray<float>& x) {
                return s.count_clipped(x.data(), rows_of(x, s.dim(), "X"));
            },
            py::arg("X").noconvert())
        .def("distances", &store_distances, py::arg("queries").noconvert(),
             py::arg("slots").noconvert(), py::arg("which") = "search")
        .def(
            "slot_distances",
            [](const QuantStore& s, std::int64_t from, const CArray<std::int64_t>& slots) {
                std::vector<std::uint32_t> sl = slots_arg(slots, s.size());
                require(from >= 0 && static_cast<std::size_t>(from) < s.size(),
                        "from: slot out of range");
                py::array_t<float> out(sl.size());
                float* o = out.mutable_data();
                py::gil_scoped_release nogil;
                quant::Query query;
                s.prepare_slot(static_cast<std::size_t>(from), simd::active(), query);
                s.distances(query, sl.data(), sl.size(), o);
                return out;
            },
            py::arg("from_slot"), py::arg("slots").noconvert())
        .def(
            "decode",
            [](const QuantStore& s, const CArray<std::int64_t>& slots) {
                std::vector<std::uint32_t> sl = slots_arg(slots, s.size());
                auto out = matrix<float>(sl.size(), s.dim());
                float* o = out.mutable_data();
                py::gil_scoped_release nogil;
                for (std::size_t i = 0; i < sl.size(); ++i)
                    s.decode(sl[i], o + i * s.dim());
                return out;
            },
            py::arg("slots").noconvert())
        .def("get_state", [](const QuantStore& s) { return state_dict(s.export_state()); })
        .def_static(
            "from_state",
            [](const std::string& kind, std::size_t dim, const std::string& space, bool normalize,
               const std::string& mode, bool keep_full, double clip, const py::dict& d) {
                const quant::StoreOptions opt{
                    kind_arg(kind), dim, space_arg(space), normalize, mode_arg(mode),
                    keep_full,      clip};
                return QuantStore::from_state(store_state_from_dict(opt, d));
            },
            py::arg("kind"), py::arg("dim"), py::arg("space"), py::arg("normalize"),
            py::arg("mode"), py::arg("keep_full"), py::arg("clip"), py::arg("state"));
}

} // namespace

py::dict state_dict(const quant::StoreState& st) {
    py::dict d;
    d["n"] = st.n;
    d["lo"] = vector_to_array(std::vector<float>(st.lo));
    d["step"] = vector_to_array(std::vector<float>(st.step));
    d["seen_lo"] = vector_to_array(std::vector<float>(st.seen_lo));
    d["seen_hi"] = vector_to_array(std::vector<float>(st.seen_hi));
    d["codes"] = vector_to_array(std::vector<std::uint8_t>(st.codes));
    d["full"] = vector_to_array(std::vector<float>(st.full));
    d["drift"] =
        py::make_tuple(st.drift.rows_at_fit, st.drift.rows_since_fit, st.drift.clipped_since_fit);
    return d;
}

quant::StoreState store_state_from_dict(const quant::StoreOptions& opt, const py::dict& d) {
    quant::StoreState st;
    st.options = opt;
    st.n = d["n"].cast<std::size_t>();
    st.lo = vec_of<float>(d, "lo");
    st.step = vec_of<float>(d, "step");
    st.seen_lo = vec_of<float>(d, "seen_lo");
    st.seen_hi = vec_of<float>(d, "seen_hi");
    st.codes = vec_of<std::uint8_t>(d, "codes");
    st.full = vec_of<float>(d, "full");
    auto dr = d["drift"].cast<py::tuple>();
    require(dr.size() == 3, "drift must hold three counts");
    st.drift = {dr[0].cast<std::size_t>(), dr[1].cast<std::size_t>(), dr[2].cast<std::size_t>()};
    return st;
}

void bind_quant_store(py::module_& m) {
    bind_quantizer(m);
    bind_store(m);
}

} // namespace pysim::bindings
