// Item-based recommendation: the item-item similarity of ItemKNN, EASE's dense weights, and
// the fused "score every candidate, keep the top N" step both share.
//
// Everything here works on CSR matrices of interaction weights (int64 row pointers, int32
// column numbers, sorted within a row, no explicit zeros): `item_users` (n_items, n_users) and
// its transpose `user_items` (n_users, n_items). The Python layer (pysim/recommend/) converts
// whatever scipy format or dense array the user passes, and applies the weightings (BM25,
// TF-IDF) that are O(nnz) elementwise work.
//
// Why a dense accumulator per chunk: row i of the similarity is sum_u w_ui * user_items[u],
// a sparse x sparse product. Each worker chunk owns one n_items-long float64 accumulator and
// a list of the columns it touched, so a row costs O(co-occurrences), never O(n_items) to
// clear, and the dense n_items^2 matrix never exists (EASE excepted: its weights are dense by
// definition). Sums are float64 in a fixed order (users, then items, ascending), so results
// do not depend on the number of threads.
//
// Top-k: largest first, ties broken by the smaller item id, the tie rule of every exact
// search in pysim (item_knn.cpp: a sampled threshold and nth_element; scoring.cpp: pysim::TopK
// on the negated score).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pysim::recommend {

/// A read-only CSR matrix view. `data` may be null for an all-ones matrix.
template <typename T> struct Csr {
    const std::int64_t* indptr = nullptr;
    const std::int32_t* indices = nullptr;
    const T* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;
};

/// How a co-occurrence dot product becomes a similarity: sim = dot / (denominator + shrinkage).
enum class Norm : std::uint8_t {
    none = 0,       // denominator 1 ("dot", "bm25")
    cosine = 1,     // |i| |j| ("cosine", "tfidf")
    asymmetric = 2, // |i|^(2 alpha) |j|^(2 (1 - alpha)), |.| the Euclidean norm
    jaccard = 3     // |i|^2 + |j|^2 - dot (Tanimoto; Jaccard for 0/1 weights)
};

struct KnnParams {
    Norm norm = Norm::cosine;
    double shrinkage = 0.0;
    double alpha = 0.5;
    std::size_t k = 100;
    /// The matrices' values are ignored (data may be null): every stored entry is an
    /// interaction, and dot(i, j) = f_i f_j sum of user_weight[u] over the users i and j share
    /// (f = item_factor; a null user_weight / item_factor is all ones: plain counts).
    bool pattern = false;
    const double* user_weight = nullptr; // n_users values > 0, pattern only
    const double* item_factor = nullptr; // n_items values > 0, pattern only
};

/// CSR rows produced by knn_similarity (columns ascending within each row).
struct SparseRows {
    std::vector<std::int64_t> indptr;
    std::vector<std::int32_t> indices;
    std::vector<float> data;
};

/// Rows [begin, end) of the top-k item-item similarity (the item itself excluded).
/// `sq_norms[i]` is the sum of squared weights of item i (for a pattern: f_i^2 times the sum of
/// user_weight over its users). Weights must be >= 0. Throws std::invalid_argument on
/// inconsistent shapes.
SparseRows knn_similarity(const Csr<double>& item_users, const Csr<double>& user_items,
                          const double* sq_norms, const KnnParams& params, std::size_t begin,
                          std::size_t end, std::size_t threads);

/// The dense Gram matrix item_users * user_items (n_items x n_items, row-major) into `out`.
void gram_dense(const Csr<double>& item_users, const Csr<double>& user_items, float* out,
                std::size_t threads);

/// EASE weights in place: `p` (n x n, row-major) holds the inverse P of the regularised Gram
/// matrix in its upper (`upper` true) or lower triangle; on return it holds
/// B[i][j] = -P[i][j] / P[j][j] for i != j and B[i][i] = 0.
void ease_weights(float* p, std::size_t n, bool upper, std::size_t threads);

/// Where the scores of recommend() come from: a sparse similarity (ItemKNN, n_items x n_items)
/// or dense weights (EASE) over the `n_active` items listed in `active` (ascending item ids;
/// the other items have all-zero rows and columns, so they score 0); score_j = sum_i w_ui *
/// S[i][j].
struct Scorer {
    Csr<float> sparse; // used when dense == nullptr
    const float* dense = nullptr;
    const std::int32_t* active = nullptr;
    std::size_t n_active = 0;
    std::size_t n_items = 0;
};

/// For each row of `users` (n_users x n_items weights), the N best-scored candidates:
/// scores descending (float32, padded -inf), item ids (padded -1). A candidate is an item
/// with a score (any item for a dense scorer, a neighbour of a seen item for a sparse one),
/// not banned (`banned[j] != 0`, banned may be null), and not in the row if `exclude_seen`.
/// A row without interactions gets an all-padding result.
void recommend(const Scorer& scorer, const Csr<double>& users, const std::uint8_t* banned,
               bool exclude_seen, std::size_t n, float* scores, std::int64_t* ids,
               std::size_t threads);

} // namespace pysim::recommend
