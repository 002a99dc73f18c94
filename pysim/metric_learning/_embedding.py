"""Triplet and contrastive (Siamese) embeddings: a linear tower trained with mined negatives.

The deep-metric-learning recipe (FaceNet's triplet loss, Hadsell et al.'s contrastive loss)
with a linear map L as the tower, so it trains in seconds on CPUs and composes with
``sklearn.kernel_approximation.Nystroem`` (or any feature map) in a Pipeline for a non-linear
one. What makes these losses work is *mining*: the informative negatives are the other-class
points near an anchor, which a random batch almost never contains. Here every mining round
embeds the whole training set (``Z = X Lᵀ``), indexes it with pysim's own exact
:class:`~pysim.BruteForceIndex` (or :class:`~pysim.HNSWIndex` with ``index="hnsw"``) and asks
it for each anchor's nearest neighbours: the other-class ones among them are the candidate
negatives, over the whole training set rather than a batch.

Positives are each point's ``n_neighbors`` nearest same-class points in the input space (LMNN's
target neighbours, fixed), so the embedding keeps classes locally coherent rather than
collapsing them. A round then fits L on the mined constraints with scipy's L-BFGS (the loss
is a smoothed hinge, C¹) for a few iterations, warm-started; ``max_iter`` rounds in all.

Triplet loss (squared distances, as FaceNet): ``ℓ(margin + d²(a, p) - d²(a, n))``.
Contrastive loss: ``max(0, d(a, p) - pos_margin)²`` for positives (``pos_margin = 0``: the
classic ``d²``), ``max(0, margin - d(a, n))²`` for negatives; L starts scaled so that the
median nearest-negative distance is the margin (the loss is not scale-free).
Mining: "hard" takes each anchor's nearest other-class candidate; "semihard" the nearest one
beyond the positive (``d(a, p) < d(a, n)``), FaceNet's choice that avoids collapsed early
solutions; "all" every candidate that violates the margin (the contrastive learner takes
the ``n_neighbors`` nearest per anchor, balancing its negative pairs against its positive
ones; see ``ContrastiveEmbedding``). Both learners also fit explicit
constraints: ``fit_triplets(triplets)``, ``fit_pairs(pairs, y)``.
"""

from __future__ import annotations

import functools
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.utils._param_validation import Interval, StrOptions

from .._validation import serial_blas
from ._base import (
    LabelledData,
    SupervisedMahalanobisMixin,
    check_labelled,
    check_n_components,
    initial_components,
    same_class_neighbors,
)
from ._weakly import check_pair_labels, gather_tuples, rng_of, smooth_hinge

_SMOOTH = 0.05  # hinge smoothing width, relative to the margin
#: ContrastiveEmbedding's default positive margin, relative to `margin` (see its notes).
_POS_MARGIN = 0.9


def triplet_loss_grad(flat_L, Vap, Van, margin, k):
    """Mean smoothed triplet hinge and its gradient in L (k x d, flattened)."""
    d = Vap.shape[1]
    L = flat_L.reshape(k, d)
    Zp, Zn = Vap @ L.T, Van @ L.T
    z = margin + np.einsum("ij,ij->i", Zp, Zp) - np.einsum("ij,ij->i", Zn, Zn)
    value, c = smooth_hinge(z, _SMOOTH * margin)
    T = len(z)
    G = (Vap.T * c) @ Vap - (Van.T * c) @ Van
    return float(value.sum() / T), (2.0 * L @ G / T).ravel()


def contrastive_loss_grad(flat_L, Vpos, Vneg, margin, k, pos_margin=0.0):
    """Mean contrastive loss (positives and negatives weighted equally) and gradient in L.

    Positives cost ``max(0, d - pos_margin)²`` (``pos_margin = 0``: Hadsell et al.'s ``d²``),
    negatives ``max(0, margin - d)²``.
    """
    d = (Vpos if len(Vpos) else Vneg).shape[1]
    L = flat_L.reshape(k, d)
    loss = 0.0
    G = np.zeros((d, d))
    if len(Vpos):
        Zp = Vpos @ L.T
        if pos_margin > 0:
            dp = np.sqrt(np.einsum("ij,ij->i", Zp, Zp) + 1e-12)
            over = np.clip(dp - pos_margin, 0.0, None)
            loss += float((over * over).sum()) / len(Vpos)
            G += (Vpos.T * (over / dp / len(Vpos))) @ Vpos
        else:
            loss += float(np.einsum("ij,ij->", Zp, Zp)) / len(Vpos)
            G += Vpos.T @ Vpos / len(Vpos)
    if len(Vneg):
        Zn = Vneg @ L.T
        dn = np.sqrt(np.einsum("ij,ij->i", Zn, Zn) + 1e-12)
        gap = np.clip(margin - dn, 0.0, None)
        loss += float((gap * gap).sum()) / len(Vneg)
        c = -gap / dn / len(Vneg)
        G += (Vneg.T * c) @ Vneg
    return loss, (2.0 * L @ G).ravel()


def _neighbours(Z: np.ndarray, k: int, index: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest rows of every row of Z (squared distances), from pysim's own index."""
    k = min(k, len(Z))
    if index == "hnsw":
        from .._hnsw import HNSWIndex

        idx = HNSWIndex(Z.shape[1], "sqeuclidean", M=16, ef_construction=100, seed=seed)
        idx.add(Z)
        return idx.query(Z, k, ef=max(2 * k, 64))
    from .._brute import BruteForceIndex

    return BruteForceIndex(Z, "sqeuclidean").query(Z, k)


class _EmbeddingBase(SupervisedMahalanobisMixin):
    """Shared parameters, mining rounds and explicit-constraint fits (not public)."""

    _parameter_constraints: dict[str, list[Any]] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "margin": [Interval(Real, 0, None, closed="neither")],
        "mining": [StrOptions({"semihard", "hard", "all"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_candidates": [Interval(Integral, 1, None, closed="left")],
        "index": [StrOptions({"exact", "hnsw"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    _inner_iter = 15
    _scale_to_margin = False

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        n_components: int | None = None,
        *,
        margin: float = 1.0,
        mining: str = "semihard",
        max_iter: int = 10,
        batch_size: int | None = None,
        n_neighbors: int = 3,
        n_candidates: int = 20,
        index: str = "exact",
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_components = n_components
        self.margin = margin
        self.mining = mining
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.n_neighbors = n_neighbors
        self.n_candidates = n_candidates
        self.index = index
        self.random_state = random_state
        self.verbose = verbose

    # ---- subclasses: mined constraints -> (loss_grad, args)
    def _mine(self, data, targets, Z, anchors, nn_d, nn_i):  # pragma: no cover - abstract
        raise NotImplementedError

    def _loss(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _optimise(self, L: np.ndarray, args: tuple, maxiter: int) -> np.ndarray:
        k, d = L.shape
        with serial_blas():
            res = minimize(
                self._loss(),
                L.ravel(),
                args=(*args, float(self.margin), k),
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": maxiter},
            )
        self.loss_ = float(res.fun)
        return res.x.reshape(k, d)

    def fit(self, X: Any, y: Any) -> _EmbeddingBase:
        """Learn the embedding from class labels, mining negatives over the training set.

        Parameters
        ----------
        X : array_like (n_samples, n_features)
        y : array_like (n_samples,)
            Class labels; at least 2 classes with 2 samples each.

        Returns
        -------
        self
        """
        self._validate_params()
        data = check_labelled(self, X, y)
        n, d = data.X.shape
        k = check_n_components(self.n_components, d)
        rng = rng_of(self.random_state)
        L = initial_components("auto", data, k, self.random_state)
        targets = same_class_neighbors(data, int(self.n_neighbors))
        seed = int(rng.integers(0, 2**31 - 1))
        if self._scale_to_margin:
            L = self._margin_scaled(data, L, seed)
        self.n_constraints_ = 0
        for it in range(int(self.max_iter)):
            Z = np.ascontiguousarray(data.X @ L.T)
            if self.batch_size is None or self.batch_size >= n:
                anchors = np.arange(n)
            else:
                anchors = np.sort(rng.choice(n, int(self.batch_size), replace=False))
            nn_d, nn_i = _neighbours(Z, int(self.n_candidates) + 1, self.index, seed)
            args = self._mine(data, targets, Z, anchors, nn_d[anchors], nn_i[anchors])
            if args is None:
                break  # nothing violates the margin any more
            self.n_constraints_ = len(args[0]) + len(args[1])
            L = self._optimise(L, args, self._inner_iter)
            if self.verbose:
                print(
                    f"[{type(self).__name__}] round {it + 1}: {len(args[1])} constraints, "
                    f"loss {self.loss_:.6g}",
                    flush=True,
                )
        if not np.isfinite(L).all():
            raise ValueError("the embedding diverged (non-finite L): standardise the features")
        self.n_iter_ = it + 1
        self.components_ = np.ascontiguousarray(L)
        self.classes_ = data.classes
        return self

    def _margin_scaled(self, data: LabelledData, L: np.ndarray, seed: int) -> np.ndarray:
        """L rescaled so that the median distance from a point to its nearest other-class
        candidate is the margin (see ``ContrastiveEmbedding``)."""
        Z = np.ascontiguousarray(data.X @ L.T)
        nn_d, nn_i = _neighbours(Z, int(self.n_candidates) + 1, self.index, seed)
        a, _, d_an, _ = _candidates(data, nn_d, nn_i, np.arange(len(Z)))
        if len(a) == 0:
            return L
        nearest = np.full(len(Z), np.inf)
        np.minimum.at(nearest, a, d_an)
        med = float(np.sqrt(np.median(nearest[np.isfinite(nearest)])))
        return L * (float(self.margin) / med) if med > 0 else L

    def _explicit_start(self, T: np.ndarray) -> np.ndarray:
        d = T.shape[2]
        self.n_features_in_ = d
        k = check_n_components(self.n_components, d)
        return np.eye(k, d)


def _candidates(data: LabelledData, nn_d: np.ndarray, nn_i: np.ndarray, anchors: np.ndarray):
    """Other-class candidates of each anchor: (anchor row, candidate row, squared distance)."""
    other = (nn_i >= 0) & (data.codes[np.maximum(nn_i, 0)] != data.codes[anchors][:, None])
    r, c = np.nonzero(other)
    return anchors[r], nn_i[r, c], nn_d[r, c], r


class TripletEmbedding(_EmbeddingBase):
    """Linear embedding trained with the triplet margin loss and mined negatives.

    Parameters
    ----------
    n_components : int or None, default=None
        Output dimension (None: n_features).
    margin : float > 0, default=1.0
        Margin in squared-distance units (standardise the features first).
    mining : {"semihard", "hard", "all"}, default="semihard"
        Which other-class candidates become negatives (see the module notes).
    max_iter : int, default=10
        Mining rounds; each re-embeds and re-indexes the whole training set, then runs a few
        L-BFGS iterations on the mined triplets.
    batch_size : int or None, default=None
        Anchors per round (None: every training point). Negatives are always searched in
        the whole training set.
    n_neighbors : int, default=3
        Positives per anchor: its nearest same-class points in the input space.
    n_candidates : int, default=20
        Nearest neighbours asked of the index per anchor; the other-class ones are the
        candidate negatives.
    index : {"exact", "hnsw"}, default="exact"
        pysim index used for mining.
    random_state : int, RandomState, Generator or None, default=None
    verbose : bool, default=False

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
    n_iter_ : int
        Mining rounds run.
    n_constraints_ : int
        Triplets of the last round.
    loss_ : float
    classes_ : ndarray
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from pysim.metric_learning import TripletEmbedding
    >>> X, y = load_iris(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> TripletEmbedding(n_components=2, random_state=0).fit_transform(X, y).shape
    (150, 2)

    When the tower is a deep network trained elsewhere, pysim still does the mining and the
    evaluation: index the current embeddings, take each anchor's nearest other-class
    neighbours as its hard negatives, and score retrieval with MAP@R.

    >>> import numpy as np, pysim
    >>> emb = np.random.default_rng(0).standard_normal((150, 8)) + 3.0 * np.eye(3, 8)[y]
    >>> index = pysim.BruteForceIndex(emb, "sqeuclidean")
    >>> dist, nbr = index.query(emb, k=50)  # column 0 is the point itself
    >>> other = y[nbr] != y[:, None]
    >>> hardest_negative = nbr[np.arange(150), np.argmax(other, axis=1)]  # feed to the loss
    >>> # MAP@R needs R = (class size - 1) = 49 neighbours per query here
    >>> scores = pysim.metrics.retrieval_scores(y[nbr[:, 1:]], y, y)
    >>> sorted(scores)
    ['map_at_r', 'precision_at_1', 'r_precision']
    """

    def _loss(self):
        return triplet_loss_grad

    def _mine(self, data, targets, Z, anchors, nn_d, nn_i):
        a, neg, d_an, _ = _candidates(data, nn_d, nn_i, anchors)
        X = data.X
        pos_all = targets[a]  # (m, n_neighbors), -1 padded
        rows, cols = np.nonzero(pos_all >= 0)
        A, P, N, dan = a[rows], pos_all[rows, cols], neg[rows], d_an[rows]
        dap = ((Z[A] - Z[P]) ** 2).sum(axis=1)
        m = float(self.margin)
        keep = dan < dap + m  # only margin violators carry loss
        if self.mining == "semihard":
            keep &= dan > dap
        A, P, N, dap, dan = A[keep], P[keep], N[keep], dap[keep], dan[keep]
        if self.mining in ("hard", "semihard") and len(A):
            # One negative per (anchor, positive): the nearest qualifying candidate.
            key = A * X.shape[0] + P
            order = np.lexsort((dan, key))
            first = np.r_[True, key[order][1:] != key[order][:-1]]
            sel = order[first]
            A, P, N = A[sel], P[sel], N[sel]
        if len(A) == 0:
            return None
        return (X[A] - X[P], X[A] - X[N])

    def fit_triplets(self, triplets: Any) -> TripletEmbedding:
        """Learn the embedding from explicit triplets (a nearer b than c).

        Parameters
        ----------
        triplets : array_like (n, 3, n_features)

        Returns
        -------
        self : TripletEmbedding
        """
        self._validate_params()
        T = gather_tuples(triplets, 3, None, "triplets")
        L = self._explicit_start(T)
        L = self._optimise(L, (T[:, 0] - T[:, 1], T[:, 0] - T[:, 2]), 15 * int(self.max_iter))
        self.components_ = np.ascontiguousarray(L)
        self.n_iter_ = 1
        self.n_constraints_ = len(T)
        return self


class ContrastiveEmbedding(_EmbeddingBase):
    """Linear Siamese embedding trained with the contrastive loss and mined negatives.

    Parameters
    ----------
    n_components, margin, max_iter, batch_size, n_neighbors, n_candidates, index, \
random_state, verbose : as :class:`TripletEmbedding`
        ``margin`` is in distance (not squared) units here.
    pos_margin : float >= 0 or None, default=None
        Positives cost ``max(0, d - pos_margin)²``; None: ``0.9 * margin``. ``0`` is Hadsell
        et al.'s plain ``d²``, which keeps pulling pairs that are already close: with a
        linear tower that pull collapses every direction in which neighbours of a class
        differ, and on digits the 3-NN accuracy fell from the Euclidean 97 % to 83 %. With
        a positive margin only pairs on the wrong side of the gap ``(pos_margin, margin)``
        carry loss (ITML's two bounds, as a hinge).
    mining : {"hard", "semihard", "all"}, default="hard"
        Negatives per anchor, among the other-class candidates within the margin: the
        ``n_neighbors`` nearest ("hard"; as many negative pairs as positive ones), the
        ``n_neighbors`` nearest beyond the anchor's farthest positive ("semihard"), or every
        one ("all"). With only the single nearest negative per anchor the linear tower was
        free to pull the anchor's other candidates in: on MNIST-PCA50 (5,000 / 5,000) 3-NN
        accuracy fell to 89.7 % against the Euclidean 94.8 %; balanced pairs give 94.0 %.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
    n_iter_, n_constraints_ : int
    loss_ : float
    classes_ : ndarray
    n_features_in_ : int
    """

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        n_components: int | None = None,
        *,
        margin: float = 1.0,
        mining: str = "hard",
        max_iter: int = 10,
        batch_size: int | None = None,
        n_neighbors: int = 3,
        n_candidates: int = 20,
        index: str = "exact",
        pos_margin: float | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.pos_margin = pos_margin
        super().__init__(
            n_components,
            margin=margin,
            mining=mining,
            max_iter=max_iter,
            batch_size=batch_size,
            n_neighbors=n_neighbors,
            n_candidates=n_candidates,
            index=index,
            random_state=random_state,
            verbose=verbose,
        )

    # The contrastive loss is not scale-free: positives are pulled at any distance, negatives
    # pushed only inside the margin. Started at the data's own scale (standardised digits:
    # nearest other-class points ~5 margins away) no negative is inside the margin, so the
    # first rounds only pull, shrinking the within-class directions until the map nearly
    # collapses (3-NN accuracy fell below the Euclidean one). Starting with L scaled so that
    # the median nearest-negative distance equals the margin makes pull and push act from
    # the first round, as the loss intends.
    _scale_to_margin = True

    _parameter_constraints = {
        **_EmbeddingBase._parameter_constraints,
        "pos_margin": [Interval(Real, 0, None, closed="left"), None],
    }

    def _loss(self):
        pm = self.pos_margin
        pm = _POS_MARGIN * float(self.margin) if pm is None else float(pm)
        return functools.partial(contrastive_loss_grad, pos_margin=pm)

    def _mine(self, data, targets, Z, anchors, nn_d, nn_i):
        X = data.X
        a, neg, d_an, _ = _candidates(data, nn_d, nn_i, anchors)
        d_an = np.sqrt(d_an)
        t = targets[anchors]
        pr, pc = np.nonzero(t >= 0)
        PA, PB = anchors[pr], t[pr, pc]
        keep = d_an < float(self.margin)
        if self.mining == "semihard":
            reach = np.zeros(len(X))
            dpos = np.sqrt(((Z[PA] - Z[PB]) ** 2).sum(axis=1))
            np.maximum.at(reach, PA, dpos)
            keep &= d_an > reach[a]
        a, neg, d_an = a[keep], neg[keep], d_an[keep]
        if self.mining in ("hard", "semihard") and len(a):
            # Each anchor's n_neighbors nearest qualifying negatives: as many negative pairs
            # as positive ones per anchor (balanced Siamese pairs).
            order = np.lexsort((d_an, a))
            a_sorted = a[order]
            starts = np.r_[0, np.flatnonzero(a_sorted[1:] != a_sorted[:-1]) + 1]
            sizes = np.diff(np.r_[starts, len(a_sorted)])
            rank = np.arange(len(a_sorted)) - np.repeat(starts, sizes)
            sel = order[rank < int(self.n_neighbors)]
            a, neg = a[sel], neg[sel]
        if len(a) == 0 and len(PA) == 0:
            return None
        # Positives are always pulled: with no negative inside the margin yet, the pull
        # shrinks the space until the next round's mining finds some.
        return (X[PA] - X[PB], X[a] - X[neg])

    def fit_pairs(self, pairs: Any, y: Any) -> ContrastiveEmbedding:
        """Learn the embedding from explicit labelled pairs.

        Parameters
        ----------
        pairs : array_like (n_pairs, 2, n_features)
        y : array_like (n_pairs,)
            +1 similar, -1 dissimilar; both needed.

        Returns
        -------
        self : ContrastiveEmbedding
        """
        self._validate_params()
        P = gather_tuples(pairs, 2, None, "pairs")
        yy = check_pair_labels(y, len(P))
        L = self._explicit_start(P)
        diff = P[:, 0] - P[:, 1]
        L = self._optimise(L, (diff[yy == 1], diff[yy == -1]), 15 * int(self.max_iter))
        self.components_ = np.ascontiguousarray(L)
        self.n_iter_ = 1
        self.n_constraints_ = len(P)
        return self
