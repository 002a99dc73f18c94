// Binding of hnsw::HnswIndex as pysim._core.HnswIndex (private; pysim/_hnsw.py wraps it).
//
// Every method that takes the index's lock releases the GIL first, even the O(1) ones: a
// thread holding the GIL while it waits for the lock could otherwise deadlock with an add
// whose progress callback or Ctrl-C check needs the GIL. Arrays arrive canonical (exact dtype,
// C-contiguous, .noconvert()); optional arrays come with a flag instead of None so nothing is
// ever converted silently. Outputs are allocated before the GIL is released.
// std::out_of_range (unknown id) becomes KeyError, as the contract says.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "bindings/numpy_utils.hpp"
#include "bindings/quant_state.hpp"
#include "hnsw/hnsw.hpp"

namespace pysim::bindings {

namespace {

using hnsw::HnswIndex;

std::size_t check_rows(const CArray<float>& x, const HnswIndex& ix, const char* name) {
    const auto [n, d] = matrix_shape(x, name);
    require(d == ix.dim(), std::string(name) + " must have " + std::to_string(ix.dim()) +
                               " columns (the index dimension)");
    return n;
}

const index_t* id_vector(const CArray<index_t>& ids, std::size_t n, const char* name) {
    require(ids.ndim() == 1 && static_cast<std::size_t>(ids.shape(0)) == n,
            std::string(name) + " must be a 1-D array of length " + std::to_string(n));
    return ids.data();
}

hnsw::Options options(int dim, Metric metric, int M, int ef_construction, std::size_t max_elements,
                      std::uint64_t seed, const std::string& quantization, std::int64_t refine) {
    require(dim >= 1, "dim must be >= 1");
    require(M >= 2 && M <= 32767, "M must be in [2, 32767]");
    require(ef_construction >= 1, "ef_construction must be >= 1");
    hnsw::Options opt;
    opt.dim = static_cast<std::size_t>(dim);
    opt.metric = metric;
    opt.M = static_cast<std::size_t>(M);
    opt.ef_construction = static_cast<std::size_t>(ef_construction);
    opt.max_elements = max_elements;
    opt.seed = seed;
    if (quantization == "rabitq") {
        // Float32 vectors plus neighbour codes in every record; every expanded vertex is
        // scored exactly, so there is nothing to re-rank.
        require(refine <= 0, "refine does not apply to quantization='rabitq'");
        opt.blocks = true;
    } else if (!quantization.empty()) {
        require(quant::parse_kind(quantization, opt.kind),
                "quantization must be None, 'f16', 'bf16', 'sq8', 'sq4' or 'rabitq'");
        opt.quantized = true;
        require(refine >= -1, "refine must be >= 0");
        opt.refine = refine < 0 ? hnsw::kAutoRefine : static_cast<std::size_t>(refine);
    } else {
        require(refine == 0, "refine needs a quantization");
    }
    return opt;
}

template <class Fn> void keyed(Fn&& fn) {
    try {
        py::gil_scoped_release nogil;
        fn();
    } catch (const std::out_of_range& e) {
        throw py::key_error(e.what());
    }
}

void add(HnswIndex& ix, const CArray<float>& x, const CArray<index_t>& ids, bool has_ids,
         int threads, const py::object& progress) {
    const std::size_t n = check_rows(x, ix, "X");
    const std::size_t nt = checked_threads(threads);
    const index_t* id_ptr = has_ids ? id_vector(ids, n, "ids") : nullptr;
    hnsw::Progress report;
    if (!progress.is_none()) {
        PyObject* cb = progress.ptr(); // borrowed: `progress` outlives the call
        report = [cb](std::size_t done, std::size_t total) {
            py::gil_scoped_acquire gil;
            try {
                py::handle fn(cb);
                fn(done, total);
            } catch (py::error_already_set&) {
                // A failing progress display must not abort the insertion.
            }
        };
    }
    const float* data = x.data();
    py::gil_scoped_release nogil;
    ix.add(data, n, id_ptr, nt, report);
}

py::tuple search(const HnswIndex& ix, const CArray<float>& q, int k, int ef, int threads,
                 const CArray<index_t>& allowed, bool has_filter, bool exact) {
    const std::size_t m = check_rows(q, ix, "Q");
    require(k >= 1, "k must be >= 1");
    require(ef >= 1, "ef must be >= 1");
    const std::size_t nt = checked_threads(threads);
    require(allowed.ndim() == 1, "filter must be a 1-D array of ids");
    const auto kk = static_cast<std::size_t>(k);
    py::array_t<float> dist({m, kk});
    py::array_t<index_t> ids({m, kk});
    const float* qp = q.data();
    const index_t* ap = allowed.data();
    const auto na = static_cast<std::size_t>(allowed.shape(0));
    float* dp = dist.mutable_data();
    index_t* ip = ids.mutable_data();
    {
        py::gil_scoped_release nogil;
        if (exact) {
            ix.exact_search(qp, m, kk, nt, dp, ip);
        } else {
            ix.search(qp, m, kk, static_cast<std::size_t>(ef), nt, has_filter, ap, na, dp, ip);
        }
    }
    return py::make_tuple(dist, ids);
}

template <class T> py::array_t<T> take(std::vector<T>& v) {
    return vector_to_array(std::move(v));
}

py::dict export_state(const HnswIndex& ix) {
    hnsw::State st;
    {
        py::gil_scoped_release nogil;
        st = ix.export_state();
    }
    py::dict out;
    out["n"] = st.n;
    out["entry"] = st.entry;
    out["max_level"] = st.max_level;
    out["next_id"] = st.next_id;
    out["rng"] = st.rng;
    out["codes"] = take(st.codes);
    out["levels"] = take(st.levels);
    out["status"] = take(st.status);
    out["labels"] = take(st.labels);
    out["counts0"] = take(st.counts0);
    out["links0"] = take(st.links0);
    out["upper_counts"] = take(st.upper_counts);
    out["upper_links"] = take(st.upper_links);
    out["free_slots"] = take(st.free_slots);
    if (st.quant)
        out["quant"] = state_dict(*st.quant);
    return out;
}

template <class T> std::vector<T> copy_flat(const py::array_t<T, py::array::c_style>& a) {
    return std::vector<T>(a.data(), a.data() + a.size());
}

std::unique_ptr<HnswIndex>
from_state(int dim, Metric metric, int M, int ef_construction, std::uint64_t seed,
           const std::string& quantization, std::int64_t refine, std::size_t n, std::int64_t entry,
           int max_level, index_t next_id, std::uint64_t rng, const CArray<float>& codes,
           const CArray<std::uint8_t>& levels, const CArray<std::uint8_t>& status,
           const CArray<index_t>& labels, const CArray<std::uint16_t>& counts0,
           const CArray<std::uint32_t>& links0, const CArray<std::uint16_t>& upper_counts,
           const CArray<std::uint32_t>& upper_links, const CArray<std::uint32_t>& free_slots,
           const py::object& quant) {
    require(dim >= 1 && M >= 2 && ef_construction >= 1, "invalid HNSW parameters");
    hnsw::Options opt = options(dim, metric, M, ef_construction, 0, seed, quantization, refine);
    require(opt.quantized == !quant.is_none(), "quantised state does not match quantization");
    hnsw::State st;
    st.n = n;
    st.entry = entry;
    st.max_level = max_level;
    st.next_id = next_id;
    st.rng = rng;
    st.codes = copy_flat(codes);
    st.levels = copy_flat(levels);
    st.status = copy_flat(status);
    st.labels = copy_flat(labels);
    st.counts0 = copy_flat(counts0);
    st.links0 = copy_flat(links0);
    st.upper_counts = copy_flat(upper_counts);
    st.upper_links = copy_flat(upper_links);
    st.free_slots = copy_flat(free_slots);
    if (opt.quantized)
        st.quant = store_state_from_dict(quant_options(opt), quant.cast<py::dict>());
    py::gil_scoped_release nogil;
    return HnswIndex::from_state(opt, st);
}

} // namespace

void bind_hnsw(py::module_& m) {
    using nogil = py::call_guard<py::gil_scoped_release>;
    py::class_<HnswIndex>(m, "HnswIndex")
        .def(py::init([](int dim, Metric metric, int M, int ef_construction,
                         std::size_t max_elements, std::uint64_t seed,
                         const std::string& quantization, std::int64_t refine) {
                 return std::make_unique<HnswIndex>(options(
                     dim, metric, M, ef_construction, max_elements, seed, quantization, refine));
             }),
             py::arg("dim"), py::arg("metric"), py::arg("M"), py::arg("ef_construction"),
             py::arg("max_elements"), py::arg("seed"), py::arg("quantization") = "",
             py::arg("refine") = 0)
        .def("add", &add, py::arg("X").noconvert(), py::arg("ids").noconvert(), py::arg("has_ids"),
             py::arg("threads"), py::arg("progress") = py::none())
        .def("search", &search, py::arg("Q").noconvert(), py::arg("k"), py::arg("ef"),
             py::arg("threads"), py::arg("allowed").noconvert(), py::arg("has_filter"),
             py::arg("exact") = false)
        .def(
            "remove",
            [](HnswIndex& ix, const CArray<index_t>& ids) {
                require(ids.ndim() == 1, "ids must be 1-D");
                const index_t* p = ids.data();
                const auto n = static_cast<std::size_t>(ids.shape(0));
                keyed([&] { ix.remove(p, n); });
            },
            py::arg("ids").noconvert())
        .def(
            "get_items",
            [](const HnswIndex& ix, const CArray<index_t>& ids) {
                require(ids.ndim() == 1, "ids must be 1-D");
                const auto n = static_cast<std::size_t>(ids.shape(0));
                py::array_t<float> out({n, ix.dim()});
                const index_t* p = ids.data();
                float* o = out.mutable_data();
                keyed([&] { ix.get_items(p, n, o); });
                return out;
            },
            py::arg("ids").noconvert())
        .def("contains", &HnswIndex::contains, py::arg("id"), nogil())
        .def("ids",
             [](const HnswIndex& ix) {
                 std::vector<index_t> v;
                 {
                     py::gil_scoped_release release;
                     v = ix.ids();
                 }
                 return vector_to_array(std::move(v));
             })
        .def("__len__", &HnswIndex::size, nogil())
        .def_property_readonly("dim", &HnswIndex::dim)
        .def_property_readonly("M", &HnswIndex::M)
        .def_property_readonly("ef_construction", &HnswIndex::ef_construction)
        .def_property_readonly("seed", &HnswIndex::seed)
        .def("capacity", &HnswIndex::capacity, nogil())
        .def("next_id", &HnswIndex::next_id, nogil())
        .def("memory_bytes", &HnswIndex::memory_bytes, nogil())
        .def("export_state", &export_state)
        .def_property_readonly("quantization",
                               [](const HnswIndex& ix) -> py::object {
                                   if (ix.blocks())
                                       return py::str("rabitq");
                                   if (!ix.quantized())
                                       return py::none();
                                   return py::str(quant::kind_name(ix.kind()));
                               })
        .def_property_readonly("refine",
                               [](const HnswIndex& ix) -> std::int64_t {
                                   return ix.refine() == hnsw::kAutoRefine
                                              ? -1
                                              : static_cast<std::int64_t>(ix.refine());
                               })
        .def(
            "seal_blocks",
            [](HnswIndex& ix, int threads) {
                const std::size_t nt = checked_threads(threads);
                py::gil_scoped_release release;
                ix.seal_blocks(nt);
            },
            py::arg("threads"))
        .def(
            "refit",
            [](HnswIndex& ix, int threads) {
                const std::size_t nt = checked_threads(threads);
                py::gil_scoped_release release;
                ix.refit(nt);
            },
            py::arg("threads"))
        .def("drift",
             [](const HnswIndex& ix) {
                 quant::DriftStats d;
                 {
                     py::gil_scoped_release release;
                     d = ix.drift();
                 }
                 return py::make_tuple(d.rows_at_fit, d.rows_since_fit, d.clipped_since_fit);
             })
        .def_static("from_state", &from_state, py::arg("dim"), py::arg("metric"), py::arg("M"),
                    py::arg("ef_construction"), py::arg("seed"), py::arg("quantization"),
                    py::arg("refine"), py::arg("n"), py::arg("entry"), py::arg("max_level"),
                    py::arg("next_id"), py::arg("rng"), py::arg("codes").noconvert(),
                    py::arg("levels").noconvert(), py::arg("status").noconvert(),
                    py::arg("labels").noconvert(), py::arg("counts0").noconvert(),
                    py::arg("links0").noconvert(), py::arg("upper_counts").noconvert(),
                    py::arg("upper_links").noconvert(), py::arg("free_slots").noconvert(),
                    py::arg("quant") = py::none());
}

} // namespace pysim::bindings
