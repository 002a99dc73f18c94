"""Weakly supervised metric learning: learners fitted on pairs, triplets or quadruplets.

The API is metric-learn's, so ``import metric_learn`` can be swapped for
``pysim.metric_learning``: a *pair* learner is fitted on ``pairs`` of shape (n, 2, d) with
labels +1 (similar) / -1 (dissimilar), a *triplet* learner on (n, 3, d) triplets ("a is closer
to b than to c"), a *quadruplet* learner on (n, 4, d) quadruplets ("d(a, b) < d(c, d)"). With
``preprocessor=X`` the tuples may instead be (n, t) integer indices into the rows of X, which
is how large constraint sets are kept small: the rows are gathered once per fit.

Everything a learner needs besides its optimiser lives here, once: tuple validation (shape,
NaN, labels), the pair classifier (``decision_function = -distance``, ``predict`` at the
distance ``threshold_``, ``calibrate_threshold``), the triplet / quadruplet scores, and the
constraint generators used by the ``*_Supervised`` twins (pairs, chunklets and k-NN triplets
drawn from class labels, by sampling in class-sorted rows rather than enumerating n² pairs).

Thresholds are read off :func:`pysim.metrics.operating_points`, the same operating points that
:class:`pysim.PairVerifier` and the EER use, so the verification code has one implementation.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import metrics as _metrics
from .._distances import cdist, paired_distances
from .._validation import resolve_threads, to_array
from ._base import (
    LabelledData,
    MahalanobisMixin,
    SupervisedMahalanobisMixin,
    _seed,
    block_rows,
    run_tasks,
)

_TUPLE_NAMES = {2: "pairs", 3: "triplets", 4: "quadruplets"}


def _check_preprocessor_array(preprocessor: Any) -> np.ndarray:
    X = to_array(preprocessor, "preprocessor")
    if X.ndim != 2:
        raise ValueError(
            f"preprocessor must be a 2-D array (n_samples, n_features) or a callable, got shape "
            f"{X.shape}"
        )
    X = np.asarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        raise ValueError("preprocessor contains NaN or infinity")
    return X


def gather_tuples(tuples: Any, tuple_size: int, preprocessor: Any, name: str) -> np.ndarray:
    """Validated tuples as a C-contiguous float64 array of shape (n, tuple_size, d).

    `tuples` is either an (n, tuple_size, d) array of points or, with a `preprocessor` (an
    (n_samples, d) array or a callable mapping an int index array to rows), an
    (n, tuple_size) array of row indices.
    """
    what = _TUPLE_NAMES[tuple_size]
    arr = to_array(tuples, name)
    if arr.ndim == 2 and arr.shape[1] == tuple_size and preprocessor is not None:
        if arr.dtype.kind not in "iu" and not (
            arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
        ):
            raise ValueError(f"{name} given as indices must hold integers, got {arr.dtype}")
        idx = arr.astype(np.int64)
        if callable(preprocessor):
            rows = np.asarray(preprocessor(idx.ravel()), dtype=np.float64)
            if rows.ndim != 2 or rows.shape[0] != idx.size:
                raise ValueError(
                    "preprocessor(indices) must return one row per index, shape "
                    f"({idx.size}, n_features); got {rows.shape}"
                )
            out = rows.reshape(idx.shape[0], tuple_size, rows.shape[1])
        else:
            X = _check_preprocessor_array(preprocessor)
            if idx.size and (idx.min() < -len(X) or idx.max() >= len(X)):
                raise ValueError(
                    f"{name} index out of range for preprocessor with {len(X)} rows "
                    f"(got indices in [{idx.min()}, {idx.max()}])"
                )
            out = X[idx]
    elif arr.ndim == 3 and arr.shape[1] == tuple_size:
        out = arr.astype(np.float64, copy=False)
    elif arr.ndim == 2 and arr.shape[1] == tuple_size:
        raise ValueError(
            f"{name} of shape {arr.shape} looks like indices; pass preprocessor=X (the rows "
            f"they index) or the {what} themselves as an (n, {tuple_size}, n_features) array"
        )
    else:
        raise ValueError(
            f"{name} must have shape (n_{what}, {tuple_size}, n_features), or "
            f"(n_{what}, {tuple_size}) indices with a preprocessor; got shape {arr.shape}"
        )
    if out.shape[0] == 0:
        raise ValueError(f"{name} is empty: at least one of the {what} is needed")
    if out.shape[2] == 0:
        raise ValueError(f"{name} has 0 features")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return np.ascontiguousarray(out)


def check_pair_labels(y: Any, n_pairs: int, *, both: bool = True) -> np.ndarray:
    """Pair labels as an int64 array of +1 / -1, one per pair (both kinds present if `both`)."""
    if y is None:
        raise ValueError("y is required: +1 for similar pairs, -1 for dissimilar pairs")
    arr = to_array(y, "y")
    if arr.ndim != 1 or arr.shape[0] != n_pairs:
        raise ValueError(f"y must have shape ({n_pairs},) (one label per pair), got {arr.shape}")
    if not np.isin(arr, (-1, 1)).all():
        bad = arr[~np.isin(arr, (-1, 1))][0]
        raise ValueError(f"y must contain only +1 (similar) and -1 (dissimilar), got {bad!r}")
    out = arr.astype(np.int64)
    if both and ((out == 1).all() or (out == -1).all()):
        raise ValueError(
            "y has a single class: both similar (+1) and dissimilar (-1) pairs are needed"
        )
    return out


class WeaklySupervisedMixin(MahalanobisMixin):
    """Tuple handling shared by the pair, triplet and quadruplet learners (not public)."""

    _tuple_size: int = 2

    def _prepare(self, tuples: Any, *, reset: bool, name: str | None = None) -> np.ndarray:
        name = name or _TUPLE_NAMES[self._tuple_size]
        T = gather_tuples(tuples, self._tuple_size, getattr(self, "preprocessor", None), name)
        d = T.shape[2]
        if reset:
            self.n_features_in_ = d
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif d != self.n_features_in_:
            raise ValueError(
                f"{name} have {d} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return T

    def _tuple_distances(self, T: np.ndarray, a: int, b: int) -> np.ndarray:
        Z = T @ self.components_.T  # (n, t, k)
        return paired_distances(
            np.ascontiguousarray(Z[:, a]), np.ascontiguousarray(Z[:, b]), "euclidean"
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self._tuple_size == 2
        return tags


class PairsLearnerMixin(WeaklySupervisedMixin):
    """Pair classifier API: metric-learn's ``_PairsClassifierMixin`` (not public).

    ``decision_function(pairs) = -distance`` (higher = more alike) and
    ``predict(pairs) = +1 where distance <= threshold_, else -1``; ``fit`` calibrates
    ``threshold_`` on the training pairs for accuracy, like metric-learn.
    """

    _tuple_size = 2
    classes_ = np.array([-1, 1])

    def _fit_pairs(self, pairs: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        P = self._prepare(pairs, reset=True)
        return P, check_pair_labels(y, len(P))

    def decision_function(self, pairs: Any) -> np.ndarray:
        """Similarity of each pair: the negated learned distance (higher = more alike).

        Parameters
        ----------
        pairs : array_like, shape (n_pairs, 2, n_features), or (n_pairs, 2) indices
            With ``preprocessor`` set, indices into its rows.

        Returns
        -------
        ndarray, shape (n_pairs,), float64
        """
        return self.pair_score(pairs)

    def predict(self, pairs: Any) -> np.ndarray:
        """+1 (similar) where the learned distance is at most ``threshold_``, else -1.

        Parameters
        ----------
        pairs : array_like, shape (n_pairs, 2, n_features), or (n_pairs, 2) indices

        Returns
        -------
        ndarray, shape (n_pairs,), int64 in {-1, +1}
        """
        check_is_fitted(self, ["components_", "threshold_"])
        return np.where(self.pair_distance(pairs) <= self.threshold_, 1, -1)

    def score(self, pairs: Any, y: Any) -> float:
        """ROC AUC of :meth:`decision_function` against the pair labels (as metric-learn).

        Parameters
        ----------
        pairs : array_like, shape (n_pairs, 2, n_features), or (n_pairs, 2) indices
        y : array_like, shape (n_pairs,), +1 / -1

        Returns
        -------
        float in [0, 1]
        """
        scores = self.decision_function(pairs)
        return float(roc_auc_score(check_pair_labels(y, len(scores)), scores))

    def set_threshold(self, threshold: float) -> PairsLearnerMixin:
        """Set ``threshold_`` (a learned distance) by hand.

        Parameters
        ----------
        threshold : float
            Pairs at distance ``<= threshold`` are predicted similar.

        Returns
        -------
        self
        """
        if isinstance(threshold, bool) or not isinstance(threshold, Real) or np.isnan(threshold):
            raise ValueError(f"threshold must be a real number, got {threshold!r}")
        self.threshold_ = float(threshold)
        return self

    def calibrate_threshold(
        self,
        pairs_valid: Any,
        y_valid: Any,
        strategy: str = "accuracy",
        min_rate: float | None = None,
        beta: float = 1.0,
    ) -> PairsLearnerMixin:
        """Choose ``threshold_`` on labelled pairs.

        Parameters
        ----------
        pairs_valid : array_like, shape (n_pairs, 2, n_features), or (n_pairs, 2) indices
        y_valid : array_like, shape (n_pairs,), +1 / -1, both present
        strategy : {"accuracy", "f_beta", "max_tpr", "max_tnr"}, default="accuracy"
            "accuracy": highest accuracy; "f_beta": highest F-beta of the similar class;
            "max_tpr": highest true-positive rate with a true-negative rate >= `min_rate`;
            "max_tnr": highest true-negative rate with a true-positive rate >= `min_rate`.
        min_rate : float in [0, 1], optional
            Required by "max_tpr" and "max_tnr".
        beta : float > 0, default=1.0
            Weight of recall in "f_beta".

        Returns
        -------
        self

        Notes
        -----
        The threshold is put half-way between the last accepted distance and the next one,
        so it is not tied to a training pair.
        """
        check_is_fitted(self, "components_")
        strategies = ("accuracy", "f_beta", "max_tpr", "max_tnr")
        if not isinstance(strategy, str) or strategy not in strategies:
            raise ValueError(
                f"strategy must be one of {', '.join(map(repr, strategies))}; got {strategy!r}"
            )
        if strategy in ("max_tpr", "max_tnr"):
            if min_rate is None:
                raise ValueError(f"strategy={strategy!r} needs min_rate, a number in [0, 1]")
            min_rate = _metrics._check_rate(min_rate, "min_rate")
        if strategy == "f_beta" and (
            isinstance(beta, bool) or not isinstance(beta, Real) or not beta > 0
        ):
            raise ValueError(f"beta must be a positive number, got {beta!r}")
        dist = self.pair_distance(pairs_valid).astype(np.float64)
        y = check_pair_labels(y_valid, len(dist))
        thresholds, far, frr = _metrics.operating_points(-dist, y == 1)
        tpr, tnr = 1.0 - frr, 1.0 - far
        n_pos, n_neg = int((y == 1).sum()), int((y == -1).sum())
        if strategy == "accuracy":
            j = int(np.argmax(n_pos * tpr + n_neg * tnr))
        elif strategy == "f_beta":
            tp, fp = n_pos * tpr, n_neg * far
            b2 = float(beta) ** 2
            with np.errstate(invalid="ignore", divide="ignore"):
                f = (1 + b2) * tp / ((1 + b2) * tp + b2 * (n_pos - tp) + fp)
            j = int(np.argmax(np.nan_to_num(f, nan=0.0)))
        elif strategy == "max_tpr":
            j = _metrics._far_point(far, 1.0 - min_rate)
        else:  # max_tnr: the least accepting point whose TPR reaches min_rate
            j = int(np.argmax(tpr >= min_rate - 1e-12))
        accepted = -thresholds[j]  # largest distance accepted (-inf: accept nothing)
        if j + 1 < len(thresholds):
            nxt = -thresholds[j + 1]
            self.threshold_ = float(nxt if j == 0 else (accepted + nxt) / 2.0)
            if j == 0:  # accept nothing: just below the smallest distance
                self.threshold_ = float(np.nextafter(nxt, -np.inf))
        else:
            self.threshold_ = float(accepted)
        return self


class _OrderedTuplesMixin(WeaklySupervisedMixin):
    """Triplet / quadruplet API: each tuple says the "near" pair is closer than the "far"
    one (triplets (a, b, c): d(a, b) < d(a, c); quadruplets (a, b, c, d): d(a, b) < d(c, d))."""

    _near: tuple[int, int] = (0, 1)
    _far: tuple[int, int] = (0, 2)

    def decision_function(self, tuples: Any) -> np.ndarray:
        """Far-pair minus near-pair learned distance of each tuple: positive when ordered right.

        Parameters
        ----------
        tuples : array_like, shape (n, t, n_features), or (n, t) indices with a preprocessor
            t = 3 (triplets) or 4 (quadruplets), as the learner takes.

        Returns
        -------
        ndarray, shape (n,), float64
        """
        check_is_fitted(self, "components_")
        T = self._prepare(tuples, reset=False)
        return self._tuple_distances(T, *self._far) - self._tuple_distances(T, *self._near)

    def predict(self, tuples: Any) -> np.ndarray:
        """+1 where the near pair is closer than the far pair under the learned metric, else -1.

        Parameters
        ----------
        tuples : array_like, shape (n, t, n_features), or (n, t) indices

        Returns
        -------
        ndarray, shape (n,), int64 in {-1, +1}
        """
        return np.where(self.decision_function(tuples) > 0, 1, -1)

    def score(self, tuples: Any, y: Any = None) -> float:
        """Fraction of tuples ordered right.

        Parameters
        ----------
        tuples : array_like, shape (n, t, n_features), or (n, t) indices
        y : ignored

        Returns
        -------
        float in [0, 1]
        """
        return float(np.mean(self.predict(tuples) == 1))


class TripletsLearnerMixin(_OrderedTuplesMixin):
    """Triplet API (metric-learn's ``_TripletsClassifierMixin``): a should be nearer b than c."""

    _tuple_size = 3
    _near, _far = (0, 1), (0, 2)


class QuadrupletsLearnerMixin(_OrderedTuplesMixin):
    """Quadruplet API (metric-learn's ``_QuadrupletsClassifierMixin``): d(a, b) < d(c, d)."""

    _tuple_size = 4
    _near, _far = (0, 1), (2, 3)


# ------------------------------------------------------------ constraints drawn from labels

#: Constraints every ``*_Supervised`` twin shares (the sampling size and its seed).
SUPERVISED_CONSTRAINTS: dict[str, list[Any]] = {
    "n_constraints": [Interval(Integral, 1, None, closed="left"), None],
    "random_state": ["random_state"],
}
PREPROCESSOR_CONSTRAINT: dict[str, list[Any]] = {"preprocessor": [None, "array-like", callable]}
PAIR_STRATEGIES = StrOptions({"accuracy", "f_beta", "max_tpr", "max_tnr"})


def rng_of(random_state: Any) -> np.random.Generator:
    """A numpy Generator from scikit-learn's random_state conventions."""
    return np.random.default_rng(_seed(random_state))


def _partners(data: LabelledData, anchors: np.ndarray, rng: np.random.Generator, same: bool):
    """One random partner per anchor (sorted rows): same class (never itself) or another."""
    codes, starts, counts = data.codes, data.starts, data.counts
    n = len(codes)
    c = codes[anchors]
    if same:
        size = counts[c]
        off = (rng.random(len(anchors)) * (size - 1)).astype(np.int64)
        pos = starts[c] + off
        return pos + (pos >= anchors)  # skip the anchor itself
    size = n - counts[c]
    off = (rng.random(len(anchors)) * size).astype(np.int64)
    return off + counts[c] * (off >= starts[c])  # skip the anchor's class run


def _similar_then_dissimilar(data: LabelledData, n_constraints: int, random_state: Any):
    """(a, b, c, d): n_constraints uniform anchors a with same-class partners b, then as many
    anchors c with other-class partners d (the draws pairs and quadruplets both start from)."""
    rng = rng_of(random_state)
    n = len(data.codes)
    a = rng.integers(0, n, n_constraints)
    b = _partners(data, a, rng, same=True)
    c = rng.integers(0, n, n_constraints)
    d = _partners(data, c, rng, same=False)
    return a, b, c, d


def positive_negative_pairs(
    data: LabelledData, n_constraints: int, random_state: Any
) -> tuple[np.ndarray, np.ndarray]:
    """`n_constraints` similar and `n_constraints` dissimilar pairs drawn from labels.

    Anchors are drawn uniformly, partners uniformly from the anchor's class (similar) or from
    the other classes (dissimilar); duplicates are dropped. O(n_constraints) memory.

    Returns
    -------
    pairs : ndarray (m, 2) int64 of sorted-row indices
    y : ndarray (m,) int64, +1 / -1
    """
    a, b, c, d = _similar_then_dissimilar(data, n_constraints, random_state)
    n = len(data.codes)
    pos, neg = _distinct_pairs(a, b, n), _distinct_pairs(c, d, n)
    pairs = np.concatenate([pos, neg])
    y = np.r_[np.ones(len(pos), np.int64), -np.ones(len(neg), np.int64)]
    return pairs, y


def _distinct_pairs(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """The distinct unordered pairs {a_i, b_i} as (m, 2) rows (smaller index first), in
    lexicographic order: ``np.unique(np.sort(np.c_[a, b], axis=1), axis=0)`` through a 1-D
    unique of ``lo * n + hi`` (a row-wise unique sorts structured rows, ~10x slower), done
    as a sort and an adjacent-difference mask (numpy 2.4's hash-based ``np.unique`` takes
    ~12 ms on 50,000 keys, the sort < 1 ms)."""
    key = np.minimum(a, b) * np.int64(n) + np.maximum(a, b)
    key.sort()
    keep = np.empty(len(key), bool)
    keep[:1] = True
    np.not_equal(key[1:], key[:-1], out=keep[1:])
    key = key[keep]
    out = np.empty((len(key), 2), np.int64)
    np.floor_divide(key, n, out=out[:, 0])
    np.subtract(key, out[:, 0] * n, out=out[:, 1])
    return out


def quadruplets_from_labels(
    data: LabelledData, n_constraints: int, random_state: Any
) -> np.ndarray:
    """(a, b, c, d) sorted-row indices with a, b of one class and c, d of two (LSML)."""
    a, b, c, d = _similar_then_dissimilar(data, n_constraints, random_state)
    return np.c_[a, b, c, d]


def chunks_from_labels(
    data: LabelledData, n_chunks: int, chunk_size: int, random_state: Any
) -> np.ndarray:
    """Chunklet id per sorted row (-1: in no chunklet): disjoint same-class groups (RCA).

    As many of the `n_chunks` as the classes allow are formed, each of `chunk_size` distinct
    rows of one class, classes chosen with probability proportional to what they have left.
    """
    rng = rng_of(random_state)
    counts = data.counts.copy()
    capacity = counts // chunk_size
    # Drawing chunks one at a time with probability proportional to what each class has
    # left is sampling chunk slots without replacement: one multivariate hypergeometric
    # draw (a Python loop of n_chunks weighted choices was most of an RCA fit).
    per_class = rng.multivariate_hypergeometric(
        capacity.astype(np.int64), min(int(n_chunks), int(capacity.sum()))
    ).astype(np.int64)
    out = np.full(len(data.codes), -1, np.int64)
    chunk = 0
    for c, m in enumerate(per_class):
        if m == 0:
            continue
        rows = data.starts[c] + rng.permutation(int(counts[c]))[: m * chunk_size]
        out[rows] = chunk + np.arange(m).repeat(chunk_size)
        chunk += m
    return out


def knn_triplets(
    data: LabelledData, k_genuine: int, k_impostor: int, threads: int | None = 1
) -> np.ndarray:
    """(a, b, c) sorted-row triplets: b one of a's k_genuine nearest same-class rows, c one of
    its k_impostor nearest other-class rows (metric-learn's ``generate_knntriplets``).

    Exact Euclidean neighbours from ``pysim.cdist`` in row blocks (never n² memory).
    Classes too small for k_genuine (or too few other rows for k_impostor) use what there is.
    """
    X, starts, codes = data.X, data.starts, data.codes
    n = len(X)
    kg = min(k_genuine, int(data.counts.min()) - 1)
    ki = min(k_impostor, int((n - data.counts).min()))
    if kg < 1 or ki < 1:
        raise ValueError(
            "cannot form triplets: every class needs at least 2 samples and 2 classes are needed"
        )
    rows = block_rows(n)
    cols = np.arange(n)
    bounds = list(range(0, n, rows))

    # Row blocks are independent: on `threads` workers (cdist serial inside each), kept in
    # row order, so the triplets are the same at any thread count.
    def block(t: int) -> np.ndarray:
        b0 = bounds[t]
        b1 = min(n, b0 + rows)
        D = cdist(X[b0:b1], X, "sqeuclidean", threads=1)
        same = (cols >= starts[codes[b0:b1]][:, None]) & (cols < starts[codes[b0:b1] + 1][:, None])
        Dg = np.where(same, D, np.inf)
        Dg[np.arange(b1 - b0), np.arange(b0, b1)] = np.inf
        Di = np.where(same, np.inf, D)
        gen = _smallest_sorted(Dg, kg)
        imp = _smallest_sorted(Di, ki)
        a = np.arange(b0, b1)
        trip = np.stack(
            np.broadcast_arrays(a[:, None, None], gen[:, :, None], imp[:, None, :]), axis=-1
        )
        return trip.reshape(-1, 3)

    return np.concatenate(run_tasks(block, len(bounds), resolve_threads(threads)))


def _smallest_sorted(D: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k smallest entries of each row, ascending, ties to the smaller column:
    ``np.argsort(D, kind="stable")[:, :k]`` in O(n) per row (argpartition, then a sort of k).
    Rows with a tie at or across the k-th value take the full stable sort, so the result is
    the same."""
    if k >= D.shape[1]:
        return np.argsort(D, axis=1, kind="stable")[:, :k]
    part = np.argpartition(D, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(D, part, axis=1)
    idx = np.argsort(vals, axis=1, kind="stable")
    out = np.take_along_axis(part, idx, axis=1)
    vs = np.take_along_axis(vals, idx, axis=1)
    tied = ((D <= vs[:, -1:]).sum(axis=1) > k) | (vs[:, 1:] == vs[:, :-1]).any(axis=1)
    if tied.any():
        rows = np.nonzero(tied)[0]
        out[rows] = np.argsort(D[rows], axis=1, kind="stable")[:, :k]
    return out


def smooth_hinge(z: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """``max(z, 0)`` smoothed to a quadratic on ``[0, width]``; value and derivative.

    C¹, so quasi-Newton solvers (L-BFGS) take well-defined steps on hinge losses; it equals
    the hinge minus ``width / 2`` beyond the kink.
    """
    lin = z >= width
    quad = (z > 0) & ~lin
    value = np.where(lin, z - width / 2, np.where(quad, z * z / (2 * width), 0.0))
    deriv = np.where(lin, 1.0, np.where(quad, z / width, 0.0))
    return value, deriv


def labelled_rows(estimator: Any, X: Any, y: Any) -> LabelledData:
    """Validated (X, y) of a ``*_Supervised`` twin, sorted by class (see ``check_labelled``)."""
    from ._base import check_labelled

    return check_labelled(estimator, X, y)


__all__ = [
    "PairsLearnerMixin",
    "QuadrupletsLearnerMixin",
    "TripletsLearnerMixin",
    "WeaklySupervisedMixin",
    "chunks_from_labels",
    "gather_tuples",
    "knn_triplets",
    "positive_negative_pairs",
    "quadruplets_from_labels",
]


class SupervisedTwinMixin(SupervisedMahalanobisMixin):
    """What the ``*_Supervised`` twins share: a transformer fitted on (X, labels) (not public).

    The twin draws constraints from the labels and hands them to its algorithm; it has no
    ``predict`` / ``score`` (it is a scikit-learn transformer, checked by ``check_estimator``).
    """

    def _labelled(self, X: Any, y: Any) -> LabelledData:
        self._validate_params()
        return labelled_rows(self, X, y)

    def _n_constraints(self, data: LabelledData) -> int:
        n = getattr(self, "n_constraints", None)
        return int(n) if n is not None else 20 * len(data.classes) ** 2

    def _fit_on_drawn_pairs(self, X: Any, y: Any, *learn_args: Any) -> Any:
        """The pair twins' fit: draw similar / dissimilar pairs from the labels, learn on them."""
        data = self._labelled(X, y)
        idx, yy = positive_negative_pairs(data, self._n_constraints(data), self.random_state)
        self._learn(data.X[idx], yy, *learn_args)
        self.classes_ = data.classes
        return self
