"""Large Margin Nearest Neighbour (Weinberger & Saul, 2009) with exact impostor search.

Each point i gets k *target neighbours* T(i): its nearest same-class points in the input
space, fixed for the whole fit. With ``d_ab = ||L x_a - L x_b||²`` the loss is

    ε(L) = (1 - μ) Σ_{i, j∈T(i)} d_ij  +  μ Σ_{i, j∈T(i), l: y_l≠y_i} [1 + d_ij - d_il]_+

(μ = ``regularization``): pull targets in, push *impostors* l (other-class points inside
the margin of a target) out. ε is piecewise quadratic in L; every term is a weighted
outer product ``(x_a - x_b)(x_a - x_b)ᵀ``, so with the weights collected in a sparse pair
matrix W (targets: ``1 - μ + μ·#active triplets``, impostors: ``-μ·#active triplets``) the
gradient is ``2 L Xᵀ (diag(deg) - W - Wᵀ) X`` — one sparse product, O(nnz · d).

The impostor set is *exact* at every evaluation, for the current L, so L-BFGS always sees
the true loss and gradient (no stale active set to refresh). A full search takes, for each
row block of class c, the squared distances in the projected space from ``pysim.cdist`` to
the rows of the other classes (contiguous slices, because rows are sorted by class) and
keeps those inside ``max_j d_ij + 1``; nothing n x n is ever held. Full searches are
needed only when L has moved far: ``ImpostorCache`` keeps the candidates of the last full
search within a slightly larger radius and proves, row by row, that no impostor can lie
outside them (rows where the proof fails are searched again), which makes the many small
late L-BFGS steps cost O(candidates · d) instead of O(n² · d).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.utils._param_validation import Interval

from .._distances import cdist
from .._validation import serial_blas
from ._base import (
    IterationReporter,
    LabelledData,
    SupervisedMahalanobisMixin,
    block_rows,
    check_labelled,
    check_n_components,
    initial_components,
    same_class_neighbors,
)


def find_impostors(
    Z: np.ndarray, data: LabelledData, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (i, l) with ``y_l != y_i`` and ``||z_i - z_l||² < radius_i``, exactly.

    Returns
    -------
    rows, cols : ndarray (m,) int64
        Sorted-row indices of the anchor i and the impostor l.
    dist : ndarray (m,) float64
        Their squared distance.
    """
    starts = data.starts
    n = len(Z)
    out_r, out_c, out_d = [], [], []
    rows = block_rows(n)
    for c in range(len(starts) - 1):
        s, e = int(starts[c]), int(starts[c + 1])
        for b0 in range(s, e, rows):
            b1 = min(e, b0 + rows)
            rad = radius[b0:b1, None]
            for lo, hi in ((0, s), (e, n)):
                if hi == lo:
                    continue
                D = cdist(Z[b0:b1], Z[lo:hi], "sqeuclidean")
                r, col = np.nonzero(D < rad)
                if len(r):
                    out_r.append(r + b0)
                    out_c.append(col + lo)
                    out_d.append(D[r, col])
    if not out_r:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0)
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_d)


def lmnn_loss_grad(
    flat_L: np.ndarray,
    data: LabelledData,
    targets: np.ndarray,
    n_components: int,
    regularization: float,
    search: ImpostorCache | None = None,
) -> tuple[float, np.ndarray, int]:
    """LMNN loss, its gradient and the number of active triplets at L.

    Parameters
    ----------
    flat_L : ndarray, shape (n_components * n_features,)
    data : LabelledData
        Training data sorted by class.
    targets : ndarray, shape (n, k) int64
        Target neighbours (sorted-row indices), -1 for missing slots.
    n_components : int
    regularization : float
        μ, the weight of the push (impostor) term; the pull term gets ``1 - μ``.
    search : ImpostorCache, optional
        Impostor finder reusing candidate pairs between nearby L; default: full search.

    Returns
    -------
    loss : float
    grad : ndarray, shape (n_components * n_features,)
    n_active : int
        Triplets (i, j, l) with a positive hinge.
    """
    X = data.X
    n, d = X.shape
    mu = regularization
    L = flat_L.reshape(n_components, d)
    Z = np.ascontiguousarray(X @ L.T)
    valid = targets >= 0
    tz = Z[np.where(valid, targets, np.arange(n)[:, None])]
    dT = ((Z[:, None, :] - tz) ** 2).sum(axis=2)  # (n, k), 0 where invalid
    radius = np.where(valid, dT, -np.inf).max(axis=1) + 1.0
    if search is None:
        ai, aj, dil = find_impostors(Z, data, radius)
    else:
        ai, aj, dil = search(L, Z, dT, radius)
    hinge = 1.0 + dT[ai] - dil[:, None]
    active = (hinge > 0) & valid[ai]
    loss = (1.0 - mu) * dT.sum() + mu * hinge[active].sum()
    n_active = int(active.sum())
    k = targets.shape[1]
    # Weights of the pair matrix W (see module docstring).
    per_target = np.bincount((ai[:, None] * k + np.arange(k))[active], minlength=n * k).reshape(
        n, k
    )
    w_target = ((1.0 - mu) + mu * per_target)[valid]
    per_impostor = active.sum(axis=1)
    keep = per_impostor > 0
    rows = np.concatenate([np.repeat(np.arange(n), k)[valid.ravel()], ai[keep]])
    cols = np.concatenate([targets[valid], aj[keep]])
    weights = np.concatenate([w_target, -mu * per_impostor[keep]])
    W = sp.csr_matrix((weights, (rows, cols)), shape=(n, n))
    deg = np.bincount(rows, weights, minlength=n) + np.bincount(cols, weights, minlength=n)
    lap_x = deg[:, None] * X - (W @ X) - (W.T @ X)
    grad = 2.0 * (Z.T @ lap_x)
    return float(loss), grad.ravel(), n_active


class ImpostorCache:
    """Exact impostor search that reuses one full search while L stays close to it.

    A full search at ``L0`` (projected points ``Z0``) keeps every other-class pair within
    ``sqrt(r0_i) + σ_i`` of its anchor, where ``r0_i = max_j ||z0_i - z0_j||² + 1`` is the
    margin radius at L0 and ``σ_i = γ sqrt(r0_i)`` a slack. At a later L, with
    ``s_a = ||(L - L0)(x_a - x̄)||`` (free from Z - Z0), any pair left out satisfies

        ||L (x_i - x_l)|| >= ||L0 (x_i - x_l)|| - s_i - s_l >= sqrt(r0_i) + σ_i - s_i - s_max,

    so if that is at least ``sqrt(r_i)``, the margin radius at L, no impostor of row i was
    left out and filtering its candidates is exact. Rows where the bound fails are searched
    again in full (exactly, at L); when most rows fail, the whole cache is rebuilt at L.
    The bound is absolute (no L0⁻¹), so it holds even as L shrinks noise directions to
    near zero. γ is fixed: a larger slack holds longer but makes every candidate pass
    longer (at γ = 2 the candidates are nearly all n² pairs), and early L-BFGS steps are
    too large for any slack to hold, so the cache pays off in the many small late steps.
    """

    def __init__(self, data: LabelledData, slack: float = 0.05):
        self.data = data
        self.slack = slack
        self.Z0: np.ndarray | None = None
        self.full_searches = 0
        self.partial_rows = 0
        self.calls = 0
        self._centre = data.X.mean(axis=0)

    def __call__(
        self, L: np.ndarray, Z: np.ndarray, dT: np.ndarray, radius: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.calls += 1
        if self.Z0 is None:
            return self._rebuild(L, Z, radius)
        shift = (Z - self.Z0) - (L - self.L0) @ self._centre
        s = np.sqrt(np.einsum("ij,ij->i", shift, shift))
        codes = self.data.codes
        # Largest s over the *other* classes of each row: the two largest class maxima.
        class_max = np.full(len(self.data.starts) - 1, 0.0)
        np.maximum.at(class_max, codes, s)
        top = np.argsort(class_max)[::-1]
        other_max = np.where(codes == top[0], class_max[top[1]], class_max[top[0]])
        failing = np.nonzero(self.reach - s - other_max < np.sqrt(radius))[0]
        if len(failing) > len(Z) // 4:
            return self._rebuild(L, Z, radius)
        ok = np.ones(len(Z), bool)
        ok[failing] = False
        ai, aj = self.ai, self.aj
        diff = Z[ai] - Z[aj]
        dist = np.einsum("ij,ij->i", diff, diff)
        keep = (dist < radius[ai]) & ok[ai]
        ai, aj, dist = ai[keep], aj[keep], dist[keep]
        if len(failing):
            self.partial_rows += len(failing)
            fi, fj, fd = find_impostors_rows(Z, self.data, radius, failing)
            ai, aj = np.concatenate([ai, fi]), np.concatenate([aj, fj])
            dist = np.concatenate([dist, fd])
        return ai, aj, dist

    def _rebuild(self, L, Z, radius):
        self.full_searches += 1
        root = np.sqrt(radius)
        self.reach = (1.0 + self.slack) * root
        self.ai, self.aj, dist = find_impostors(Z, self.data, self.reach**2)
        self.Z0, self.L0 = Z.copy(), L.copy()
        inside = dist < radius[self.ai]
        return self.ai[inside], self.aj[inside], dist[inside]


def find_impostors_rows(
    Z: np.ndarray, data: LabelledData, radius: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``find_impostors`` restricted to the anchor rows `rows` (sorted-row indices)."""
    n = len(Z)
    starts, codes = data.starts, data.codes
    out_r, out_c, out_d = [], [], []
    step = block_rows(n)
    for b0 in range(0, len(rows), step):
        r = rows[b0 : b0 + step]
        D = cdist(Z[r], Z, "sqeuclidean")
        cols = np.arange(n)
        same = (cols[None, :] >= starts[codes[r]][:, None]) & (
            cols[None, :] < starts[codes[r] + 1][:, None]
        )
        hit = (D < radius[r][:, None]) & ~same
        a, c = np.nonzero(hit)
        out_r.append(r[a])
        out_c.append(c)
        out_d.append(D[a, c])
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_d)


class LMNN(SupervisedMahalanobisMixin):
    """Large Margin Nearest Neighbour metric learning.

    Pulls each point's ``n_neighbors`` same-class target neighbours close and pushes
    other-class points (impostors) at least a unit margin beyond them, minimising the
    hinge loss with scipy's L-BFGS-B. Impostors are found by exact blocked search at every
    step, so memory stays O(n * block + n_impostor_pairs) and the loss is never stale.

    Parameters
    ----------
    n_neighbors : int, default=3
        Target neighbours per point (nearest same-class points in the input space). A
        class with no more than `n_neighbors` members uses all its other members as
        targets (no warning).
    n_components : int or None, default=None
        Dimension of the learned space; None keeps the number of features.
    max_iter : int, default=200
        Maximum L-BFGS iterations.
    regularization : float in [0, 1], default=0.5
        Weight μ of the push (impostor) term; the pull term gets ``1 - μ``.
    random_state : int, numpy Generator/RandomState or None, default=None
        Accepted for API symmetry: the fit is deterministic (the initial L is the identity,
        or PCA/LDA when reducing dimension, as NCA's ``init="auto"``).
    verbose : bool, default=False
        Print the loss and seconds of every iteration.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features), float64
        The learned L: ``transform(X) == X @ components_.T``.
    n_iter_ : int
        L-BFGS iterations run.
    loss_ : float
        Final loss.
    n_active_ : int
        Active (margin-violating) triplets at the last loss evaluation.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when `X` had string feature names.

    Notes
    -----
    The margin is 1 in squared-distance units, so LMNN (like every LMNN) depends on the
    scale of the data: standardise features first (e.g. a ``StandardScaler`` in a
    Pipeline). Every class needs at least 2 samples and ``y`` at least 2 classes.

    Examples
    --------
    >>> import pysim
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> pysim.LMNN(n_neighbors=3).fit(X, y).components_.shape
    (4, 4)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "regularization": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # scikit-learn reads an estimator's parameters off its __init__ signature (get_params,
    # clone), so each learner spells its own out and stores them unchanged, and documents its
    # fit in full; the work is in the shared bases (duplicates pairs these constructors).
    def __init__(
        self,
        n_neighbors: int = 3,
        n_components: int | None = None,
        *,
        max_iter: int = 200,
        regularization: float = 0.5,
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.max_iter = max_iter
        self.regularization = regularization
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> LMNN:
        """Learn L from labelled data.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like, shape (n_samples,)
            Class labels; at least 2 classes, each with at least 2 samples.

        Returns
        -------
        self : LMNN

        Raises
        ------
        ValueError
            NaN/inf, a single class, a class with one sample, n_components > n_features,
            bad parameters.
        """
        self._validate_params()
        data = check_labelled(self, X, y)
        k, max_iter = int(self.n_neighbors), int(self.max_iter)
        mu = float(self.regularization)
        m = check_n_components(self.n_components, data.X.shape[1])
        L0 = initial_components("auto", data, m, self.random_state)
        targets = same_class_neighbors(data, k)
        report = IterationReporter("LMNN", self.verbose)
        state: dict[str, Any] = {}
        search = ImpostorCache(data)

        def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
            loss, grad, n_active = lmnn_loss_grad(flat, data, targets, m, mu, search)
            report.loss = loss
            state["n_active"] = n_active
            return loss, grad

        with serial_blas():
            result = minimize(
                fun,
                L0.ravel(),
                method="L-BFGS-B",
                jac=True,
                options={"maxiter": max_iter, "ftol": 1e-5, "gtol": 1e-5},
                callback=report.callback,
            )
        report.done("converged" if result.success else f"stopped ({result.message})")
        self.components_ = np.ascontiguousarray(result.x.reshape(m, -1))
        self.n_iter_ = max(1, int(result.nit))
        self.loss_ = float(result.fun)
        self.n_active_ = int(state.get("n_active", 0))
        self.classes_ = data.classes
        return self
