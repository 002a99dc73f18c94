"""float64 numpy references for every distance and search, kept obviously correct."""

from __future__ import annotations

import numpy as np


def cdist(A: np.ndarray, B: np.ndarray, metric: str, VI: np.ndarray | None = None) -> np.ndarray:
    A = np.asarray(A, np.float64)
    B = np.asarray(B, np.float64)
    if metric in ("sqeuclidean", "euclidean", "mahalanobis"):
        diff = A[:, None, :] - B[None, :, :]
        if metric == "mahalanobis":
            sq = np.einsum("ijk,kl,ijl->ij", diff, np.asarray(VI, np.float64), diff)
            return np.sqrt(np.maximum(sq, 0))
        sq = np.einsum("ijk,ijk->ij", diff, diff)
        return sq if metric == "sqeuclidean" else np.sqrt(sq)
    dots = A @ B.T
    if metric == "dot":
        return dots
    if metric == "ip":
        return 1.0 - dots
    if metric == "cosine":
        na = np.linalg.norm(A, axis=1)[:, None]
        nb = np.linalg.norm(B, axis=1)[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = np.where((na > 0) & (nb > 0), dots / (na * nb), 0.0)
        return np.clip(1.0 - sim, 0.0, 2.0)
    raise ValueError(metric)


def paired(A: np.ndarray, B: np.ndarray, metric: str, VI: np.ndarray | None = None) -> np.ndarray:
    return np.array([cdist(a[None], b[None], metric, VI)[0, 0] for a, b in zip(A, B, strict=True)])


def scale(A: np.ndarray, B: np.ndarray, metric: str) -> np.ndarray:
    """Magnitude of the terms of each (i, j) result, the unit of the relative tolerance."""
    na = np.linalg.norm(np.asarray(A, np.float64), axis=1)[:, None]
    nb = np.linalg.norm(np.asarray(B, np.float64), axis=1)[None, :]
    if metric == "sqeuclidean":
        return na**2 + nb**2 + 1e-300
    if metric in ("euclidean", "mahalanobis"):
        return na + nb + 1e-300
    if metric in ("ip", "dot"):
        return na * nb + 1.0
    return np.ones_like(na * nb)


def knn(data: np.ndarray, queries: np.ndarray, k: int, metric: str, VI=None):
    """Exact k nearest rows, ties broken by the smaller index, padded with inf / -1."""
    D = cdist(queries, data, metric, VI)
    n = D.shape[1]
    order = np.lexsort((np.broadcast_to(np.arange(n), D.shape), D), axis=1)[:, :k]
    dist = np.take_along_axis(D, order, axis=1)
    if k > n:
        pad = k - n
        dist = np.hstack([dist, np.full((len(D), pad), np.inf)])
        order = np.hstack([order, np.full((len(D), pad), -1)])
    return dist, order.astype(np.int64)
