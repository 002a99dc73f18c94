"""Reference codecs for the compressed-vector tests: code layouts, f16/bf16 rounding, decoding.

Written from the layout description in csrc/simd/quant_kernels.hpp, independently of the C++.
"""

from __future__ import annotations

import numpy as np


def code_bytes(layout: str, dim: int) -> int:
    return {"f16": 2 * dim, "bf16": 2 * dim, "u8": dim, "u4": (dim + 1) // 2}[layout]


def u4_positions(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(byte, high) of every dimension in the 4-bit layout: blocks of 128 dims in 64 bytes,
    byte k = dims k (low) and h + k (high), h = ceil(r / 2) for a block of r dims."""
    byte = np.empty(dim, np.int64)
    high = np.empty(dim, bool)
    for base in range(0, dim, 128):
        r = min(128, dim - base)
        h = (r + 1) // 2
        k = np.arange(r)
        byte[base : base + r] = base // 2 + np.where(k < h, k, k - h)
        high[base : base + r] = k >= h
    return byte, high


def pack_u4(values: np.ndarray) -> np.ndarray:
    n, dim = values.shape
    byte, high = u4_positions(dim)
    out = np.zeros((n, (dim + 1) // 2), np.uint8)
    for j in range(dim):
        v = values[:, j].astype(np.uint8)
        out[:, byte[j]] |= (v << 4) if high[j] else v
    return out


def unpack_u4(codes: np.ndarray, dim: int) -> np.ndarray:
    byte, high = u4_positions(dim)
    c = codes[:, byte].astype(np.int64)
    return np.where(high, c >> 4, c & 0x0F)


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits, round to nearest even (NaN stays NaN, made quiet)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def bf16_value(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def decode(layout: str, codes: np.ndarray, dim: int) -> np.ndarray:
    """Codes (n, bytes) -> decoded values (n, dim) in float64 (u8/u4: the integer levels)."""
    raw = codes[:, : code_bytes(layout, dim)]
    if layout == "f16":
        return np.ascontiguousarray(raw).view(np.float16).astype(np.float64)
    if layout == "bf16":
        return bf16_value(np.ascontiguousarray(raw).view(np.uint16)).astype(np.float64)
    if layout == "u8":
        return raw.astype(np.float64)
    return unpack_u4(raw, dim).astype(np.float64)
