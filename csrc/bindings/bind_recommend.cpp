// Bindings of the recommend core (private; pysim/recommend/ wraps them). CSR matrices arrive
// as their three canonical arrays (int64 indptr, int32 indices, float64 or float32 data,
// .noconvert()); outputs are allocated with the GIL held and filled with it released, and
// sparse results come back as vectors moved into numpy without a copy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/numpy_utils.hpp"
#include "recommend/recommend.hpp"

namespace pysim::bindings {

namespace {

namespace rec = pysim::recommend;

// `pattern`: the values are not read, so `data` may be empty (the view's data is then null).
template <typename T>
rec::Csr<T> csr(const CArray<std::int64_t>& indptr, const CArray<std::int32_t>& indices,
                const CArray<T>& data, std::size_t cols, const char* name, bool pattern = false) {
    const std::string who(name);
    require(indptr.ndim() == 1 && indptr.shape(0) >= 1, who + ": indptr must be 1-D, non-empty");
    require(indices.ndim() == 1 && data.ndim() == 1 &&
                (indices.shape(0) == data.shape(0) || (pattern && data.shape(0) == 0)),
            who + ": indices and data must be 1-D of one length");
    const auto rows = static_cast<std::size_t>(indptr.shape(0) - 1);
    require(indptr.data()[rows] == indices.shape(0), who + ": indptr[-1] must equal nnz");
    rec::Csr<T> m;
    m.indptr = indptr.data();
    m.indices = indices.data();
    m.data = data.shape(0) == indices.shape(0) ? data.data() : nullptr;
    m.rows = rows;
    m.cols = cols;
    return m;
}

py::tuple knn_similarity(const CArray<std::int64_t>& iu_indptr,
                         const CArray<std::int32_t>& iu_indices, const CArray<double>& iu_data,
                         const CArray<std::int64_t>& ui_indptr,
                         const CArray<std::int32_t>& ui_indices, const CArray<double>& ui_data,
                         const CArray<double>& sq_norms, int norm, double shrinkage, double alpha,
                         std::size_t k, std::size_t begin, std::size_t end, int threads,
                         bool pattern, const CArray<double>& user_weight,
                         const CArray<double>& item_factor) {
    const std::size_t n_users = static_cast<std::size_t>(ui_indptr.shape(0)) - 1;
    const std::size_t n_items = static_cast<std::size_t>(iu_indptr.shape(0)) - 1;
    auto iu = csr(iu_indptr, iu_indices, iu_data, n_users, "item_users", pattern);
    auto ui = csr(ui_indptr, ui_indices, ui_data, n_items, "user_items", pattern);
    require(sq_norms.ndim() == 1 && static_cast<std::size_t>(sq_norms.shape(0)) == n_items,
            "sq_norms must have one value per item");
    require(user_weight.ndim() == 1 && (user_weight.shape(0) == 0 ||
                                        static_cast<std::size_t>(user_weight.shape(0)) == n_users),
            "user_weight must be empty or have one value per user");
    require(item_factor.ndim() == 1 && (item_factor.shape(0) == 0 ||
                                        static_cast<std::size_t>(item_factor.shape(0)) == n_items),
            "item_factor must be empty or have one value per item");
    require(norm >= 0 && norm <= 3, "norm must be 0..3");
    rec::KnnParams p;
    p.norm = static_cast<rec::Norm>(norm);
    p.shrinkage = shrinkage;
    p.alpha = alpha;
    p.k = k;
    p.pattern = pattern;
    p.user_weight = user_weight.shape(0) ? user_weight.data() : nullptr;
    p.item_factor = item_factor.shape(0) ? item_factor.data() : nullptr;
    const std::size_t nt = checked_threads(threads);
    const double* sq = sq_norms.data();
    rec::SparseRows rows;
    {
        py::gil_scoped_release nogil;
        rows = rec::knn_similarity(iu, ui, sq, p, begin, end, nt);
    }
    return py::make_tuple(vector_to_array(std::move(rows.indptr)),
                          vector_to_array(std::move(rows.indices)),
                          vector_to_array(std::move(rows.data)));
}

void gram_dense(const CArray<std::int64_t>& iu_indptr, const CArray<std::int32_t>& iu_indices,
                const CArray<double>& iu_data, const CArray<std::int64_t>& ui_indptr,
                const CArray<std::int32_t>& ui_indices, const CArray<double>& ui_data,
                CArray<float>& out, int threads) {
    const std::size_t n_users = static_cast<std::size_t>(ui_indptr.shape(0)) - 1;
    const std::size_t n_items = static_cast<std::size_t>(iu_indptr.shape(0)) - 1;
    auto iu = csr(iu_indptr, iu_indices, iu_data, n_users, "item_users");
    auto ui = csr(ui_indptr, ui_indices, ui_data, n_items, "user_items");
    const auto [r, c] = matrix_shape(out, "out");
    require(r == n_items && c == n_items, "out must be (n_items, n_items)");
    const std::size_t nt = checked_threads(threads);
    float* o = out.mutable_data();
    py::gil_scoped_release nogil;
    rec::gram_dense(iu, ui, o, nt);
}

void ease_weights(CArray<float>& p, bool upper, int threads) {
    const auto [r, c] = matrix_shape(p, "P");
    require(r == c, "P must be square");
    const std::size_t nt = checked_threads(threads);
    float* data = p.mutable_data();
    py::gil_scoped_release nogil;
    rec::ease_weights(data, r, upper, nt);
}

// banned: empty array for "no item banned", else one byte per item.
py::tuple recommend(const rec::Scorer& scorer, const CArray<std::int64_t>& indptr,
                    const CArray<std::int32_t>& indices, const CArray<double>& data,
                    const CArray<std::uint8_t>& banned, bool exclude_seen, std::size_t n,
                    int threads) {
    auto users = csr(indptr, indices, data, scorer.n_items, "user_items");
    require(banned.ndim() == 1 && (banned.shape(0) == 0 ||
                                   static_cast<std::size_t>(banned.shape(0)) == scorer.n_items),
            "banned must be empty or have one entry per item");
    require(n >= 1, "N must be >= 1");
    const std::size_t nt = checked_threads(threads);
    const std::size_t m = users.rows;
    py::array_t<float> scores({m, n});
    py::array_t<std::int64_t> ids({m, n});
    const std::uint8_t* ban = banned.shape(0) ? banned.data() : nullptr;
    float* sp = scores.mutable_data();
    std::int64_t* ip = ids.mutable_data();
    {
        py::gil_scoped_release nogil;
        rec::recommend(scorer, users, ban, exclude_seen, n, sp, ip, nt);
    }
    return py::make_tuple(scores, ids);
}

py::tuple recommend_sparse(const CArray<std::int64_t>& s_indptr,
                           const CArray<std::int32_t>& s_indices, const CArray<float>& s_data,
                           const CArray<std::int64_t>& indptr, const CArray<std::int32_t>& indices,
                           const CArray<double>& data, const CArray<std::uint8_t>& banned,
                           bool exclude_seen, std::size_t n, int threads) {
    const std::size_t n_items = static_cast<std::size_t>(s_indptr.shape(0)) - 1;
    rec::Scorer scorer;
    scorer.sparse = csr(s_indptr, s_indices, s_data, n_items, "similarity");
    scorer.n_items = n_items;
    return recommend(scorer, indptr, indices, data, banned, exclude_seen, n, threads);
}

py::tuple recommend_dense(const CArray<float>& weights, const CArray<std::int32_t>& active,
                          std::size_t n_items, const CArray<std::int64_t>& indptr,
                          const CArray<std::int32_t>& indices, const CArray<double>& data,
                          const CArray<std::uint8_t>& banned, bool exclude_seen, std::size_t n,
                          int threads) {
    const auto [r, c] = matrix_shape(weights, "weights");
    require(r == c, "weights must be square");
    require(active.ndim() == 1 && static_cast<std::size_t>(active.shape(0)) == r,
            "active must list one item per row of weights");
    require(r <= n_items, "more weight rows than items");
    rec::Scorer scorer;
    scorer.dense = weights.data();
    scorer.active = active.data();
    scorer.n_active = r;
    scorer.n_items = n_items;
    return recommend(scorer, indptr, indices, data, banned, exclude_seen, n, threads);
}

} // namespace

void bind_recommend(py::module_& m) {
    m.def("rec_knn_similarity", &knn_similarity, py::arg("iu_indptr").noconvert(),
          py::arg("iu_indices").noconvert(), py::arg("iu_data").noconvert(),
          py::arg("ui_indptr").noconvert(), py::arg("ui_indices").noconvert(),
          py::arg("ui_data").noconvert(), py::arg("sq_norms").noconvert(), py::arg("norm"),
          py::arg("shrinkage"), py::arg("alpha"), py::arg("k"), py::arg("begin"), py::arg("end"),
          py::arg("threads"), py::arg("pattern"), py::arg("user_weight").noconvert(),
          py::arg("item_factor").noconvert());
    m.def("rec_gram_dense", &gram_dense, py::arg("iu_indptr").noconvert(),
          py::arg("iu_indices").noconvert(), py::arg("iu_data").noconvert(),
          py::arg("ui_indptr").noconvert(), py::arg("ui_indices").noconvert(),
          py::arg("ui_data").noconvert(), py::arg("out").noconvert(), py::arg("threads"));
    m.def("rec_ease_weights", &ease_weights, py::arg("P").noconvert(), py::arg("upper"),
          py::arg("threads"));
    m.def("rec_recommend_sparse", &recommend_sparse, py::arg("s_indptr").noconvert(),
          py::arg("s_indices").noconvert(), py::arg("s_data").noconvert(),
          py::arg("indptr").noconvert(), py::arg("indices").noconvert(),
          py::arg("data").noconvert(), py::arg("banned").noconvert(), py::arg("exclude_seen"),
          py::arg("N"), py::arg("threads"));
    m.def("rec_recommend_dense", &recommend_dense, py::arg("weights").noconvert(),
          py::arg("active").noconvert(), py::arg("n_items"), py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(),
          py::arg("banned").noconvert(), py::arg("exclude_seen"), py::arg("N"), py::arg("threads"));
}

} // namespace pysim::bindings
