"""What ItemKNN and EASE share: fit bookkeeping, recommend, similar_items, persistence.

Both models score a user as ``score_j = sum_i w_ui * S[i, j]`` over the items i the user
interacted with, S being a learned item-item matrix (sparse top-k for ItemKNN, dense for
EASE). Scoring and top-N selection run fused in C++ (csrc/recommend/scoring.cpp), a user
per task, so a batch never builds its (n_users, n_items) score matrix, and exclusion (seen
items, ``exclude``, ``items``) happens inside the selection: N results come back whenever N
candidates exist. ``similar_items(i)`` is the same kernel on the one-item history ``{i}``
with the history excluded.

Estimators follow scikit-learn (parameters stored verbatim, checked in ``fit`` through
``_parameter_constraints``); persistence goes through pysim's checked container (magic,
version, CRC, atomic writes), as for the indexes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from .. import _core
from .._index_base import PersistMixin, check_result_size
from .._validation import MAX_K, check_flag, check_int, resolve_threads
from ._input import as_ids, as_interactions, banned_mask, parts

_FORMAT = 1  # version of the recommenders' state inside the pysim container


class ItemItemRecommender(PersistMixin, BaseEstimator):
    """Base class of the item-item recommenders (not public)."""

    _KIND = "recommender"
    _NOUN = "model"

    # --------------------------------------------------------------- subclass hooks
    def _fit_similarity(self, X: sp.csr_matrix, show_progress: bool) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover

    def _score(
        self, rows: sp.csr_matrix, banned: np.ndarray, exclude_seen: bool, N: int, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # pragma: no cover

    def _default_threads(self) -> Any:
        return None

    # ------------------------------------------------------------------- fitting
    def fit(self, user_items: Any, *, show_progress: bool = False) -> ItemItemRecommender:
        """Learn the item-item matrix from interactions.

        Parameters
        ----------
        user_items : scipy.sparse matrix or array_like of shape (n_users, n_items)
            Interaction weights (1 = seen / bought / played; larger = stronger), any sparse
            format or dense. Finite and >= 0; zeros are "no interaction".
        show_progress : bool, default=False
            Show a tqdm progress bar (a plain stderr line without tqdm) for long fits
            (ItemKNN; EASE's fit is a few LAPACK calls and shows none).

        Returns
        -------
        self
        """
        self._validate_params()
        check_flag(show_progress, "show_progress")
        X = as_interactions(user_items, "user_items")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"user_items must have at least one user and one item, got {X.shape}")
        state = self._fit_similarity(X, bool(show_progress))
        # Assign only once everything succeeded: a failed fit leaves the model unchanged.
        self._user_items = X
        self.n_users_, self.n_items_ = X.shape
        for key, value in state.items():
            setattr(self, key, value)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit(user_items)."
            )

    # ---------------------------------------------------------------- recommending
    def recommend(
        self,
        users: Any,
        user_items: Any = None,
        N: int = 10,
        *,
        exclude_seen: bool = True,
        exclude: Any = None,
        items: Any = None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The N best items for each user.

        Parameters
        ----------
        users : int or array_like of int, shape (m,)
            User ids. Without `user_items` they are rows of the fitted matrix.
        user_items : scipy.sparse matrix or array_like of shape (m, n_items), optional
            Those users' current interaction rows (any format; a 1-D array for one user).
            Default: their rows of the fitted matrix. With it, `users` may be new users.
        N : int, default=10
            Number of recommendations per user (>= 1).
        exclude_seen : bool, default=True
            Never recommend an item the user interacted with.
        exclude : array_like of int, optional
            Item ids never recommended (out of stock, ...).
        items : array_like of int, optional
            The only candidate items.
        threads : int or None, default=None
            Worker threads; None uses the model's `threads` (ItemKNN) or every core.

        Returns
        -------
        scores : ndarray of float32, shape (m, N) (or (N,) for a scalar `users`)
            Scores in descending order; ``-inf`` pads missing results.
        items : ndarray of int64, shape (m, N) (or (N,))
            Item ids; ``-1`` pads missing results (fewer than N candidates, or a user
            without history).

        Raises
        ------
        ValueError
            Negative or out-of-range ids, item ids not seen at fit time, `user_items` rows
            not matching `users`, N < 1, NaN or negative weights.
        TypeError
            Non-integer ids, non-numeric `user_items`.
        """
        self._check_fitted()
        N = check_int(N, "N", 1)
        exclude_seen = check_flag(exclude_seen, "exclude_seen")
        nthreads = resolve_threads(self._default_threads() if threads is None else threads)
        if user_items is None:
            ids, scalar = as_ids(users, "users", self.n_users_, "users")
            every = len(ids) == self.n_users_ and (ids == np.arange(len(ids))).all()
            rows = self._user_items if every else self._user_items[ids]  # no copy for all
        else:
            ids, scalar = as_ids(users, "users", None, "users")
            rows = as_interactions(user_items, "user_items", n_items=self.n_items_)
            if rows.shape[0] != len(ids):
                raise ValueError(
                    f"user_items must have one row per user ({len(ids)}), got {rows.shape[0]}"
                )
        banned = banned_mask(exclude, items, self.n_items_)
        check_result_size(len(ids), N, np.dtype(np.float32))
        if N > MAX_K:
            raise ValueError(f"N must be <= {MAX_K}, got {N}")
        scores, found = self._score(rows, banned, exclude_seen, N, nthreads)
        return (scores[0], found[0]) if scalar else (scores, found)

    def similar_items(self, items: Any, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The N items most similar to each given item (the item itself excluded).

        Parameters
        ----------
        items : int or array_like of int, shape (m,)
            Item ids (columns of the fitted matrix).
        N : int, default=10
            Number of similar items per item (>= 1).

        Returns
        -------
        scores : ndarray of float32, shape (m, N) (or (N,) for a scalar `items`)
            Similarities ``S[i, j]`` in descending order, ``-inf`` padded.
        items : ndarray of int64, shape (m, N) (or (N,))
            Item ids, ``-1`` padded.
        """
        self._check_fitted()
        N = check_int(N, "N", 1, MAX_K)
        ids, scalar = as_ids(items, "items", self.n_items_, "item ids")
        check_result_size(len(ids), N, np.dtype(np.float32))
        m = len(ids)
        rows = sp.csr_matrix(
            (np.ones(m), ids, np.arange(m + 1, dtype=np.int64)), shape=(m, self.n_items_)
        )
        nthreads = resolve_threads(self._default_threads())
        scores, found = self._score(rows, np.zeros(0, np.uint8), True, N, nthreads)
        return (scores[0], found[0]) if scalar else (scores, found)

    # ----------------------------------------------------------------- persistence
    def _model_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        raise NotImplementedError  # pragma: no cover

    def _set_model_state(
        self, meta: dict, arrays: dict[str, np.ndarray], n_items: int
    ) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover

    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta: dict[str, Any] = {"format": _FORMAT, "params": self.get_params(deep=False)}
        arrays: dict[str, np.ndarray] = {}
        if hasattr(self, "n_items_"):
            indptr, indices, data = parts(self._user_items)
            meta["shape"] = [int(self.n_users_), int(self.n_items_)]
            arrays.update(ui_indptr=indptr, ui_indices=indices, ui_data=data)
            model_meta, model_arrays = self._model_state()
            meta["model"] = model_meta
            arrays.update(model_arrays)
        return meta, arrays

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> ItemItemRecommender:
        if meta.get("format") != _FORMAT:
            raise ValueError(f"unknown state format {meta.get('format')!r}")
        obj = cls(**meta["params"])
        obj._validate_params()
        if "shape" in meta:
            n_users, n_items = (int(s) for s in meta["shape"])
            X = sp.csr_matrix(
                (
                    np.array(arrays["ui_data"]),
                    np.array(arrays["ui_indices"]),
                    np.array(arrays["ui_indptr"]),
                ),
                shape=(n_users, n_items),
            )
            X.check_format(full_check=True)
            X = as_interactions(X, "stored user_items")
            if X.shape != (n_users, n_items):
                raise ValueError("stored user_items has the wrong shape")
            state = obj._set_model_state(meta["model"], arrays, n_items)
            obj._user_items = X
            obj.n_users_, obj.n_items_ = n_users, n_items
            for key, value in state.items():
                setattr(obj, key, value)
        return obj


# recommend_sparse and recommend_dense are the two thin entries into the core's fused scoring
# (sparse or dense weights); their argument lists match on purpose (duplicates pairs them).
def recommend_sparse(
    S: sp.csr_matrix,
    rows: sp.csr_matrix,
    banned: np.ndarray,
    exclude_seen: bool,
    N: int,
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fused scoring + top-N with a sparse (n_items, n_items) float32 similarity."""
    s_indptr = np.ascontiguousarray(S.indptr, dtype=np.int64)
    s_indices = np.ascontiguousarray(S.indices, dtype=np.int32)
    s_data = np.ascontiguousarray(S.data, dtype=np.float32)
    return _core.rec_recommend_sparse(
        s_indptr, s_indices, s_data, *parts(rows), banned, exclude_seen, N, threads
    )


def recommend_dense(
    W: np.ndarray,
    active: np.ndarray,
    n_items: int,
    rows: sp.csr_matrix,
    banned: np.ndarray,
    exclude_seen: bool,
    N: int,
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fused scoring + top-N with dense float32 weights over the `active` items."""
    return _core.rec_recommend_dense(
        W, active, n_items, *parts(rows), banned, exclude_seen, N, threads
    )
