"""PairVerifier: "are these two the same identity?" from a distance and a learned threshold.

Face and speaker verification systems score a pair by the distance between embeddings
(usually cosine, often after a learned metric) and accept it below a threshold picked on
labelled trials: at the equal error rate, or at a false-accept rate the application can
afford. scikit-learn has no estimator for this (``fit`` takes pairs, not rows), so this one
follows its conventions where they apply (``get_params``/``set_params``, ``clone``, pickling,
``decision_function`` higher = more alike, fitted attributes ending in ``_``) and
``pysim.metrics`` supplies the threshold rules, so the verifier and the metrics agree.

An unfitted pair learner (ITML, SDML, MMC, ContrastiveEmbedding) is cloned and fitted on the
verification pairs themselves (+1 genuine, -1 impostor). NCA/LMNN need class labels, so a
fitted one (trained on identity-labelled rows) is used as is; another unfitted learner is
accepted only when it needs no labels (Whitening, PCA), and is then fitted on the rows of the
training pairs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import metrics as _metrics
from .._distances import paired_distances
from ._base import InvalidParameterError, is_fitted, resolve_metric


class PairVerifier(BaseEstimator):
    """Decide whether two rows show the same identity: ``distance <= learned threshold``.

    Parameters
    ----------
    metric : {"cosine", "euclidean", "l2", "sqeuclidean", "ip", "mahalanobis"}, default="cosine"
        Distance between the two rows of a pair (after ``metric_learner``).
    metric_learner : transformer or None, default=None
        Applied to both rows before the distance. A fitted learner (say :class:`pysim.NCA`
        fitted on identity-labelled rows) is used as is. An unfitted pair learner
        (:class:`pysim.metric_learning.ITML`, ``SDML``, ``MMC``, ``ContrastiveEmbedding``) is
        cloned and fitted on the training pairs. An unfitted learner that needs no
        labels (:class:`pysim.Whitening`, PCA) is cloned and fitted on the rows of the
        training pairs; an unfitted one that needs class labels raises ``ValueError`` in
        :meth:`fit`, since pairs do not give them.
    metric_params : dict or None, default=None
        ``{"VI": VI}`` for ``metric="mahalanobis"``.
    target_far : float or None, default=None
        ``None``: the threshold sits at the equal error rate of the training pairs. A rate
        in [0, 1]: the most accepting threshold whose false-accept rate on the training pairs
        does not exceed it.

    Attributes
    ----------
    threshold_ : float
        Decision threshold on :meth:`decision_function` (``-distance``): a pair is accepted
        when its score is ``>= threshold_``. It is a training score (the operating point
        nearest the EER, or the one meeting ``target_far``), ``inf`` if no score qualifies.
    eer_ : float
        Equal error rate of the training pairs (see :func:`pysim.metrics.eer`).
    far_ : float
        False-accept rate of ``threshold_`` on the training pairs.
    frr_ : float
        False-reject rate of ``threshold_`` on the training pairs.
    metric_learner_ : transformer or None
        The fitted learner applied before the distance.
    n_features_in_ : int
        Number of features of each row.

    Notes
    -----
    ``fit`` takes pairs, so this is not a standard scikit-learn estimator (``check_estimator``
    does not apply); it clones, pickles and supports ``get_params``/``set_params``.

    Examples
    --------
    >>> import numpy as np, pysim
    >>> rng = np.random.default_rng(0)
    >>> ids = rng.standard_normal((50, 8))
    >>> a = ids + 0.1 * rng.standard_normal((50, 8))
    >>> b = np.r_[ids[:25], np.roll(ids[25:], 1, axis=0)] + 0.1 * rng.standard_normal((50, 8))
    >>> same = np.r_[np.ones(25, bool), np.zeros(25, bool)]
    >>> ver = pysim.PairVerifier().fit(a, b, same)
    >>> ver.eer_  # genuine and impostor pairs separate perfectly
    0.0
    >>> ver.predict(a[:3], b[:3]).tolist()
    [True, True, True]
    """

    # scikit-learn reads an estimator's parameters off its __init__ signature, so PairVerifier
    # spells out the search parameters it shares with the neighbours estimators (duplicates pairs
    # them).
    def __init__(
        self,
        metric: str = "cosine",
        *,
        metric_learner: Any = None,
        metric_params: dict | None = None,
        target_far: float | None = None,
    ) -> None:
        self.metric = metric
        self.metric_learner = metric_learner
        self.metric_params = metric_params
        self.target_far = target_far

    def _check_params(self) -> tuple[str, Any]:
        metric = resolve_metric(self, self.metric)
        if self.target_far is not None:
            tf = self.target_far
            if (
                isinstance(tf, bool)
                or not isinstance(tf, (int, float, np.integer, np.floating))
                or not 0 <= tf <= 1
            ):
                raise InvalidParameterError(
                    "The 'target_far' parameter of PairVerifier must be None or a float in the "
                    f"range [0, 1]. Got {tf!r} instead."
                )
        params = self.metric_params
        if params is not None and not isinstance(params, dict):
            raise InvalidParameterError(
                "The 'metric_params' parameter of PairVerifier must be a dict or None. "
                f"Got {params!r} instead."
            )
        params = dict(params or {})
        if set(params) - {"VI"}:
            raise ValueError(f"metric_params accepts only 'VI'; got {sorted(params)}")
        if (metric == "mahalanobis") != ("VI" in params):
            raise ValueError(
                "metric_params={'VI': ...} is needed with, and only with, metric='mahalanobis'"
            )
        learner = self.metric_learner
        if learner is not None and not (hasattr(learner, "fit") and hasattr(learner, "transform")):
            raise InvalidParameterError(
                "The 'metric_learner' parameter of PairVerifier must be a transformer (with fit "
                f"and transform) or None. Got {learner!r} instead."
            )
        return metric, params.get("VI")

    def _pairs(self, X1: Any, X2: Any, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        A = validate_data(self, X1, dtype=[np.float64, np.float32], order="C", reset=reset)
        B = validate_data(self, X2, dtype=[np.float64, np.float32], order="C", reset=False)
        if A.shape != B.shape:
            raise ValueError(
                "X1 and X2 must have the same shape (one row per pair side), got "
                f"{A.shape} and {B.shape}"
            )
        return A, B

    def _fit_learner(self, A: np.ndarray, B: np.ndarray, same: np.ndarray) -> Any:
        learner = self.metric_learner
        if learner is None or is_fitted(learner):
            return learner
        pairs = np.stack([A, B], axis=1)
        labels = np.where(same.astype(bool), 1, -1)
        if getattr(learner, "_tuple_size", None) == 2 and hasattr(learner, "calibrate_threshold"):
            return clone(learner).fit(pairs, labels)  # a pair learner: ITML, SDML, MMC
        if hasattr(learner, "fit_pairs"):
            return clone(learner).fit_pairs(pairs, labels)  # ContrastiveEmbedding
        if get_tags(learner).target_tags.required:
            raise ValueError(
                f"metric_learner {type(learner).__name__} is not fitted and needs class labels, "
                "which pairs do not provide: fit it first on identity-labelled rows "
                "(learner.fit(X, identities)) and pass the fitted learner"
            )
        return clone(learner).fit(np.concatenate([A, B]))

    def _distances(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        learner = self.metric_learner_
        if learner is not None:
            A, B = np.asarray(learner.transform(A)), np.asarray(learner.transform(B))
        return paired_distances(A, B, self._metric, VI=self._VI)

    def fit(self, X1: Any, X2: Any, same: Any) -> PairVerifier:
        """Learn the decision threshold from labelled pairs.

        Parameters
        ----------
        X1 : array_like of shape (n_pairs, n_features)
            First row of each pair.
        X2 : array_like of shape (n_pairs, n_features)
            Second row of each pair.
        same : array_like of bool of shape (n_pairs,)
            True for genuine pairs (same identity), False for impostors; both needed.

        Returns
        -------
        self : PairVerifier
            The fitted verifier.

        Raises
        ------
        ValueError
            Mismatched shapes, NaN/inf, a single kind of pair, or an unfitted
            ``metric_learner`` that needs class labels.
        """
        metric, VI = self._check_params()
        A, B = self._pairs(X1, X2, reset=True)
        same = np.asarray(same)
        if same.shape != (A.shape[0],):
            raise ValueError(
                f"same must have shape ({A.shape[0]},) (one flag per pair), got {same.shape}"
            )
        learner = self._fit_learner(A, B, same)
        self.metric_learner_ = learner
        self._metric = metric
        self._VI = VI
        scores = -self._distances(A, B).astype(np.float64)
        thresholds, far, frr = _metrics.operating_points(scores, same)
        self.eer_, nearest = _metrics._eer_point(far, frr)
        if self.target_far is None:
            j = nearest
        else:
            j = _metrics._far_point(far, float(self.target_far))
        self.threshold_ = float(thresholds[j])
        self.far_ = float(far[j])
        self.frr_ = float(frr[j])
        return self

    def decision_function(self, X1: Any, X2: Any) -> np.ndarray:
        """Similarity of each pair: the negated distance (higher = more alike).

        Parameters
        ----------
        X1, X2 : array_like of shape (n_pairs, n_features)
            The two rows of each pair.

        Returns
        -------
        ndarray of shape (n_pairs,)
            ``-distance``; float32 when both inputs are float32, else float64.
        """
        check_is_fitted(self)
        A, B = self._pairs(X1, X2, reset=False)
        return -self._distances(A, B)

    # decision_function, predict and score take the same (X1, X2) pair rows and document them each,
    # as numpydoc wants (duplicates pairs the docstrings).
    def predict(self, X1: Any, X2: Any) -> np.ndarray:
        """Whether each pair is accepted as the same identity.

        Parameters
        ----------
        X1, X2 : array_like of shape (n_pairs, n_features)
            The two rows of each pair.

        Returns
        -------
        ndarray of bool of shape (n_pairs,)
            ``decision_function(X1, X2) >= threshold_``.
        """
        return self.decision_function(X1, X2) >= self.threshold_

    def score(self, X1: Any, X2: Any, same: Any) -> float:
        """Accuracy of :meth:`predict` on labelled pairs.

        Parameters
        ----------
        X1, X2 : array_like of shape (n_pairs, n_features)
            The two rows of each pair.
        same : array_like of bool of shape (n_pairs,)
            True for genuine pairs.

        Returns
        -------
        float
            Share of pairs decided correctly.
        """
        pred = self.predict(X1, X2)
        same = np.asarray(same)
        if same.shape != pred.shape:
            raise ValueError(f"same must have shape {pred.shape}, got {same.shape}")
        return float(np.mean(pred == same.astype(bool)))
