"""pysim.recommend against straightforward dense float64 numpy references.

The references below build the full (n_items, n_items) similarity and (n_users, n_items)
score matrices with numpy, which is exactly what the C++ core avoids; on small random data
they pin down every similarity option, the top-k rule (largest first, ties to the smaller
item id), exclusion, padding and EASE's closed form. Integer weights keep the co-occurrence
sums exact in float64, so where the formula is the same sequence of operations (cosine,
jaccard, dot) even the tie order must agree exactly.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from pysim.metrics import ranking_scores
from pysim.recommend import EASE, ItemKNN, temporal_split

SIMILARITIES = ["cosine", "asymmetric", "jaccard", "bm25", "tfidf", "dot"]


# --------------------------------------------------------------------------- references
def ref_idf(A: np.ndarray) -> np.ndarray:
    n_items = A.shape[0]
    df = (A > 0).sum(axis=0)
    return np.maximum(np.log(n_items) - np.log1p(df), 0.0)


def ref_weighted(X: np.ndarray, similarity: str, k1: float, b: float) -> np.ndarray:
    """Item vectors (n_items, n_users) as compared, dense float64."""
    A = X.T.astype(np.float64)
    if similarity == "tfidf":
        return np.sqrt(A) * ref_idf(A)[None, :]
    if similarity == "bm25":
        lengths = A.sum(axis=1)
        norm = (1 - b) + b * lengths / lengths.mean()
        out = A * (k1 + 1) / (k1 * norm[:, None] + A) * ref_idf(A)[None, :]
        return np.where(A > 0, out, 0.0)
    return A


def ref_similarity(X, similarity="cosine", shrinkage=0.0, alpha=0.5, k1=1.2, b=0.75):
    """Dense similarity (n_items, n_items), NaN where two items share no user or i == j."""
    A = ref_weighted(X, similarity, k1, b)
    dot = A @ A.T
    sq = (A * A).sum(axis=1)
    if similarity in ("cosine", "tfidf"):
        denom = np.sqrt(sq)[:, None] * np.sqrt(sq)[None, :]
    elif similarity == "asymmetric":
        denom = sq[:, None] ** alpha * sq[None, :] ** (1 - alpha)
    elif similarity == "jaccard":
        denom = sq[:, None] + sq[None, :] - dot
    else:
        denom = np.ones_like(dot)
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = dot / (denom + shrinkage)
    co = (A > 0).astype(float) @ (A > 0).T.astype(float) > 0
    sim[~co] = np.nan
    np.fill_diagonal(sim, np.nan)
    return sim


def ref_topk_rows(sim: np.ndarray, k: int) -> list[np.ndarray]:
    """Per row, the columns of the k largest non-NaN values (ties: smaller column)."""
    rows = []
    for row in sim:
        cols = np.flatnonzero(~np.isnan(row))
        order = np.lexsort((cols, -row[cols]))
        rows.append(cols[order][:k])
    return rows


def ref_recommend(rows, S, N, *, exclude_seen=True, banned=None, dense=False):
    """Brute force: dense scores rows @ S in float64, masks, sort by (-score, id), pad."""
    rows = np.asarray(rows, dtype=np.float64)
    S = np.asarray(S, dtype=np.float64)
    scores = rows @ S
    if dense:
        cand = np.repeat((rows > 0).any(axis=1, keepdims=True), S.shape[1], axis=1)
    else:
        cand = (rows > 0).astype(float) @ (S != 0).astype(float) > 0
    if exclude_seen:
        cand &= rows == 0
    if banned is not None:
        cand &= ~banned[None, :]
    out_s = np.full((len(rows), N), -np.inf, dtype=np.float32)
    out_i = np.full((len(rows), N), -1, dtype=np.int64)
    for u in range(len(rows)):
        cols = np.flatnonzero(cand[u])
        order = np.lexsort((cols, -scores[u, cols]))[:N]
        out_s[u, : len(order)] = scores[u, cols[order]]
        out_i[u, : len(order)] = cols[order]
    return out_s, out_i, scores


def ref_ease(X: np.ndarray, l2: float) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    P = np.linalg.inv(X.T @ X + l2 * np.eye(X.shape[1]))
    B = P / (-np.diag(P))
    np.fill_diagonal(B, 0.0)
    return B


def random_interactions(rng, n_users=40, n_items=30, density=0.25, max_weight=3):
    X = rng.integers(1, max_weight + 1, size=(n_users, n_items)).astype(np.float64)
    X[rng.random((n_users, n_items)) > density] = 0
    X[3] = 0  # a user without history
    X[:, 7] = 0  # an item nobody saw
    return X


@pytest.fixture
def data(rng):
    return random_interactions(rng)


# --------------------------------------------------------------------------- ItemKNN
@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("shrinkage", [0.0, 2.5])
@pytest.mark.parametrize("k", [4, 100])
def test_similarity_matches_dense_reference(data, similarity, shrinkage, k):
    kw = {"alpha": 0.3} if similarity == "asymmetric" else {}
    model = ItemKNN(k, similarity=similarity, shrinkage=shrinkage, **kw).fit(sp.csr_matrix(data))
    S = model.similarity_
    assert isinstance(S, sp.csr_matrix) and S.shape == (30, 30) and S.dtype == np.float32
    assert S.has_sorted_indices
    ref = ref_similarity(data, similarity, shrinkage, **kw)
    check_topk_rows(S, ref, k, similarity)
    assert S[7].nnz == 0 and S[:, 7].nnz == 0  # the unseen item has no neighbours


def check_topk_rows(S: sp.csr_matrix, ref: np.ndarray, k: int, similarity: str) -> None:
    """Each row of the fitted similarity holds the reference's k largest (the item itself
    excluded), with the reference's values."""
    want = ref_topk_rows(ref, k)
    for i in range(S.shape[0]):
        cols = S.indices[S.indptr[i] : S.indptr[i + 1]]
        vals = S.data[S.indptr[i] : S.indptr[i + 1]]
        assert i not in cols
        assert len(cols) == len(want[i])
        # every kept similarity is the reference value of that pair ...
        np.testing.assert_allclose(vals, ref[i, cols], rtol=2e-6)
        # ... and they are the k largest of the row (tie-robust)
        np.testing.assert_allclose(np.sort(vals)[::-1], np.sort(ref[i, want[i]])[::-1], rtol=2e-6)
        if similarity in ("cosine", "jaccard", "dot"):  # same operations: same tie order
            np.testing.assert_array_equal(cols, np.sort(want[i]))


def binary_interactions(rng, n_users=40, n_items=30, density=0.25):
    """0/1 data (the core's pattern kernels), with a user who saw every item (idf 0 for
    TF-IDF and BM25, so that user drops out of their vectors), one without history and an
    item nobody saw."""
    X = (rng.random((n_users, n_items)) < density).astype(np.float64)
    X[0] = 1.0
    X[3] = 0.0
    X[:, 7] = 0.0
    return X


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("shrinkage", [0.0, 2.5])
@pytest.mark.parametrize("k", [4, 100])
def test_binary_similarity_matches_dense_reference(rng, similarity, shrinkage, k):
    # 0/1 weights take the count / per-user-weight kernels, not the float64 products.
    X = binary_interactions(rng)
    kw = {"alpha": 0.3} if similarity == "asymmetric" else {}
    S = ItemKNN(k, similarity=similarity, shrinkage=shrinkage, **kw).fit(sp.csr_matrix(X))
    S = S.similarity_
    assert S.has_sorted_indices and S.dtype == np.float32
    ref = ref_similarity(X, similarity, shrinkage, **kw)
    assert ref_idf(X.T)[0] == 0.0  # user 0 saw every seen item: no TF-IDF / BM25 weight
    check_topk_rows(S, ref, k, similarity)


def test_binary_kernels_agree_with_weighted_kernel(rng):
    # Scaling every weight by 2 (exact in binary floating point) leaves cosine unchanged but
    # sends the data through the general float64 kernel: the two paths must agree bit for bit.
    X = sp.csr_matrix(binary_interactions(rng, n_users=200, n_items=120, density=0.1))
    for similarity in ("cosine", "asymmetric"):
        one = ItemKNN(10, similarity=similarity).fit(X).similarity_
        two = ItemKNN(10, similarity=similarity).fit(2 * X).similarity_
        assert (one != two).nnz == 0
        np.testing.assert_array_equal(one.data, two.data)
    dot1 = ItemKNN(10, similarity="dot").fit(X).similarity_
    dot2 = ItemKNN(10, similarity="dot").fit(2 * X).similarity_
    np.testing.assert_array_equal(dot2.indices, dot1.indices)
    np.testing.assert_array_equal(dot2.data, 4 * dot1.data)


@pytest.mark.parametrize("similarity", ["cosine", "jaccard", "tfidf", "bm25"])
def test_many_candidates_per_row_match_reference(rng, similarity):
    # Rows with far more candidates than 8 k take the sampled-threshold selection (and, for
    # a few rows, its every-candidate fallback): the kept set must still be the exact top k.
    X = binary_interactions(rng, n_users=120, n_items=400, density=0.12)
    k = 5
    S = ItemKNN(k, similarity=similarity).fit(sp.csr_matrix(X)).similarity_
    ref = ref_similarity(X, similarity)
    want = ref_topk_rows(ref, k)
    assert min(np.sum(~np.isnan(ref[i])) for i in range(400) if i != 7) > 8 * k
    for i in range(400):
        cols = S.indices[S.indptr[i] : S.indptr[i + 1]]
        vals = S.data[S.indptr[i] : S.indptr[i + 1]]
        np.testing.assert_allclose(vals, ref[i, cols], rtol=2e-6)
        np.testing.assert_allclose(np.sort(vals)[::-1], np.sort(ref[i, want[i]])[::-1], rtol=2e-6)
        if similarity in ("cosine", "jaccard"):
            np.testing.assert_array_equal(cols, np.sort(want[i]))


@pytest.mark.parametrize("similarity", ["cosine", "tfidf", "jaccard"])
def test_dense_rows_large_k_match_reference(rng, similarity):
    # Nearly every pair of items shares a user and k is large: each row takes the sampled
    # threshold with the division-free prefilter, then the second threshold on the exact
    # survivors (>= 2k of them, >= 64), and some rows the retry with the lower sampled
    # threshold; the kept set must still be the exact top k, in column order.
    X = binary_interactions(rng, n_users=300, n_items=700, density=0.1)
    k = 40
    S = ItemKNN(k, similarity=similarity).fit(sp.csr_matrix(X)).similarity_
    assert S.has_sorted_indices
    ref = ref_similarity(X, similarity)
    assert np.median(np.sum(~np.isnan(ref), axis=1)) > 8 * k
    check_topk_rows(S, ref, k, similarity)


@pytest.mark.parametrize("similarity", ["cosine", "bm25"])
def test_wide_catalogue_small_k_match_reference(rng, similarity):
    # More than 16 * k words of columns (3,000 items, k = 2): rows are put in column order
    # by a sort instead of the column bitset; the same exact top k either way.
    X = binary_interactions(rng, n_users=150, n_items=3000, density=0.03)
    k = 2
    S = ItemKNN(k, similarity=similarity).fit(sp.csr_matrix(X)).similarity_
    assert S.has_sorted_indices
    check_topk_rows(S, ref_similarity(X, similarity), k, similarity)
    # and the bitset path (k = 20: 47 words <= 16 k) agrees with it on the shared top 2
    S20 = ItemKNN(20, similarity=similarity).fit(sp.csr_matrix(X)).similarity_
    for i in range(0, 3000, 7):
        two = np.sort(S.data[S.indptr[i] : S.indptr[i + 1]])[::-1]
        twenty = np.sort(S20.data[S20.indptr[i] : S20.indptr[i + 1]])[::-1]
        np.testing.assert_array_equal(two, twenty[:2])


def test_counts_wider_than_16_bits():
    # An item with more than 65,535 users: the counts kernel must not wrap around.
    n = 70_000
    rows = np.concatenate([np.arange(n), np.arange(n), np.arange(0, n, 2)])
    cols = np.concatenate([np.zeros(n), np.ones(n), np.full(n // 2, 2)]).astype(np.int64)
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, 3))
    dot = ItemKNN(2, similarity="dot").fit(X).similarity_.toarray()
    np.testing.assert_array_equal(dot, [[0, n, n // 2], [n, 0, n // 2], [n // 2, n // 2, 0]])
    cos = ItemKNN(2).fit(X).similarity_.toarray()
    np.testing.assert_allclose(cos[0, 1], 1.0, rtol=1e-7)
    np.testing.assert_allclose(cos[0, 2], (n // 2) / np.sqrt(n * (n // 2)), rtol=1e-7)


def test_binary_threads_do_not_change_results(rng):
    X = (sp.random(300, 200, density=0.05, random_state=np.random.RandomState(2)) > 0).astype(
        np.float64
    )
    for similarity in ("cosine", "tfidf", "bm25"):
        one = ItemKNN(20, similarity=similarity, threads=1).fit(X).similarity_
        two = ItemKNN(20, similarity=similarity, threads=2).fit(X).similarity_
        assert (one != two).nnz == 0


def test_similarity_varies_with_parameters(data):
    X = sp.csr_matrix(data)
    base = ItemKNN(100, similarity="bm25").fit(X).similarity_
    other = ItemKNN(100, similarity="bm25", k1=3.0, b=0.2).fit(X).similarity_
    ref = ref_similarity(data, "bm25", k1=3.0, b=0.2)
    i, j = other.nonzero()
    np.testing.assert_allclose(other.data, ref[i, j], rtol=2e-6)
    assert abs(base - other).max() > 1e-3


@pytest.mark.parametrize(
    "convert",
    [
        sp.csr_matrix,
        sp.csc_matrix,
        sp.coo_matrix,
        sp.lil_matrix,
        sp.csr_array,
        np.asarray,
        lambda x: x > 0,
    ],
)
def test_input_formats_agree(data, convert):
    weights = data if convert(data).dtype != np.bool_ else (data > 0).astype(float)
    want = ItemKNN(5).fit(sp.csr_matrix(weights)).similarity_
    got = ItemKNN(5).fit(convert(data)).similarity_
    assert (got != want).nnz == 0


def test_threads_do_not_change_results(rng):
    X = sp.random(300, 200, density=0.05, random_state=np.random.RandomState(1), format="csr")
    X.data = np.ceil(X.data * 4)
    one = ItemKNN(20, threads=1).fit(X)
    two = ItemKNN(20, threads=2).fit(X)
    assert (one.similarity_ != two.similarity_).nnz == 0
    users = np.arange(300)
    s1, i1 = one.recommend(users, N=15, threads=1)
    s2, i2 = two.recommend(users, N=15, threads=2)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)


def test_progress_bar_fit_is_identical(data, capsys):
    plain = ItemKNN(6).fit(data)
    shown = ItemKNN(6).fit(data, show_progress=True)
    assert (plain.similarity_ != shown.similarity_).nnz == 0


@pytest.mark.parametrize("exclude_seen", [True, False])
@pytest.mark.parametrize("N", [1, 5, 40])
def test_recommend_equals_brute_force(data, exclude_seen, N):
    model = ItemKNN(6).fit(sp.csr_matrix(data))
    S = model.similarity_.toarray()
    users = np.arange(40)
    scores, items = model.recommend(users, N=N, exclude_seen=exclude_seen)
    want_s, want_i, _ = ref_recommend(data, S, N, exclude_seen=exclude_seen)
    assert scores.dtype == np.float32 and items.dtype == np.int64
    assert scores.shape == items.shape == (40, N)
    np.testing.assert_array_equal(items, want_i)
    np.testing.assert_array_equal(scores, want_s)
    assert (items[3] == -1).all() and np.isneginf(scores[3]).all()  # no history: padded
    if exclude_seen:
        for u in users:
            assert not set(items[u][items[u] >= 0]) & set(np.flatnonzero(data[u]))


def test_exclude_and_items(data):
    model = ItemKNN(8).fit(data)
    S = model.similarity_.toarray()
    exclude = np.array([0, 5, 11])
    items = np.arange(0, 30, 2)
    banned = np.ones(30, bool)
    banned[items] = False
    banned[exclude] = True
    got_s, got_i = model.recommend(np.arange(40), N=30, exclude=exclude, items=items)
    want_s, want_i, _ = ref_recommend(data, S, 30, banned=banned)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_s, want_s)
    assert not np.isin(got_i, exclude).any()
    assert np.isin(got_i[got_i >= 0], items).all()


def test_recommend_with_given_rows_and_scalar_user(data):
    model = ItemKNN(6).fit(data)
    S = model.similarity_.toarray()
    rows = np.zeros((2, 30))
    rows[0, [1, 2, 3]] = [1, 2, 1]
    rows[1, 4] = 1
    for given in (rows, sp.csc_matrix(rows), sp.coo_matrix(rows)):
        scores, items = model.recommend([100, 101], given, N=7)  # new users
        want_s, want_i, _ = ref_recommend(rows, S, 7)
        np.testing.assert_array_equal(items, want_i)
        np.testing.assert_array_equal(scores, want_s)
    s, i = model.recommend(5, rows[0], N=7)
    assert s.shape == i.shape == (7,)
    np.testing.assert_array_equal(i, want_i[0])
    s, i = model.recommend(np.int32(5), N=4)
    np.testing.assert_array_equal(i, model.recommend([5], N=4)[1][0])


def test_similar_items_exclude_the_item(data):
    model = ItemKNN(6).fit(data)
    S = model.similarity_.toarray()
    scores, items = model.similar_items(np.arange(30), N=8)
    for i in range(30):
        row = S[i]
        cols = np.flatnonzero(row)
        order = np.lexsort((cols, -row[cols]))
        n = len(order)
        assert i not in items[i]
        np.testing.assert_array_equal(items[i, :n], cols[order])
        np.testing.assert_array_equal(scores[i, :n], row[cols[order]])
        assert (items[i, n:] == -1).all() and np.isneginf(scores[i, n:]).all()
    s, i = model.similar_items(2, N=3)
    assert i.shape == (3,) and 2 not in i


# --------------------------------------------------------------------------- EASE
@pytest.mark.parametrize("l2", [0.5, 30.0])
def test_ease_equals_closed_form(data, l2):
    model = EASE(l2=l2).fit(sp.coo_matrix(data))
    B = ref_ease(data, l2)
    W = model.similarity_.toarray()
    assert W.dtype == np.float32 and np.all(np.diag(W) == 0)
    np.testing.assert_allclose(W, B, rtol=0, atol=2e-5 * np.abs(B).max())
    users = np.arange(40)
    scores, items = model.recommend(users, N=10)
    _, _, ref_scores = ref_recommend(data, B, 10, dense=True)
    ref_scores = np.where(data > 0, -np.inf, ref_scores)
    for u in users:
        if u == 3:
            assert (items[u] == -1).all()
            continue
        want = np.sort(ref_scores[u])[::-1][:10]
        np.testing.assert_allclose(scores[u], want, rtol=0, atol=1e-4 * np.abs(want).max())
        np.testing.assert_allclose(ref_scores[u, items[u]], want, atol=1e-4 * np.abs(want).max())
        assert not (data[u, items[u]] > 0).any()
    s, i = model.similar_items(4, N=29)
    assert 4 not in i and (i >= 0).all()
    np.testing.assert_allclose(s, np.sort(np.delete(B[4], 4))[::-1], atol=2e-5 * np.abs(B).max())


def test_ease_recommend_equals_dense_brute_force(data):
    model = EASE(l2=10.0).fit(data)
    W = model.similarity_.toarray().astype(np.float64)
    scores, items = model.recommend(np.arange(40), N=12, exclude=[2, 9], items=np.arange(25))
    banned = np.ones(30, bool)
    banned[:25] = False
    banned[[2, 9]] = True
    want_s, want_i, _ = ref_recommend(data, W, 12, banned=banned, dense=True)
    np.testing.assert_array_equal(items, want_i)
    np.testing.assert_allclose(scores, want_s, rtol=1e-6)


def test_ease_without_interactions_scores_zero():
    model = EASE().fit(np.zeros((2, 4)))
    scores, items = model.recommend([0, 1], np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]]), N=3)
    np.testing.assert_array_equal(items, [[1, 2, 3], [-1, -1, -1]])
    np.testing.assert_array_equal(scores[0], [0, 0, 0])


def test_ease_refuses_what_does_not_fit(data, monkeypatch):
    import pysim.recommend._ease as ease_module

    model = EASE(l2=1.0).fit(data)
    before = model.similarity_.toarray()
    monkeypatch.setattr(ease_module, "_physical_memory", lambda: 1000)
    with pytest.raises(MemoryError, match="dense"):
        model.fit(np.ones((3, 20)))
    np.testing.assert_array_equal(model.similarity_.toarray(), before)  # unchanged
    assert model.n_items_ == 30


# --------------------------------------------------------------------------- errors
def test_bad_input_raises(data):
    model = ItemKNN(5).fit(data)
    bad_data = data.copy()
    bad_data[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ItemKNN().fit(bad_data)
    with pytest.raises(ValueError, match=">= 0"):
        ItemKNN().fit(-data)
    with pytest.raises(TypeError, match="numeric"):
        ItemKNN().fit(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="similarity"):
        ItemKNN(similarity="pearson").fit(data)
    with pytest.raises(ValueError, match="n_neighbors"):
        ItemKNN(0).fit(data)
    with pytest.raises(ValueError, match="l2"):
        EASE(l2=0).fit(data)
    with pytest.raises(ValueError, match="users must be >= 0"):
        model.recommend(-1)
    with pytest.raises(ValueError, match="users contains 40"):
        model.recommend([0, 40])
    with pytest.raises(TypeError, match="users must be an int"):
        model.recommend(1.0)
    with pytest.raises(TypeError, match="users must be an int"):
        model.recommend(True)
    with pytest.raises(ValueError, match="N must be >= 1"):
        model.recommend(0, N=0)
    with pytest.raises(ValueError, match="one row per user"):
        model.recommend([0, 1], data[:3])
    with pytest.raises(ValueError, match="30 columns"):
        model.recommend([0], np.ones((1, 31)))
    with pytest.raises(ValueError, match="NaN"):
        model.recommend([0], bad_data[:1])
    with pytest.raises(ValueError, match="exclude contains 30"):
        model.recommend(0, exclude=[30])
    with pytest.raises(ValueError, match="items contains 99"):
        model.recommend(0, items=[1, 99])
    with pytest.raises(TypeError, match="exclude must be an int"):
        model.recommend(0, exclude=[1.5])
    with pytest.raises(ValueError, match="items contains 30"):
        model.similar_items(30)
    with pytest.raises(TypeError, match="exclude_seen"):
        model.recommend(0, exclude_seen=1)
    with pytest.raises(ValueError, match="threads"):
        model.recommend(0, threads=0)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ItemKNN().recommend(0)


def test_failed_fit_leaves_model_unchanged(data):
    model = ItemKNN(5).fit(data)
    before = model.similarity_.copy()
    bad = data.copy()
    bad[1, 1] = -1
    with pytest.raises(ValueError):
        model.fit(bad)
    assert (model.similarity_ != before).nnz == 0 and model.n_users_ == 40


@pytest.mark.parametrize("cls", [ItemKNN, EASE])
def test_pickle_and_save_load_round_trip(data, cls, tmp_path):
    model = (cls(5, similarity="bm25") if cls is ItemKNN else cls(l2=3.0)).fit(data)
    want = model.recommend(np.arange(40), N=6, exclude=[1])
    for copy in (pickle.loads(pickle.dumps(model)), None):
        if copy is None:
            model.save(tmp_path / "m.pysim")
            copy = cls.load(tmp_path / "m.pysim")
        assert copy.get_params() == model.get_params()
        got = copy.recommend(np.arange(40), N=6, exclude=[1])
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    unfitted = pickle.loads(pickle.dumps(cls()))
    assert not hasattr(unfitted, "n_items_")
    raw = bytearray((tmp_path / "m.pysim").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "bad.pysim").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        cls.load(tmp_path / "bad.pysim")


# --------------------------------------------------------------------------- evaluation
def test_temporal_split_holds_out_the_latest():
    users = [0, 0, 0, 0, 0, 1, 1, 2]
    items = [0, 1, 2, 3, 4, 0, 1, 3]
    times = [5, 1, 4, 2, 3, 9, 8, 1]
    train, test = temporal_split(users, items, times, test_fraction=0.4)
    # user 0: 5 interactions, round(2.0) = 2 held out: the latest two (items 0 and 2)
    assert test[0].indices.tolist() == [0, 2] and train[0].indices.tolist() == [1, 3, 4]
    assert test[1].indices.tolist() == [0] and train[1].indices.tolist() == [1]
    assert test[2].indices.tolist() == [3] and train[2].nnz == 0  # one interaction: test
    assert (train + test).sum() == 8 and train.multiply(test).nnz == 0
    with pytest.raises(ValueError, match="test_fraction"):
        temporal_split(users, items, times, test_fraction=1.0)
    with pytest.raises(ValueError, match="one length"):
        temporal_split(users, items[:-1], times)
    with pytest.raises(TypeError, match="users"):
        temporal_split(np.array(users, float), items, times)


def test_ranking_scores_by_hand():
    recommended = np.array([[3, 1, -1, 7], [0, 2, 4, 5], [9, 9, 8, 1]])
    relevant = [np.array([1, 7]), np.array([5, 6, 8]), np.array([9])]
    got = ranking_scores(recommended, relevant, k=3)
    # user 0: hit at rank 2; user 1: none in top 3; user 2: hit at rank 1 (repeat ignored)
    d = 1 / np.log2(np.arange(2, 5))
    want = {
        "precision": (1 / 3 + 0 + 1 / 3) / 3,
        "recall": (1 / 2 + 0 + 1) / 3,
        "ndcg": (d[1] / (d[0] + d[1]) + 0 + 1) / 3,
        "map": ((1 / 2) / 2 + 0 + 1) / 3,
        "hit_rate": 2 / 3,
    }
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key]), key
    as_matrix = sp.csr_matrix((np.ones(6), np.r_[1, 7, 5, 6, 8, 9], [0, 2, 5, 6]), shape=(3, 10))
    assert ranking_scores(recommended, as_matrix, k=3) == pytest.approx(got)
    empty = ranking_scores(recommended, [np.array([1]), np.array([], int), np.array([9])], k=1)
    assert empty["precision"] == pytest.approx(0.5)  # the user without relevant items is skipped
    with pytest.raises(ValueError, match="at least k"):
        ranking_scores(recommended, relevant, k=5)
    with pytest.raises(ValueError, match="one entry per"):
        ranking_scores(recommended, relevant[:2], k=3)


# --------------------------------------------------------------------------- MovieLens
MOVIELENS = Path(__file__).resolve().parent.parent / "data" / "movielens-small" / "ratings.csv.gz"


@pytest.fixture(scope="module")
def movielens():
    """The temporal 80/20 split of MovieLens-small (embedded in data/), every rating = 1."""
    r = np.loadtxt(MOVIELENS, delimiter=",", skiprows=1)
    users = np.unique(r[:, 0], return_inverse=True)[1]
    items = np.unique(r[:, 1], return_inverse=True)[1]
    return temporal_split(users, items, r[:, 3], test_fraction=0.2)


def popularity_ndcg(train, test) -> float:
    counts = np.asarray(train.sum(axis=0)).ravel()
    scores = np.broadcast_to(counts, train.shape).copy()
    scores[train.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return ranking_scores(top, test, k=10)["ndcg"]


def test_movielens_split_shape(movielens):
    train, test = movielens
    assert train.shape == test.shape == (610, 9724)
    assert train.nnz + test.nnz == 100836
    per_user = np.diff(test.indptr)
    assert per_user.min() >= 1 and test.nnz == pytest.approx(0.2 * 100836, rel=0.01)


@pytest.mark.parametrize("similarity", ["cosine", "tfidf", "bm25"])
def test_movielens_quality_beats_popularity(movielens, similarity):
    train, test = movielens
    baseline = popularity_ndcg(train, test)
    model = ItemKNN(100, similarity=similarity).fit(train)
    scores, items = model.recommend(np.arange(610), N=10)
    got = ranking_scores(items, test, k=10)
    # Measured on this split with `implicit` (same similarity, K = 100): cosine 0.114,
    # tfidf 0.115, bm25 0.089; popularity 0.088.
    want = {"cosine": 0.114, "tfidf": 0.115, "bm25": 0.089}[similarity]
    assert got["ndcg"] == pytest.approx(want, abs=0.005)
    if similarity != "bm25":
        assert got["ndcg"] > baseline + 0.015, (got["ndcg"], baseline)
    assert baseline == pytest.approx(0.088, abs=0.003)
    seen = train[np.arange(610)[:, None], np.maximum(items, 0)].toarray()
    assert not seen[items >= 0].any()  # never a film the user has rated
    assert (items >= 0).all()  # every user has history, so 10 recommendations each


@pytest.mark.slow
def test_movielens_ease_beats_item_knn(movielens):
    train, test = movielens
    knn = ItemKNN(100, similarity="tfidf").fit(train).recommend(np.arange(610), N=10)[1]
    ease = EASE(l2=500.0).fit(train).recommend(np.arange(610), N=10)[1]
    best_knn = ranking_scores(knn, test)["ndcg"]
    assert ranking_scores(ease, test)["ndcg"] >= 1.10 * best_knn


# --------------------------------------------------------------------------- embeddings
def test_embedding_recommender_equals_brute_force(rng):
    import pysim
    from pysim.recommend import EmbeddingRecommender

    X = rng.standard_normal((150, 12)).astype(np.float32)
    index = pysim.HNSWIndex(12, metric="cosine")
    index.add(X)
    index.ef = 200  # at least the index size: the search is exact
    histories = [np.array([3, 7, 20]), np.array([], dtype=np.int64), np.array([149])]
    scores, items = EmbeddingRecommender(index).recommend(histories, N=8, exclude=[0, 1, 2])
    assert scores.shape == items.shape == (3, 8)
    assert (items[1] == -1).all() and np.isneginf(scores[1]).all()
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    for u in (0, 2):
        q = unit[histories[u]].mean(axis=0)
        sims = unit @ (q / np.linalg.norm(q))
        sims[np.r_[histories[u], [0, 1, 2]]] = -np.inf
        want = np.argsort(-sims, kind="stable")[:8]
        np.testing.assert_array_equal(items[u], want)
        np.testing.assert_allclose(scores[u], sims[want], atol=1e-5)
    _, kept = EmbeddingRecommender(index).recommend([np.array([5])], N=3, exclude_seen=False)
    assert kept[0, 0] == 5  # its own nearest neighbour when not excluded
    with pytest.raises(ValueError, match="not in the index"):
        EmbeddingRecommender(index).recommend([np.array([999])])
    with pytest.raises(TypeError, match="get_items"):
        EmbeddingRecommender(object())
    with pytest.raises(ValueError, match="aggregate"):
        EmbeddingRecommender(index, aggregate="max")
