"""Smoke test run under `qemu-x86_64 -cpu MODEL` (.ci/qemu.sh): pysim on an emulated older CPU.

Checks that import-time dispatch picks the level the emulated CPU really has (argv[1]) and that
cdist / dot / paired on both paths give the float64 reference, so no instruction of a higher
level runs on that CPU (it would raise SIGILL under qemu). The reference avoids BLAS on
purpose (elementwise numpy only), so a BLAS library's own CPU dispatch cannot interfere.
"""

import sys

import numpy as np

import pysim

expected = sys.argv[1]
info = pysim.simd_info()
assert info["detected"] == expected, info
assert info["isa"] == expected, info
rng = np.random.default_rng(0)
A = rng.standard_normal((50, 37))
B = rng.standard_normal((60, 37))
sq = ((A[:, None, :] - B[None]) ** 2).sum(-1)
dots = (A[:, None, :] * B[None]).sum(-1)
for dt, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
    a, b = A.astype(dt), B.astype(dt)
    for rows in (50, 2, 1):  # tiled and one-to-many
        for threads in (1, 2):
            got = pysim.cdist(a[:rows], b, "sqeuclidean", threads=threads)
            assert np.allclose(got, sq[:rows], rtol=tol, atol=tol), (dt, rows, threads)
            got = pysim.cdist(a[:rows], b, "euclidean", threads=threads)
            assert np.allclose(got, np.sqrt(sq[:rows]), rtol=tol, atol=tol)
            got = pysim.dot(a[:rows], b, threads=threads)
            assert np.allclose(got, dots[:rows], rtol=tol, atol=tol * 40)
    got = pysim.paired_distances(a, a[::-1], "sqeuclidean")
    assert np.allclose(got, ((A - A[::-1]) ** 2).sum(-1), rtol=tol, atol=tol)
print(f"qemu smoke: dispatch chose {info['isa']} (detected {info['detected']}), results exact")
