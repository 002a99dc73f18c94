// Bindings of the KD-tree: classes KDTree_f32 / KDTree_f64 (private; pysim/_kdtree.py wraps
// them). Arguments arrive canonical (exact dtype, C order: .noconvert()); outputs are
// allocated with the GIL held and filled with it released. Radius results come back as CSR
// vectors moved into numpy without a copy. The state accessors expose the tree's own arrays
// (views that keep the tree alive) for save/pickle; from_state copies them back in.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <memory>
#include <string>

#include "bindings/numpy_utils.hpp"
#include "kdtree/kdtree.hpp"

namespace pysim::bindings {

namespace {

using kdtree::KdTree;

template <typename T>
std::unique_ptr<KdTree<T>> build(const CArray<T>& data, std::size_t leaf_size, int threads,
                                 bool wide_ids) {
    const auto [n, d] = matrix_shape(data, "data");
    const std::size_t nt = checked_threads(threads);
    const T* p = data.data();
    py::gil_scoped_release nogil;
    return std::make_unique<KdTree<T>>(p, n, d, leaf_size, nt, wide_ids);
}

template <typename T>
py::tuple query(const KdTree<T>& tree, const CArray<T>& queries, std::size_t k, bool euclidean,
                int threads) {
    const auto [m, d] = matrix_shape(queries, "Q");
    require(d == tree.dim(), "Q has the wrong number of columns");
    require(k >= 1, "k must be >= 1");
    const std::size_t nt = checked_threads(threads);
    py::array_t<T> dist({m, k});
    py::array_t<index_t> idx({m, k});
    const T* q = queries.data();
    T* dp = dist.mutable_data();
    index_t* ip = idx.mutable_data();
    {
        py::gil_scoped_release nogil;
        tree.knn(q, m, k, euclidean, dp, ip, nt);
    }
    return py::make_tuple(dist, idx);
}

template <typename T>
py::tuple query_radius(const KdTree<T>& tree, const CArray<T>& queries, const CArray<T>& radii,
                       bool euclidean, bool want_distances, bool sort, int threads) {
    const auto [m, d] = matrix_shape(queries, "Q");
    require(d == tree.dim(), "Q has the wrong number of columns");
    require(radii.ndim() == 1 && static_cast<std::size_t>(radii.shape(0)) == m,
            "r must have one value per query");
    const std::size_t nt = checked_threads(threads);
    const T* q = queries.data();
    const T* r = radii.data();
    kdtree::RadiusResult<T> res;
    {
        py::gil_scoped_release nogil;
        res = tree.radius(q, m, r, euclidean, want_distances, sort, nt);
    }
    py::object dists = py::none();
    if (want_distances)
        dists = vector_to_array(std::move(res.distances));
    return py::make_tuple(vector_to_array(std::move(res.indptr)),
                          vector_to_array(std::move(res.indices)), dists);
}

// A read-only numpy view of tree memory; `owner` (the Python tree object) stays alive with it.
template <typename V>
py::array view(const std::vector<V>& v, std::vector<py::ssize_t> shape, py::handle owner) {
    py::array_t<V> a(shape, v.data(), owner);
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return std::move(a);
}

template <typename T> py::dict state(py::object self) {
    const auto& tree = self.cast<const KdTree<T>&>();
    const std::size_t ni = tree.n_internal();
    py::array_t<std::int32_t> dims(static_cast<py::ssize_t>(ni));
    py::array_t<T> bounds({static_cast<py::ssize_t>(ni), py::ssize_t{2}});
    auto* dp = dims.mutable_data();
    auto* bp = bounds.mutable_data();
    for (std::size_t i = 0; i < ni; ++i) {
        const auto& nd = tree.nodes()[i];
        dp[i] = static_cast<std::int32_t>(nd.dim);
        bp[2 * i] = nd.lo;
        bp[2 * i + 1] = nd.hi;
    }
    const auto n = static_cast<py::ssize_t>(tree.size());
    const auto d = static_cast<py::ssize_t>(tree.dim());
    py::dict out;
    out["points"] = view(tree.points(), {n * d}, self);
    const kdtree::IdMap& idmap = tree.ids();
    if (idmap.wide()) {
        out["ids"] = view(idmap.wide_ids(), {n}, self);
    } else { // saved as int64 whatever the width in memory
        py::array_t<index_t> ids(n);
        index_t* ip = ids.mutable_data();
        for (std::size_t i = 0; i < tree.size(); ++i)
            ip[i] = idmap[i];
        out["ids"] = ids;
    }
    out["split_dims"] = dims;
    out["split_bounds"] = bounds;
    out["bbox"] = view(tree.bbox(), {2, d}, self);
    return out;
}

// Copies a 1-D-or-any-shape array of exactly `count` elements of V (any alignment).
template <typename V>
std::vector<V> copy_array(const py::array& a, std::size_t count, const char* name) {
    require(a.dtype().is(py::dtype::of<V>()),
            std::string("tree state: ") + name + " has the wrong dtype");
    require((a.flags() & py::array::c_style) != 0,
            std::string("tree state: ") + name + " is not C-contiguous");
    require(static_cast<std::size_t>(a.size()) == count,
            std::string("tree state: ") + name + " has the wrong size");
    std::vector<V> v(count);
    if (count)
        std::memcpy(v.data(), a.data(), count * sizeof(V));
    return v;
}

template <typename T>
std::unique_ptr<KdTree<T>> from_state(std::size_t n, std::size_t d, std::size_t leaf_size,
                                      const py::array& points, const py::array& ids,
                                      const py::array& split_dims, const py::array& split_bounds,
                                      const py::array& bbox) {
    require(n >= 1 && d >= 1 && leaf_size >= 1, "tree state: bad sizes");
    require(n <= (std::size_t{1} << 48) && d <= (std::size_t{1} << 30), "tree state: bad sizes");
    const std::size_t ni = (std::size_t{1} << kdtree::levels_for(n, leaf_size)) - 1;
    auto pts = copy_array<T>(points, n * d, "points");
    auto id = copy_array<index_t>(ids, n, "ids");
    auto dims = copy_array<std::int32_t>(split_dims, ni, "split_dims");
    auto bounds = copy_array<T>(split_bounds, 2 * ni, "split_bounds");
    auto box = copy_array<T>(bbox, 2 * d, "bbox");
    py::gil_scoped_release nogil;
    return std::make_unique<KdTree<T>>(n, d, leaf_size, std::move(pts), id.data(), dims.data(),
                                       bounds.data(), ni, std::move(box));
}

template <typename T> void def_tree(py::module_& m, const char* name) {
    using Tree = KdTree<T>;
    py::class_<Tree>(m, name)
        .def(py::init(&build<T>), py::arg("data").noconvert(), py::arg("leaf_size"),
             py::arg("threads"), py::arg("_wide_ids") = false)
        .def("query", &query<T>, py::arg("Q").noconvert(), py::arg("k"), py::arg("euclidean"),
             py::arg("threads"))
        .def("query_radius", &query_radius<T>, py::arg("Q").noconvert(), py::arg("r").noconvert(),
             py::arg("euclidean"), py::arg("return_distance"), py::arg("sort_results"),
             py::arg("threads"))
        .def_property_readonly("n", &Tree::size)
        .def_property_readonly("dim", &Tree::dim)
        .def_property_readonly("leaf_size", &Tree::leaf_size)
        .def_property_readonly("levels", &Tree::levels)
        .def_property_readonly("max_leaf", &Tree::max_leaf)
        .def_property_readonly("_wide_ids", [](const Tree& t) { return t.ids().wide(); })
        .def("state", &state<T>)
        .def_static("from_state", &from_state<T>, py::arg("n"), py::arg("dim"),
                    py::arg("leaf_size"), py::arg("points"), py::arg("ids"), py::arg("split_dims"),
                    py::arg("split_bounds"), py::arg("bbox"));
}

} // namespace

void bind_kdtree(py::module_& m) {
    def_tree<float>(m, "KDTree_f32");
    def_tree<double>(m, "KDTree_f64");
    m.def("_kdtree_levels", &kdtree::levels_for, py::arg("n"), py::arg("leaf_size"));
}

} // namespace pysim::bindings
