"""Compressed-code kernels (f16, bf16, u8, u4; float and exact-integer forms) on every ISA.

Every kernel, in its three shapes (pair, many with a padded stride, batch in a shuffled order),
is checked against a float64 reference computed from the *decoded* codes, or against the exact
int64 sum for the integer kernels, for dimensions that hit every tail of every vector width and
of the 4-bit block layout. Conversions are checked bit for bit against numpy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from quant_reference import bf16_round, bf16_value, code_bytes, decode, pack_u4

import pysim
from pysim import _core

DIMS = [
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    15,
    16,
    17,
    31,
    32,
    33,
    63,
    64,
    65,
    100,
    127,
    128,
    129,
    191,
    255,
    257,
    384,
    784,
]
N_CODES = 7  # odd: the four-at-a-time shapes also run their remainder
EPS32 = float(np.finfo(np.float32).eps)

# A table, one row per kernel slot (duplicates pairs its rows).
# name -> (query kind, code layout, uses scale, integer result)
KERNELS = {
    "f16_dot": ("f", "f16", False, False),
    "f16_l2sq": ("f", "f16", False, False),
    "bf16_dot": ("f", "bf16", False, False),
    "bf16_l2sq": ("f", "bf16", False, False),
    "bf16_dot_bf16": ("h", "bf16", False, False),
    "u8_dot": ("f", "u8", False, False),
    "u8_l2sq": ("f", "u8", True, False),
    "u4_dot": ("f", "u4", False, False),
    "u4_l2sq": ("f", "u4", True, False),
    "u8_dot_i8": ("i8", "u8", False, True),
    "u4_dot_i8": ("i8", "u4", False, True),
    "u8_l2sq_u8": ("code", "u8", False, True),
    "u4_l2sq_u4": ("code", "u4", False, True),
}


def random_codes(rng, layout: str, n: int, dim: int, pad: int = 0) -> np.ndarray:
    """n codes with `pad` extra bytes per row (the many shape's stride)."""
    if layout in ("f16", "bf16"):
        vals = rng.standard_normal((n, dim)).astype(np.float32)
        bits = vals.astype(np.float16).view(np.uint16) if layout == "f16" else bf16_round(vals)
        body = bits.view(np.uint8).reshape(n, 2 * dim)
    elif layout == "u8":
        body = rng.integers(0, 256, (n, dim), dtype=np.uint8)
    else:
        body = pack_u4(rng.integers(0, 16, (n, dim)))
    return np.ascontiguousarray(np.hstack([body, np.full((n, pad), 0xA5, np.uint8)]))


def reference(name: str, query, scale, codes: np.ndarray, dim: int):
    """float64 (or exact int) result and an absolute tolerance for each code."""
    qkind, layout, uses_scale, is_int = KERNELS[name]
    c = decode(layout, codes, dim)
    if is_int:
        if qkind == "i8":
            return c.astype(np.int64) @ query.astype(np.int64), 0
        q = decode(layout, query.reshape(1, -1), dim)[0].astype(np.int64)
        d = c.astype(np.int64) - q
        return (d * d).sum(axis=1), 0
    if qkind == "h":
        q = bf16_value(query).astype(np.float64)
    else:
        q = query.astype(np.float64)
    if name.endswith("_l2sq"):
        s = scale.astype(np.float64) if uses_scale else 1.0
        terms = (q - s * c) ** 2
        mag = ((np.abs(q) + np.abs(s * c)) ** 2).sum(axis=1)
    else:
        terms = q * c
        mag = np.abs(terms).sum(axis=1)
    return terms.sum(axis=1), 8 * EPS32 * (np.sqrt(dim) + 2) * mag


def assert_within(got, want, atol):
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= atol), f"error {err.max()} over tolerance {np.min(atol)}: {got} vs {want}"


def make_query(rng, name: str, dim: int):
    qkind, layout, uses_scale, _ = KERNELS[name]
    scale = None
    if qkind == "f":
        query = rng.standard_normal(dim).astype(np.float32) * (100 if layout == "u8" else 1)
        if uses_scale:
            scale = rng.uniform(0.01, 2.0, dim).astype(np.float32)
            query = (scale * rng.uniform(-2, 260 if layout == "u8" else 18, dim)).astype(np.float32)
    elif qkind == "h":
        query = bf16_round(rng.standard_normal(dim).astype(np.float32))
    elif qkind == "i8":
        query = rng.integers(-128, 128, dim).astype(np.int8)
    else:
        query = random_codes(rng, layout, 1, dim)[0]
    return query, scale


def run_all_forms(name, query, codes, dim, scale, rng):
    n = codes.shape[0]
    order = rng.permutation(n).astype(np.int64)
    tight = np.ascontiguousarray(codes[:, : code_bytes(KERNELS[name][1], dim)])
    pair = _core._quant_kernel(name, query, tight, dim, scale, "pair")
    many = _core._quant_kernel(name, query, codes, dim, scale, "many")
    batch = _core._quant_kernel(name, query, tight, dim, scale, "batch", order)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(n)
    return pair, many, batch[inverse]


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_matches_reference(isa, rng, name, dim):
    query, scale = make_query(rng, name, dim)
    codes = random_codes(rng, KERNELS[name][1], N_CODES, dim, pad=5)
    want, atol = reference(name, query, scale, codes, dim)
    for got in run_all_forms(name, query, codes, dim, scale, rng):
        if KERNELS[name][3]:
            assert got.dtype == np.int32
            np.testing.assert_array_equal(got, want)
        else:
            assert got.dtype == np.float32
            assert_within(got, want, atol)


@pytest.mark.parametrize("name", ["u8_dot_i8", "u4_dot_i8", "u8_l2sq_u8", "u4_l2sq_u4"])
@pytest.mark.parametrize("dim", [4096, 33025])
def test_integer_kernels_exact_at_extremes(isa, name, dim):
    # The largest products the codes allow, all of one sign: the int32 bounds of
    # quant_kernels.hpp (u8_l2sq_u8 is exact up to dim 33,025, the dots further).
    _, layout, _, _ = KERNELS[name]
    top = 255 if layout == "u8" else 15
    full = np.full((2, dim), top)
    codes = random_codes(np.random.default_rng(0), layout, 2, dim)
    codes[:] = full.astype(np.uint8) if layout == "u8" else pack_u4(full)
    if name.endswith("_i8"):
        queries = [np.full(dim, 127, np.int8), np.full(dim, -127, np.int8)]
    else:
        queries = [np.zeros(code_bytes(layout, dim), np.uint8)]
    for query in queries:
        want, _ = reference(name, query, None, codes, dim)
        assert np.abs(want).max() < 2**31
        for got in run_all_forms(name, query, codes, dim, None, np.random.default_rng(1)):
            np.testing.assert_array_equal(got, want)


def test_f16_conversions_match_numpy(isa, rng):
    specials = np.array(
        [
            0.0,
            -0.0,
            1.0,
            -1.0,
            65504.0,
            65519.99,
            65520.0,
            -65520.0,
            1e6,
            2.0**-14,
            2.0**-24,
            2.0**-25,
            1.5 * 2.0**-25,
            2.0**-26,
            3e-8,
            6e-5,
            np.inf,
            -np.inf,
            1.0 + 2.0**-11,
            1.0 + 3 * 2.0**-11,
        ],
        np.float32,
    )
    bits = rng.integers(0, 2**32, 50000, dtype=np.uint64).astype(np.uint32)
    finite = bits.view(np.float32)
    finite = finite[np.isfinite(finite)]
    # Values near the f16 range (the random bits mostly land far outside it).
    near = (rng.standard_normal(20000) * np.exp2(rng.integers(-26, 17, 20000))).astype(np.float32)
    x = np.concatenate([specials, finite, near]).astype(np.float32)
    got = _core._to_half("f16", x)
    with np.errstate(over="ignore"):
        want_bits = x.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(got, want_bits)
    nan = _core._to_half("f16", np.array([np.nan], np.float32))
    assert np.isnan(nan.view(np.float16)).all()
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    back = _core._from_half("f16", every)
    want = every.view(np.float16).astype(np.float32)
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(back[ok].view(np.uint32), want[ok].view(np.uint32))
    assert np.isnan(back[~ok]).all()


def test_bf16_conversions_match_integer_rounding(isa, rng):
    bits = rng.integers(0, 2**32, 50000, dtype=np.uint64).astype(np.uint32)
    x = np.concatenate(
        [
            bits.view(np.float32),
            np.array(
                [0.0, -0.0, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 3.4e38, np.inf, -np.inf, np.nan],
                np.float32,
            ),
        ]
    )
    got = _core._to_half("bf16", x)
    np.testing.assert_array_equal(got, bf16_round(x))
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    back = _core._from_half("bf16", every)
    np.testing.assert_array_equal(back.view(np.uint32), every.astype(np.uint32) << 16)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 33])
def test_conversion_tails(isa, rng, n):
    x = rng.standard_normal(n).astype(np.float32)
    np.testing.assert_array_equal(_core._to_half("f16", x), x.astype(np.float16).view(np.uint16))
    np.testing.assert_array_equal(_core._to_half("bf16", x), bf16_round(x))


def test_bad_kernel_arguments_raise():
    codes = np.zeros((2, 8), np.uint8)
    q = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="unknown"):
        _core._quant_kernel("nope", q, codes, 8)
    with pytest.raises(ValueError, match="too short"):
        _core._quant_kernel("u8_dot", np.zeros(9, np.float32), codes, 9)
    with pytest.raises(ValueError, match="scale"):
        _core._quant_kernel("u8_l2sq", q, codes, 8)
    with pytest.raises(ValueError, match="dtype"):
        _core._quant_kernel("u8_dot_i8", q, codes, 8)
    with pytest.raises(ValueError, match="form"):
        _core._quant_kernel("u8_dot", q, codes, 8, form="tile")
    with pytest.raises(ValueError, match="out of range"):
        _core._quant_kernel("u8_dot", q, codes, 8, form="batch", order=np.array([2], np.int64))


def test_simd_info_reports_every_quant_kernel():
    info = pysim.simd_info()
    available = info["available"]
    for name in KERNELS:
        for suffix in ("", "_many", "_batch"):
            assert info["kernels"][name + suffix] in available
    for name in ("f32_to_f16", "f32_to_bf16", "f16_to_f32", "bf16_to_f32"):
        assert info["kernels"][name] in available


def test_levels_are_cumulative(isa):
    # A level provides each kernel itself or inherits it from a lower level it includes.
    chain = ["scalar", "avx2", "avx512", "avx512_vnni", "avx512_vnni_bf16"]
    kernels = pysim.simd_info()["kernels"]
    if isa in chain:
        allowed = set(chain[: chain.index(isa) + 1])
    else:
        allowed = {"scalar", isa}
    assert set(kernels.values()) <= allowed
    if isa in ("avx512_vnni", "avx512_vnni_bf16"):
        assert kernels["u8_dot_i8"] == "avx512_vnni"
    if isa == "avx512_vnni_bf16":
        assert kernels["bf16_dot_bf16"] == "avx512_vnni_bf16"


def test_kernels_never_read_past_their_inputs(tmp_path):
    # Codes and queries are placed so they end exactly where an unreadable page starts; a read
    # of even one byte too many kills the child process (checked in a subprocess).
    script = tmp_path / "guard.py"
    script.write_text(
        textwrap.dedent(
            """
        import ctypes, mmap, sys
        import numpy as np
        from pysim import _core
        sys.path.insert(0, sys.argv[1])
        import test_quant_kernels as t

        page = mmap.PAGESIZE
        buf = mmap.mmap(-1, 4 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        arena = np.frombuffer(buf, np.uint8)
        base = arena.ctypes.data
        libc = ctypes.CDLL(None)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        assert libc.mprotect(base + page, page, 0) == 0
        assert libc.mprotect(base + 3 * page, page, 0) == 0
        rng = np.random.default_rng(0)
        count = 0
        for isa in _core._available_isas():
            _core._set_isa(isa)
            for name, (qkind, layout, uses_scale, is_int) in t.KERNELS.items():
                for dim in (1, 3, 5, 17, 33, 65, 100, 129, 200):
                    query, scale = t.make_query(rng, name, dim)
                    codes = t.random_codes(rng, layout, 3, dim)
                    nb = codes.nbytes
                    c = arena[page - nb:page].reshape(codes.shape)
                    c[:] = codes
                    qb = query.view(np.uint8)
                    q = arena[3 * page - qb.size:3 * page].view(query.dtype)
                    q[:] = query
                    for form in ("pair", "many", "batch"):
                        _core._quant_kernel(name, q, c, dim, scale, form)
                    count += 1
        print(count)
        """
        )
    )
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, str(script), here], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) == len(_core._available_isas()) * len(KERNELS) * 9
