// Binding of hnsw::HnswIndex as pysim._core.HnswIndex (private; pysim/_hnsw.py wraps it).
//
// Every method that takes the index's lock releases the GIL first, even the O(1) ones: a
// thread holding the GIL while it waits for the lock could otherwise deadlock with an add
// whose progress callback or Ctrl-C check needs the GIL. Arrays arrive canonical (exact dtype,
// C-contiguous, .noconvert()); optional arguments are keywords defaulting to None (no filter,
// default ids, no quantization), and exact search is its own function. The state crosses as
// one HnswState object. Outputs are allocated before the GIL is released.
// std::out_of_range (unknown id) becomes KeyError, as the contract says.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <pybind11/stl.h>

#include <memory>
#include <optional>
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
                      std::uint64_t seed, const std::optional<std::string>& quantization,
                      const std::optional<std::int64_t>& refine) {
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
    if (quantization && *quantization == "rabitq") {
        // Float32 vectors plus neighbour codes in every record; every expanded vertex is
        // scored exactly, so there is nothing to re-rank.
        require(!refine || *refine == 0, "refine does not apply to quantization='rabitq'");
        opt.blocks = true;
    } else if (quantization) {
        require(quant::parse_kind(*quantization, opt.kind),
                "quantization must be None, 'f16', 'bf16', 'sq8', 'sq4' or 'rabitq'");
        opt.quantized = true;
        require(!refine || *refine >= 0, "refine must be None or >= 0");
        opt.refine = refine ? static_cast<std::size_t>(*refine) : hnsw::kAutoRefine;
    } else {
        require(!refine || *refine == 0, "refine needs a quantization");
    }
    return opt;
}

/// An exported or importable index state as one object: the scalars of hnsw::State and its
/// arrays as numpy arrays (moved out of the core on export, no copy), plus the quantised
/// store's arrays as a dict (their layout depends on the store options, known at import).
struct StateBox {
    std::size_t n = 0;
    std::int64_t entry = -1;
    int max_level = -1;
    std::uint64_t next_id = 0;
    std::uint64_t rng = 0;
    py::object codes, levels, status, labels, counts0, links0, upper_counts, upper_links,
        free_slots;
    py::object quant = py::none();
};

template <class T> std::vector<T> copy_array(const py::object& a, const char* name) {
    require(py::isinstance<py::array_t<T>>(a),
            std::string("state array ") + name + " has the wrong type or dtype");
    const auto arr = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
    require(static_cast<bool>(arr), std::string("state array ") + name + " is not an array");
    return std::vector<T>(arr.data(), arr.data() + arr.size());
}

template <class Fn> void keyed(Fn&& fn) {
    try {
        py::gil_scoped_release nogil;
        fn();
    } catch (const std::out_of_range& e) {
        throw py::key_error(e.what());
    }
}

void add(HnswIndex& ix, const CArray<float>& x, const std::optional<CArray<index_t>>& ids,
         int threads, const py::object& progress) {
    const std::size_t n = check_rows(x, ix, "X");
    const std::size_t nt = checked_threads(threads);
    const index_t* id_ptr = ids ? id_vector(*ids, n, "ids") : nullptr;
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

/// Graph search (approximate); `allowed`: the only ids that may be returned, None for all.
py::tuple search(const HnswIndex& ix, const CArray<float>& q, int k, int ef, int threads,
                 const std::optional<CArray<index_t>>& allowed) {
    const std::size_t m = check_rows(q, ix, "Q");
    require(k >= 1, "k must be >= 1");
    require(ef >= 1, "ef must be >= 1");
    const std::size_t nt = checked_threads(threads);
    require(!allowed || allowed->ndim() == 1, "filter must be a 1-D array of ids");
    const auto kk = static_cast<std::size_t>(k);
    py::array_t<float> dist({m, kk});
    py::array_t<index_t> ids({m, kk});
    const float* qp = q.data();
    const index_t* ap = allowed ? allowed->data() : nullptr;
    const auto na = allowed ? static_cast<std::size_t>(allowed->shape(0)) : 0;
    float* dp = dist.mutable_data();
    index_t* ip = ids.mutable_data();
    {
        py::gil_scoped_release nogil;
        ix.search(qp, m, kk, static_cast<std::size_t>(ef), nt, allowed.has_value(), ap, na, dp, ip);
    }
    return py::make_tuple(dist, ids);
}

/// Exact search over every live point (what recall() and tune_ef() measure against).
py::tuple exact_search(const HnswIndex& ix, const CArray<float>& q, int k, int threads) {
    const std::size_t m = check_rows(q, ix, "Q");
    require(k >= 1, "k must be >= 1");
    const std::size_t nt = checked_threads(threads);
    const auto kk = static_cast<std::size_t>(k);
    py::array_t<float> dist({m, kk});
    py::array_t<index_t> ids({m, kk});
    const float* qp = q.data();
    float* dp = dist.mutable_data();
    index_t* ip = ids.mutable_data();
    {
        py::gil_scoped_release nogil;
        ix.exact_search(qp, m, kk, nt, dp, ip);
    }
    return py::make_tuple(dist, ids);
}

/// A mutating call that takes only a thread count and runs without the GIL (seal_blocks, refit).
template <void (HnswIndex::*Method)(std::size_t)>
void threaded_without_gil(HnswIndex& ix, int threads) {
    const std::size_t nt = checked_threads(threads);
    py::gil_scoped_release release;
    (ix.*Method)(nt);
}

StateBox export_state(const HnswIndex& ix) {
    hnsw::State st;
    {
        py::gil_scoped_release nogil;
        st = ix.export_state();
    }
    StateBox box;
    box.n = st.n;
    box.entry = st.entry;
    box.max_level = st.max_level;
    box.next_id = st.next_id;
    box.rng = st.rng;
    box.codes = vector_to_array(std::move(st.codes));
    box.levels = vector_to_array(std::move(st.levels));
    box.status = vector_to_array(std::move(st.status));
    box.labels = vector_to_array(std::move(st.labels));
    box.counts0 = vector_to_array(std::move(st.counts0));
    box.links0 = vector_to_array(std::move(st.links0));
    box.upper_counts = vector_to_array(std::move(st.upper_counts));
    box.upper_links = vector_to_array(std::move(st.upper_links));
    box.free_slots = vector_to_array(std::move(st.free_slots));
    if (st.quant)
        box.quant = state_dict(*st.quant);
    return box;
}

std::unique_ptr<HnswIndex> from_state(int dim, Metric metric, int M, int ef_construction,
                                      std::uint64_t seed,
                                      const std::optional<std::string>& quantization,
                                      const std::optional<std::int64_t>& refine,
                                      const StateBox& box) {
    hnsw::Options opt = options(dim, metric, M, ef_construction, 0, seed, quantization, refine);
    require(opt.quantized == !box.quant.is_none(), "quantised state does not match quantization");
    hnsw::State st;
    st.n = box.n;
    st.entry = box.entry;
    st.max_level = box.max_level;
    st.next_id = box.next_id;
    st.rng = box.rng;
    st.codes = copy_array<float>(box.codes, "codes");
    st.levels = copy_array<std::uint8_t>(box.levels, "levels");
    st.status = copy_array<std::uint8_t>(box.status, "status");
    st.labels = copy_array<index_t>(box.labels, "labels");
    st.counts0 = copy_array<std::uint16_t>(box.counts0, "counts0");
    st.links0 = copy_array<std::uint32_t>(box.links0, "links0");
    st.upper_counts = copy_array<std::uint16_t>(box.upper_counts, "upper_counts");
    st.upper_links = copy_array<std::uint32_t>(box.upper_links, "upper_links");
    st.free_slots = copy_array<std::uint32_t>(box.free_slots, "free_slots");
    if (opt.quantized)
        st.quant = store_state_from_dict(quant_options(opt), box.quant.cast<py::dict>());
    py::gil_scoped_release nogil;
    return HnswIndex::from_state(opt, st);
}

} // namespace

void bind_hnsw(py::module_& m) {
    using nogil = py::call_guard<py::gil_scoped_release>;
    py::class_<StateBox>(m, "HnswState")
        .def(py::init<>())
        .def_readwrite("n", &StateBox::n)
        .def_readwrite("entry", &StateBox::entry)
        .def_readwrite("max_level", &StateBox::max_level)
        .def_readwrite("next_id", &StateBox::next_id)
        .def_readwrite("rng", &StateBox::rng)
        .def_readwrite("codes", &StateBox::codes)
        .def_readwrite("levels", &StateBox::levels)
        .def_readwrite("status", &StateBox::status)
        .def_readwrite("labels", &StateBox::labels)
        .def_readwrite("counts0", &StateBox::counts0)
        .def_readwrite("links0", &StateBox::links0)
        .def_readwrite("upper_counts", &StateBox::upper_counts)
        .def_readwrite("upper_links", &StateBox::upper_links)
        .def_readwrite("free_slots", &StateBox::free_slots)
        .def_readwrite("quant", &StateBox::quant);

    py::class_<HnswIndex>(m, "HnswIndex")
        .def(py::init([](int dim, Metric metric, int M, int ef_construction,
                         std::size_t max_elements, std::uint64_t seed,
                         const std::optional<std::string>& quantization,
                         const std::optional<std::int64_t>& refine) {
                 return std::make_unique<HnswIndex>(options(
                     dim, metric, M, ef_construction, max_elements, seed, quantization, refine));
             }),
             py::arg("dim"), py::arg("metric"), py::kw_only(), py::arg("M"),
             py::arg("ef_construction"), py::arg("max_elements"), py::arg("seed"),
             py::arg("quantization") = py::none(), py::arg("refine") = py::none())
        .def("add", &add, py::arg("X").noconvert(), py::arg("ids").noconvert() = py::none(),
             py::kw_only(), py::arg("threads"), py::arg("progress") = py::none())
        .def("search", &search, py::arg("Q").noconvert(), py::arg("k"), py::kw_only(),
             py::arg("ef"), py::arg("threads"), py::arg("allowed").noconvert() = py::none())
        .def("exact_search", &exact_search, py::arg("Q").noconvert(), py::arg("k"), py::kw_only(),
             py::arg("threads"))
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
        .def("seal_blocks", &threaded_without_gil<&HnswIndex::seal_blocks>, py::arg("threads"))
        .def("refit", &threaded_without_gil<&HnswIndex::refit>, py::arg("threads"))
        .def("drift",
             [](const HnswIndex& ix) {
                 quant::DriftStats d;
                 {
                     py::gil_scoped_release release;
                     d = ix.drift();
                 }
                 return py::make_tuple(d.rows_at_fit, d.rows_since_fit, d.clipped_since_fit);
             })
        .def_static("from_state", &from_state, py::arg("dim"), py::arg("metric"), py::kw_only(),
                    py::arg("M"), py::arg("ef_construction"), py::arg("seed"),
                    py::arg("quantization"), py::arg("refine"), py::arg("state"));
}

} // namespace pysim::bindings
