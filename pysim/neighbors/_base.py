"""What the k-NN estimators share: parameter checks, fitting an index, k-NN and radius queries.

The estimators follow scikit-learn's ``sklearn.neighbors`` closely (same attribute names,
same error messages, same ``kneighbors(X=None)`` leave-one-out rule) so that they drop into
pipelines, grid searches and ``check_estimator``; what differs is underneath. A fitted
estimator is a pipeline of three steps, each optional, applied to training rows and queries
alike:

1. ``metric_learner``: any transformer (pysim's NCA/LMNN/Whitening or scikit-learn's). An
   unfitted one is cloned and fitted on the training data; a fitted one is used as is.
2. The Mahalanobis factor: ``metric="mahalanobis"`` with ``metric_params={"VI": VI}`` is
   searched as the Euclidean distance between rows mapped by ``L`` (``VI = Lᵀ L``), so every
   index handles it the same way and the KD-tree can serve it too.
3. The index (``BruteForceIndex``, ``KDTreeIndex`` or ``HNSWIndex``), which sees the mapped
   rows and an index metric among euclidean / sqeuclidean / cosine / ip.

``_fit_X`` keeps the *mapped* training rows (the brute-force index references that array
instead of copying it), because ``kneighbors(X=None)`` queries the training set in the
searched space. Pickles store the index except the brute-force one, which is rebuilt from
``_fit_X`` on load (O(n d), exactly the same index) so its rows are not stored twice.

The ``algorithm="auto"`` rule (measured, see ``choose_algorithm``) only ever picks an exact
index: approximate search has to be asked for.
"""

from __future__ import annotations

import inspect
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator, MultiOutputMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils._param_validation import InvalidParameterError as _SklearnInvalidParameterError
from sklearn.utils.validation import check_is_fitted, validate_data

from .._brute import BruteForceIndex
from .._hnsw import HNSWIndex
from .._kdtree import KDTreeIndex
from .._validation import MAX_THREADS, MetricMapping, resolve_threads
from .._validation import resolve_metric as resolve_metric_mapping

ALGORITHMS = ("auto", "brute", "kd_tree", "hnsw")
METRICS = ("euclidean", "sqeuclidean", "cosine", "ip", "mahalanobis")
METRIC_ALIASES = {"l2": "euclidean"}
# Metrics each index can serve (mahalanobis reaches the index as euclidean on mapped rows).
ALGORITHM_METRICS = {
    "brute": METRICS,
    "kd_tree": ("euclidean", "sqeuclidean", "mahalanobis"),
    "hnsw": METRICS,
}
# The index class behind each algorithm and the constructor arguments the estimator sets
# itself (everything else in the signature may come from ``index_params``).
_INDEX_CLASSES = {"brute": BruteForceIndex, "kd_tree": KDTreeIndex, "hnsw": HNSWIndex}
_RESERVED = {"data", "dim", "metric", "VI", "threads"}
# Extra ``index_params`` keys handled by the estimator, not the index constructor.
_EXTRA_PARAMS = {"hnsw": {"ef"}}

# ``algorithm="auto"``: the KD-tree is chosen for Euclidean-type metrics up to this many
# (searched) dimensions. Measured with pysim's own indexes, build + (k+1)-NN of up to 5,000
# training rows, k in {5, 50}, float32, 2 threads (tree time / brute time):
#   clustered data (50 Gaussian blobs), n = 1e3..1e5, d = 2..48: the tree wins 1.3-80x at
#     every size and dimension measured;
#   real data, n = 9,000-20,000: MNIST and MiniLM reduced by PCA to d = 16 win 1.8-2.5x; at
#     d = 32 it is a tie (0.74-1.2x); digits (d = 64) a tie; MNIST (784), MiniLM (384) lose
#     15x;
#   uniform data (the worst case for a tree: intrinsic dimension = d): wins up to d = 16 for
#     n <= 10,000, and up to d = 8-12 at n = 100,000, where d = 16 is 2.4x slower.
# d <= 16 takes every real and clustered win at the cost of at most 2.4x on large uniform
# data in 13-16 dimensions; scikit-learn's rule (d <= 15) is within one dimension of it.
KD_TREE_MAX_DIM = 16


#: scikit-learn's own error for a bad constructor parameter (a ValueError and a TypeError).
InvalidParameterError = _SklearnInvalidParameterError


def _param_error(owner: Any, name: str, expected: str, value: Any) -> InvalidParameterError:
    return InvalidParameterError(
        f"The {name!r} parameter of {type(owner).__name__} must be {expected}. "
        f"Got {value!r} instead."
    )


def check_positive_int(owner: Any, name: str, value: Any) -> int:
    """`value` as an int >= 1, else an InvalidParameterError naming `owner`'s parameter."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise _param_error(owner, name, "an int in the range [1, inf)", value)
    return int(value)


def resolve_metric(owner: Any, metric: Any) -> str:
    """The canonical metric name ("l2" -> "euclidean"), or an InvalidParameterError."""
    if isinstance(metric, str):
        metric = METRIC_ALIASES.get(metric, metric)
        if metric in METRICS:
            return metric
    names = sorted(set(METRICS) | set(METRIC_ALIASES))
    raise _param_error(owner, "metric", f"a str among {{{', '.join(map(repr, names))}}}", metric)


def get_weights(dist: np.ndarray | None, weights: Any) -> np.ndarray | None:
    """Neighbour weights from distances, as scikit-learn computes them.

    ``"distance"`` gives 1 / distance; a query at distance 0 from some neighbours gives those
    neighbours weight 1 and the others 0. ``None``/``"uniform"`` -> None (equal weights).
    """
    if weights in (None, "uniform"):
        return None
    if weights == "distance":
        with np.errstate(divide="ignore"):
            w = 1.0 / dist.astype(np.float64, copy=False)
        inf_mask = np.isinf(w)
        inf_row = inf_mask.any(axis=1)
        w[inf_row] = inf_mask[inf_row]
        return w
    w = np.asarray(weights(dist), dtype=np.float64)
    if w.shape != dist.shape:
        raise ValueError(
            f"weights callable must return an array of shape {dist.shape} (one weight per "
            f"neighbour), got {w.shape}"
        )
    return w


def check_nonzero_weights(weights: np.ndarray | None) -> None:
    """ValueError (scikit-learn's message) if some query's neighbours all weigh 0."""
    if weights is not None and (weights == 0).all(axis=1).any():
        raise ValueError(
            "All neighbors of some sample is getting zero weights. Please modify 'weights' "
            "to avoid this case if you are using a user-defined function."
        )


def choose_algorithm(n_samples: int, n_features: int, metric: str, n_neighbors: int) -> str:
    """The exact index ``algorithm="auto"`` picks for this problem.

    Parameters
    ----------
    n_samples : int
        Training rows.
    n_features : int
        Dimension of the searched space (after ``metric_learner``).
    metric : str
        Canonical metric name.
    n_neighbors : int
        The estimator's ``n_neighbors``.

    Returns
    -------
    str
        ``"kd_tree"`` when the metric is Euclidean-type, ``n_features <= 16`` and fewer than
        half the training rows are asked for (a tree then prunes most of the data);
        ``"brute"`` otherwise. Never ``"hnsw"``: approximate search must be asked for.
    """
    if metric not in ALGORITHM_METRICS["kd_tree"]:
        return "brute"
    if n_features > KD_TREE_MAX_DIM or n_neighbors >= n_samples // 2:
        return "brute"
    return "kd_tree"


def _index_keywords(algorithm: str) -> set[str]:
    """Keys ``index_params`` may hold for `algorithm`: its constructor's own arguments."""
    sig = inspect.signature(_INDEX_CLASSES[algorithm].__init__)
    names = {
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
    }
    return (names - _RESERVED) | _EXTRA_PARAMS.get(algorithm, set())


def _to_sparse(csr: sp.csr_matrix) -> Any:
    """CSR in the sparse interface scikit-learn is configured for (spmatrix by default)."""
    if get_config().get("sparse_interface") == "sparray":
        return sp.csr_array(csr)
    return csr


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_mode(mode: Any) -> str:
    if mode not in ("connectivity", "distance"):
        raise ValueError(
            'Unsupported mode, must be one of "connectivity", '
            f'or "distance" but got "{mode}" instead'
        )
    return mode


def is_fitted(estimator: Any) -> bool:
    """Whether scikit-learn's ``check_is_fitted`` accepts `estimator` (a given metric
    learner is used as it is when fitted, and cloned and fitted otherwise)."""
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


class NeighborsBase(MultiOutputMixin, BaseEstimator):
    """Fitting and searching shared by the k-NN estimators (not a public class).

    Subclasses define ``__init__`` (storing their parameters verbatim) and call
    :meth:`_fit_index` from ``fit`` with validated data.
    """

    #: Each parameter's type and range, checked by scikit-learn's ``_validate_params`` (the
    #: messages users know from scikit-learn); what depends on several parameters together
    #: (metric vs algorithm, VI) is checked in :meth:`_check_params`.
    _parameter_constraints: dict[str, list[Any]] = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions(set(METRICS) | set(METRIC_ALIASES))],
        "algorithm": [StrOptions(set(ALGORITHMS))],
        "metric_learner": [HasMethods(["fit", "transform"]), None],
        "metric_params": [dict, None],
        "index_params": [dict, None],
        "threads": [Interval(Integral, 1, MAX_THREADS, closed="both"), None],
    }

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> dict[str, Any]:
        """Validate the constructor parameters; return the resolved values."""
        self._validate_params()
        metric = METRIC_ALIASES.get(self.metric, self.metric)
        algorithm = self.algorithm
        if algorithm != "auto" and metric not in ALGORITHM_METRICS[algorithm]:
            raise ValueError(
                f"Metric {metric!r} not valid for algorithm {algorithm!r}; it supports "
                f"{', '.join(map(repr, ALGORITHM_METRICS[algorithm]))}. Use algorithm='brute' "
                "or 'hnsw' for this metric."
            )
        metric_params = dict(getattr(self, "metric_params", None) or {})
        unknown = set(metric_params) - {"VI"}
        if unknown:
            raise ValueError(
                f"metric_params accepts only 'VI' (for metric='mahalanobis'); got {sorted(unknown)}"
            )
        if metric == "mahalanobis" and "VI" not in metric_params:
            raise ValueError("metric='mahalanobis' needs metric_params={'VI': <(d, d) PSD matrix>}")
        if metric != "mahalanobis" and "VI" in metric_params:
            raise ValueError(
                f"metric_params['VI'] is only used with metric='mahalanobis', not {metric!r}"
            )
        return {"metric": metric, "metric_params": metric_params}

    def _fit_metric_learner(self, X: np.ndarray, y: Any) -> Any:
        """None, the given fitted learner, or a fitted clone of the given unfitted one."""
        learner = self.metric_learner
        if learner is None or is_fitted(learner):
            return learner
        needs_y = get_tags(learner).target_tags.required
        if needs_y and y is None:
            raise ValueError(
                f"metric_learner {type(learner).__name__} is not fitted and needs class labels: "
                "call fit(X, y), or pass a learner fitted already"
            )
        if needs_y and np.ndim(y) != 1:
            raise ValueError(
                f"metric_learner {type(learner).__name__} is not fitted and learns from 1-D class "
                f"labels; y has shape {np.shape(y)} (multi-output y needs a fitted or "
                "unsupervised metric_learner)"
            )
        learner = clone(learner)
        return learner.fit(X, y) if needs_y else learner.fit(X)

    def _learner_takes_multi_output(self) -> bool:
        """False when fit would have to train a supervised learner (1-D labels only)."""
        learner = self.metric_learner
        if learner is None or not hasattr(learner, "fit"):
            return True
        try:
            check_is_fitted(learner)
            return True
        except (NotFittedError, TypeError):
            return not get_tags(learner).target_tags.required

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = self._learner_takes_multi_output()
        return tags

    def _learned(
        self, X: np.ndarray, learner: Any, mapping: MetricMapping | None, dtype: np.dtype
    ) -> np.ndarray:
        """Rows in the searched space: learner transform, then the metric's mapping (the
        Mahalanobis factor, through the resolver every pysim distance uses)."""
        if learner is not None:
            X = np.asarray(learner.transform(X))
            if X.ndim != 2 or X.shape[1] < 1 or X.dtype.kind not in "biuf":
                raise ValueError(
                    f"metric_learner.transform must return a 2-D numeric array, got shape "
                    f"{X.shape} and dtype {X.dtype}"
                )
            if not np.isfinite(X).all():
                raise ValueError("metric_learner.transform returned NaN or infinity")
        if mapping is not None:
            return mapping.map_rows(X, dtype, "X")
        return np.ascontiguousarray(X, dtype=dtype)

    def _fit_index(self, X: np.ndarray, y: Any = None) -> None:
        """Fit everything below the estimator's own targets: learner, mapping, index."""
        resolved = self._check_params()
        metric = resolved["metric"]
        dtype = X.dtype
        learner = self._fit_metric_learner(X, y)
        Z = self._learned(X, learner, None, dtype)
        mapping = resolve_metric_mapping(metric, resolved["metric_params"].get("VI"), Z.shape[1])
        Z = self._learned(Z, None, mapping, dtype)
        n_samples = Z.shape[0]
        algorithm = self.algorithm
        if algorithm == "auto":
            algorithm = choose_algorithm(n_samples, Z.shape[1], metric, self.n_neighbors)
        params = self._index_params_for(algorithm)
        index_metric = "euclidean" if metric == "mahalanobis" else metric
        index = self._build_index(algorithm, Z, index_metric, params)
        # Everything that can fail has run: only now replace the fitted state, so a failed
        # refit leaves a previously fitted estimator as it was.
        self.metric_learner_ = learner
        self.effective_metric_ = metric
        self.effective_metric_params_ = resolved["metric_params"]
        self._metric_mapping = mapping
        self._index_metric = index_metric
        self._fit_X = Z
        self.algorithm_ = algorithm
        self._fit_method = algorithm
        self.n_samples_fit_ = n_samples
        self.index_ = index

    def _index_params_for(self, algorithm: str) -> dict[str, Any]:
        params = dict(self.index_params or {})
        accepted = _index_keywords(algorithm)
        unknown = set(params) - accepted
        if unknown and self.algorithm == "auto":
            # Parameters meant for the other exact index (say leaf_size when brute force
            # was chosen) are dropped; a key no index knows is still an error.
            known_elsewhere = set().union(
                *(_index_keywords(a) for a in ("brute", "kd_tree", "hnsw"))
            )
            for key in unknown & known_elsewhere:
                params.pop(key)
            unknown -= known_elsewhere
        if unknown:
            raise ValueError(
                f"index_params has keys {sorted(unknown)} not accepted by algorithm "
                f"{algorithm!r}; it accepts {sorted(accepted) or 'none'}"
            )
        return params

    def _build_index(
        self, algorithm: str, Z: np.ndarray, metric: str, params: dict[str, Any]
    ) -> Any:
        threads = resolve_threads(self.threads)
        if algorithm == "brute":
            return BruteForceIndex(Z, metric, **params)
        if algorithm == "kd_tree":
            return KDTreeIndex(Z, metric, threads=threads, **params)
        ef = params.pop("ef", None)
        index = HNSWIndex(Z.shape[1], metric, **params)
        if ef is not None:
            index.ef = ef
        index.add(Z, threads=threads)
        return index

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if state.get("_fit_method") == "brute" and "index_" in state:
            state = dict(state)
            del state["index_"]  # rebuilt from _fit_X on load: identical, not stored twice
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if state.get("_fit_method") == "brute" and "index_" not in state and "_fit_X" in state:
            self.index_ = BruteForceIndex(self._fit_X, self._index_metric)

    # ------------------------------------------------------------------ searching
    def _queries(self, X: Any) -> np.ndarray:
        """Validated queries, mapped into the searched space in the training dtype."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        return self._learned(X, self.metric_learner_, self._metric_mapping, self._fit_X.dtype)

    def _search(self, Z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest training rows of each mapped query: (distances, indices), fit dtype."""
        threads = resolve_threads(self.threads)
        dist, ind = self.index_.query(Z, k, threads=threads)
        if self._fit_method == "hnsw":  # (HNSWIndex answers short walks exactly itself)
            dist = dist.astype(self._fit_X.dtype, copy=False)
        return dist, ind

    def _check_n_neighbors(self, n_neighbors: Any) -> int:
        if n_neighbors is None:
            return self.n_neighbors
        if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, Integral):
            raise TypeError(
                f"n_neighbors does not take {type(n_neighbors)} value, enter integer value"
            )
        if n_neighbors <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {n_neighbors}")
        return int(n_neighbors)


class KNeighborsMixin:
    """``kneighbors`` and ``kneighbors_graph`` on top of :class:`NeighborsBase`."""

    def kneighbors(
        self, X: Any = None, n_neighbors: int | None = None, return_distance: bool = True
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """The k nearest training rows of each query.

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features), default=None
            Queries. ``None`` queries the training rows themselves, and then a row is not
            its own neighbour (leave-one-out, as in scikit-learn; among exact duplicates the
            row itself is the one left out).
        n_neighbors : int, default=None
            Neighbours per query; ``None`` uses the constructor's value. At most the number
            of training rows (one fewer when ``X`` is None).
        return_distance : bool, default=True
            Also return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors)
            Distances in the estimator's metric (in the learned space when there is a
            ``metric_learner``), ascending, in the training data's dtype (float32 or
            float64). Only when ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors), int64
            Row numbers of the training data. Exact algorithms break distance ties by the
            smaller row number.

        Raises
        ------
        NotFittedError
            Called before ``fit``.
        ValueError
            ``n_neighbors`` larger than the training set, queries with the wrong number of
            features, NaN or infinity.
        """
        check_is_fitted(self)
        n_neighbors = self._check_n_neighbors(n_neighbors)
        return_distance = _check_flag(return_distance, "return_distance")
        query_is_train = X is None
        if query_is_train:
            Z = self._fit_X
            n_neighbors += 1  # the row itself comes back too and is removed below
        else:
            Z = self._queries(X)
        n_fit = self.n_samples_fit_
        if n_neighbors > n_fit:
            if query_is_train:
                n_neighbors -= 1
                inequality = "n_neighbors < n_samples_fit"
            else:
                inequality = "n_neighbors <= n_samples_fit"
            raise ValueError(
                f"Expected {inequality}, but n_neighbors = {n_neighbors}, "
                f"n_samples_fit = {n_fit}, n_samples = {Z.shape[0]}"
            )
        dist, ind = self._search(Z, n_neighbors)
        if query_is_train:
            dist, ind = _drop_self(dist, ind)
        return (dist, ind) if return_distance else ind

    def kneighbors_graph(
        self, X: Any = None, n_neighbors: int | None = None, mode: str = "connectivity"
    ) -> Any:
        """The k-NN graph of the queries as a sparse matrix.

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features), default=None
            Queries; ``None`` uses the training rows (each not its own neighbour).
        n_neighbors : int, default=None
            Neighbours per query; ``None`` uses the constructor's value.
        mode : {"connectivity", "distance"}, default="connectivity"
            Entries are 1 (connectivity) or the distances.

        Returns
        -------
        A : scipy.sparse CSR matrix of shape (n_queries, n_samples_fit)
            ``A[i, j]`` is the weight of the edge from query i to training row j (float64).
            A ``csr_matrix`` unless scikit-learn is configured for sparse arrays.
        """
        check_is_fitted(self)
        mode = _check_mode(mode)
        n_neighbors = self._check_n_neighbors(n_neighbors)
        if mode == "connectivity":
            ind = self.kneighbors(X, n_neighbors, return_distance=False)
            data = np.ones(ind.size)
        else:
            dist, ind = self.kneighbors(X, n_neighbors, return_distance=True)
            data = np.ravel(dist).astype(np.float64)
        n_queries = ind.shape[0]
        indptr = np.arange(0, n_queries * n_neighbors + 1, n_neighbors)
        return _to_sparse(
            sp.csr_matrix((data, ind.ravel(), indptr), shape=(n_queries, self.n_samples_fit_))
        )


def _drop_self(dist: np.ndarray, ind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each training row from its own k+1 neighbours (scikit-learn's rule).

    When the row itself is not among them (more exact duplicates than k, or an approximate
    search that missed it), the first neighbour is dropped instead.
    """
    n, k1 = ind.shape
    mask = ind != np.arange(n)[:, None]
    no_self = mask.all(axis=1)
    mask[no_self, 0] = False
    return dist[mask].reshape(n, k1 - 1), ind[mask].reshape(n, k1 - 1)


class WeightedKNeighborsBase(KNeighborsMixin, NeighborsBase):
    """Constructor and neighbour weighting shared by the k-NN classifier and regressor.

    Both take scikit-learn's ``weights`` (``"uniform"``, ``"distance"`` or a callable) on top
    of :class:`NeighborsBase`'s parameters; subclasses add ``fit`` and ``predict``.
    """

    _parameter_constraints: dict[str, list[Any]] = {
        **NeighborsBase._parameter_constraints,
        "weights": [StrOptions({"uniform", "distance"}), callable, None],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature, so each
    # estimator family spells its own list out (NearestNeighbors: radius, the k-NN
    # classifier and regressor: weights), as scikit-learn's neighbours do; duplicates pairs them.
    def __init__(
        self,
        n_neighbors: int = 5,
        *,
        weights: Any = "uniform",
        metric: str = "euclidean",
        algorithm: str = "auto",
        metric_learner: Any = None,
        metric_params: dict | None = None,
        index_params: dict | None = None,
        threads: int | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric
        self.algorithm = algorithm
        self.metric_learner = metric_learner
        self.metric_params = metric_params
        self.index_params = index_params
        self.threads = threads

    def _weighted_neighbours(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Each query's neighbour indices and their weights (``None`` for uniform)."""
        check_is_fitted(self)
        if self.weights in (None, "uniform"):
            return self.kneighbors(X, return_distance=False), None
        dist, ind = self.kneighbors(X)
        weights = get_weights(dist, self.weights)
        check_nonzero_weights(weights)
        return ind, weights


class RadiusNeighborsMixin:
    """``radius_neighbors`` and ``radius_neighbors_graph`` (exact algorithms only)."""

    def radius_neighbors(
        self,
        X: Any = None,
        radius: float | None = None,
        return_distance: bool = True,
        sort_results: bool = False,
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """All training rows within ``radius`` of each query (boundary included).

        Available with ``algorithm_`` "brute" and "kd_tree" (not "hnsw", which cannot
        guarantee every point in a ball).

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features), default=None
            Queries; ``None`` uses the training rows, each then not its own neighbour.
        radius : float, default=None
            In the metric's units (a squared distance for "sqeuclidean"); ``None`` uses the
            constructor's ``radius``.
        return_distance : bool, default=True
            Also return the distances.
        sort_results : bool, default=False
            Sort each query's results by distance (needs ``return_distance=True``);
            otherwise their order is unspecified.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries,), dtype object
            Entry i is an array of the distances of query i's neighbours (training dtype).
            Only when ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries,), dtype object
            Entry i is an int64 array of the row numbers of query i's neighbours.
        """
        check_is_fitted(self)
        return_distance = _check_flag(return_distance, "return_distance")
        sort_results = _check_flag(sort_results, "sort_results")
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        if self._fit_method == "hnsw":
            raise ValueError(
                "radius_neighbors needs an exact index: fit with algorithm='brute', "
                "'kd_tree' or 'auto' (this estimator uses 'hnsw')"
            )
        query_is_train = X is None
        Z = self._fit_X if query_is_train else self._queries(X)
        if radius is None:
            radius = self.radius
        threads = resolve_threads(self.threads)
        dist, ind = self.index_.query_radius(
            Z, radius, return_distance=True, sort_results=sort_results, threads=threads
        )
        if query_is_train:
            for i in range(len(ind)):
                keep = ind[i] != i
                ind[i] = ind[i][keep]
                dist[i] = dist[i][keep]
        return (dist, ind) if return_distance else ind

    # scikit-learn's signature and docstring shape, like kneighbors_graph's above (duplicates pairs
    # them); the graph itself comes from radius_neighbors.
    def radius_neighbors_graph(
        self,
        X: Any = None,
        radius: float | None = None,
        mode: str = "connectivity",
        sort_results: bool = False,
    ) -> Any:
        """The radius-neighbour graph of the queries as a sparse matrix.

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features), default=None
            Queries; ``None`` uses the training rows (each not its own neighbour).
        radius : float, default=None
            Radius in the metric's units; ``None`` uses the constructor's ``radius``.
        mode : {"connectivity", "distance"}, default="connectivity"
            Entries are 1 (connectivity) or the distances.
        sort_results : bool, default=False
            With ``mode="distance"``, sort each row's entries by distance.

        Returns
        -------
        A : scipy.sparse CSR matrix of shape (n_queries, n_samples_fit)
            ``A[i, j]`` is the weight of the edge from query i to training row j (float64).
        """
        check_is_fitted(self)
        mode = _check_mode(mode)
        if mode == "connectivity":
            ind = self.radius_neighbors(X, radius, return_distance=False)
            data = None
        else:
            dist, ind = self.radius_neighbors(
                X, radius, return_distance=True, sort_results=sort_results
            )
            data = np.concatenate([np.zeros(0)] + [d.astype(np.float64) for d in dist])
        counts = np.fromiter((len(a) for a in ind), dtype=np.int64, count=len(ind))
        cols = np.concatenate([np.zeros(0, np.int64)] + list(ind))
        if data is None:
            data = np.ones(len(cols))
        indptr = np.concatenate(([0], np.cumsum(counts)))
        return _to_sparse(
            sp.csr_matrix((data, cols, indptr), shape=(len(ind), self.n_samples_fit_))
        )


def check_radius(owner: Any, radius: Any) -> float:
    """``radius`` must be a real number >= 0 (``inf`` allowed)."""
    if isinstance(radius, bool) or not isinstance(radius, Real) or not radius >= 0:
        raise _param_error(owner, "radius", "a float in the range [0, inf]", radius)
    return float(radius)
