"""Regression tests from an adversarial review: each failed before its fix.

Grouped by kind: data loss and crashes, silent wrong answers, clear errors. The
concurrency scenarios (adds crossing the renumbering threshold, saves during adds) are in
test_concurrency_stress.py; this file holds the deterministic ones and one quick concurrent
save check.
"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import pysim

INT64_MAX = 2**63 - 1


# --- data loss and crashes -------------------------------------------------------------------


def test_default_id_overflow_is_refused_and_state_stays_loadable():
    X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    index = pysim.HNSWIndex(4)
    index.add(X[:2], ids=[0, INT64_MAX])
    with pytest.raises(ValueError, match="default ids"):
        index.add(X[2:3])
    assert sorted(index.ids.tolist()) == [0, INT64_MAX]
    np.testing.assert_array_equal(index.get_items([0])[0], X[0])  # id 0 not overwritten
    copy = pickle.loads(pickle.dumps(index))
    assert sorted(copy.ids.tolist()) == [0, INT64_MAX]
    index.add(X[2:3], ids=[5])  # explicit ids still work
    assert 5 in index


def test_default_ids_up_to_the_last_one():
    X = np.ones((2, 3), np.float32)
    index = pysim.HNSWIndex(3)
    index.add(X[:1], ids=[INT64_MAX - 1])
    index.add(X[1:])  # gets 2**63 - 1, the last id
    assert INT64_MAX in index
    with pytest.raises(ValueError, match="default ids"):
        index.add(X[:1])


@pytest.mark.parametrize("quantization", [None, "sq8"])
def test_save_and_pickle_during_add_always_load(tmp_path, quantization):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6000, 8)).astype(np.float32)
    index = pysim.HNSWIndex(8, M=8, ef_construction=32, quantization=quantization)
    index.add(X[:500], threads=1)
    blobs: list[bytes] = []
    done = threading.Event()

    def snapshots():
        j = 0
        while not done.is_set():
            index.save(tmp_path / f"s{j % 4}.pysim")
            pysim.HNSWIndex.load(tmp_path / f"s{j % 4}.pysim")
            blobs.append(pickle.dumps(index))
            j += 1

    t = threading.Thread(target=snapshots)
    t.start()
    try:
        for s in range(500, 6000, 250):  # levels rise while snapshots are taken
            index.add(X[s : s + 250], threads=2)
    finally:
        done.set()
        t.join()
    assert blobs
    for blob in blobs:
        copy = pickle.loads(blob)
        _, ids = copy.query(X[:3], k=1)
        assert (ids >= 0).all()


def test_referenced_array_turning_nan_does_not_crash():
    X = np.ones((30, 3), np.float32)
    index = pysim.BruteForceIndex(X)
    X[:] = np.nan
    dist, ind = index.query(np.zeros(3, np.float32), k=2)
    assert (ind == -1).all() and np.isinf(dist).all()  # a NaN distance never enters a result
    X[:5] = np.arange(15, dtype=np.float32).reshape(5, 3)
    dist, ind = index.query(np.zeros((4, 3), np.float32), k=7)
    assert ind[:, :5].tolist() == [[0, 1, 2, 3, 4]] * 4 and (ind[:, 5:] == -1).all()


def test_estimators_survive_in_place_change_of_their_training_data():
    X = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    y = np.arange(40) % 2
    est = pysim.KNeighborsClassifier(3, algorithm="brute").fit(X, y)
    nn = pysim.NearestNeighbors(n_neighbors=3, algorithm="brute").fit(X)
    X[:] = np.nan
    assert est.predict(np.zeros((2, 3), np.float32)).shape == (2,)
    assert nn.kneighbors(np.zeros((2, 3), np.float32))[1].shape == (2, 3)


def test_mahalanobis_hnsw_refuses_values_too_large_after_mapping():
    X = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    index = pysim.HNSWIndex(8, "mahalanobis", VI=np.eye(8) * 1e80)
    with pytest.raises(ValueError, match="too large"):
        index.add(X)
    assert len(index) == 0
    with pytest.raises(ValueError, match="too large"):
        pysim.BruteForceIndex(X, "mahalanobis", VI=np.eye(8) * 1e80)


@pytest.mark.parametrize("fn", ["dot", "cdist"])
def test_out_aliasing_an_input_is_refused(fn):
    X = np.random.default_rng(0).standard_normal((64, 64))
    before = X.copy()
    with pytest.raises(ValueError, match="share memory"):
        getattr(pysim, fn)(X, X, out=X)
    np.testing.assert_array_equal(X, before)
    Y = X.copy()
    out = np.empty((64, 64))
    np.testing.assert_allclose(pysim.dot(X, Y, out=out), X @ Y.T, rtol=1e-12, atol=1e-9)


def _reference(A, B, metric):
    from scipy.spatial.distance import cdist

    return cdist(A.astype(np.float64), B.astype(np.float64), metric)


@pytest.mark.parametrize("scale", [1e-30, 1e-40, 3e19, 1e25])
def test_extreme_float32_magnitudes_are_exact_or_refused(scale):
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((2000, 8)) * scale).astype(np.float32)
    Q = X[:40] + (rng.standard_normal((40, 8)) * scale * 0.01).astype(np.float32)
    want = _reference(Q, X, "euclidean")
    with np.errstate(over="ignore"):
        want32 = want.astype(np.float32)
    # cdist: the documented accuracy at every magnitude (relative to the norms)
    got = pysim.cdist(Q, X, "euclidean")
    np.testing.assert_allclose(got, want32, rtol=1e-5, atol=0)
    got1 = pysim.cdist(Q[:1], X, "euclidean")
    np.testing.assert_allclose(got1, want32[:1], rtol=1e-5, atol=0)
    np.testing.assert_allclose(
        pysim.paired_distances(Q, X[:40], "euclidean"),
        np.diag(want32[:, :40]),
        rtol=1e-5,
    )
    # exact indexes: the reference's neighbours (no ties in this data)
    truth = np.argsort(want, axis=1, kind="stable")[:, :5]
    tree = pysim.KDTreeIndex(X)
    d, i = tree.query(Q, k=5)
    np.testing.assert_array_equal(i, truth)
    np.testing.assert_allclose(d, np.take_along_axis(want32, truth, 1), rtol=1e-5)
    r = float(np.take_along_axis(want, truth, 1)[0, 2])
    assert set(tree.query_radius(Q[:1], r)[0].tolist()) >= set(truth[0, :2].tolist())
    try:
        brute = pysim.BruteForceIndex(X, "euclidean")
    except ValueError as exc:  # brute force refuses what its float32 norms cannot hold
        assert "too large" in str(exc)
    else:
        np.testing.assert_array_equal(brute.query(Q, k=5)[1], truth)
    # HNSW (approximate): answers from the right scale, or refuses with a clear message
    hnsw = pysim.HNSWIndex(8, "euclidean")
    try:
        hnsw.add(X)
    except ValueError as exc:
        assert "float32" in str(exc)
    else:
        d, i = hnsw.query(Q, k=1, ef=200)
        np.testing.assert_allclose(d[:, 0], want32[np.arange(40), i[:, 0]], rtol=1e-5)


def test_cosine_hnsw_keeps_directions_of_tiny_and_huge_rows():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 6)).astype(np.float32)
    X[:100] *= 1e-30
    X[100:200] *= 1e30
    index = pysim.HNSWIndex(6, "cosine")
    index.add(X)
    d, i = index.query(X[:50], k=1, ef=300)
    np.testing.assert_array_equal(i[:, 0], np.arange(50))
    np.testing.assert_allclose(d[:, 0], 0, atol=1e-6)


def test_negative_callable_weights_predict_like_scikit_learn():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 4))
    y = rng.integers(0, 4, 200)
    Q = rng.standard_normal((50, 4))

    def w(d):
        return -np.ones_like(d)

    ours = pysim.KNeighborsClassifier(3, weights=w).fit(X, y)
    theirs = KNeighborsClassifier(3, weights=w, algorithm="brute").fit(X, y)
    np.testing.assert_array_equal(ours.predict(Q), theirs.predict(Q))
    np.testing.assert_allclose(ours.predict_proba(Q), theirs.predict_proba(Q))


# --- clear errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda h, Q: h.query(Q, k=1, threads=2**40),
        lambda h, Q: h.query(Q, k=1, ef=2**40),
        lambda h, Q: h.query(Q, k=2**31),
        lambda h, Q: setattr(h, "ef", 2**31),
        lambda h, Q: pysim.HNSWIndex(4, ef_construction=2**31),
        lambda h, Q: pysim.HNSWIndex(4, metric=None),
        lambda h, Q: pysim.KDTreeIndex(Q, leaf_size=2**40),
        lambda h, Q: pysim.cdist(Q, Q, threads=10**6),
    ],
)
def test_out_of_range_integers_name_their_argument(call):
    h = pysim.HNSWIndex(4)
    Q = np.ones((3, 4), np.float32)
    h.add(Q)
    with pytest.raises((ValueError, TypeError, MemoryError)) as info:
        call(h, Q)
    assert "incompatible function arguments" not in str(info.value)
    names = ("threads", "ef", "k must", "lower k", "metric", "leaf")
    assert any(w in str(info.value) for w in names)
    assert h.ef == 64


def test_max_elements_is_only_a_hint():
    index = pysim.HNSWIndex(128, max_elements=10**9)
    index.add(np.ones((3, 128), np.float32))
    assert len(index) == 3


def test_radius_rule_is_the_same_for_every_exact_index():
    X = np.random.default_rng(5).standard_normal((50, 3))
    for index in (pysim.BruteForceIndex(X, "euclidean"), pysim.KDTreeIndex(X)):
        with pytest.raises(ValueError, match="r must be >= 0"):
            index.query_radius(X[:2], -1.0)
        with pytest.raises(TypeError, match="r must be a number"):
            index.query_radius(X[:2], None)
        with pytest.raises(TypeError, match="return_distance"):
            index.query_radius(X[:2], 1.0, return_distance="yes")
    # "ip" distances (1 - a.b) can be negative, so can its radius
    ip = pysim.BruteForceIndex(X, "ip")
    assert len(ip.query_radius(X[:1], -0.5)[0]) == int((1 - X @ X[0] <= -0.5).sum())


def test_cdist_and_every_index_rank_float32_mahalanobis_alike():
    """One resolver maps the rows (float64, rounded once) for every consumer."""
    rng = np.random.default_rng(6)
    d = 12
    A = rng.standard_normal((d, d))
    VI = A @ A.T + 0.1 * np.eye(d)
    X = rng.standard_normal((400, d)).astype(np.float32)
    Q = rng.standard_normal((30, d)).astype(np.float32)
    order = np.argsort(pysim.cdist(Q, X, "mahalanobis", VI=VI), axis=1, kind="stable")[:, :5]
    brute = pysim.BruteForceIndex(X, "mahalanobis", VI=VI).query(Q, k=5)[1]
    hnsw = pysim.HNSWIndex(d, "mahalanobis", VI=VI)
    hnsw.add(X)
    graph = hnsw.query(Q, k=5, ef=400)[1]
    est = pysim.NearestNeighbors(
        n_neighbors=5, metric="mahalanobis", metric_params={"VI": VI}, algorithm="kd_tree"
    ).fit(X)
    tree = est.kneighbors(Q, return_distance=False)
    for got in (brute, graph, tree):
        np.testing.assert_array_equal(got, order)


# --- persistence: odd destinations and sources -----------------------------------------------

INDEX_CLASSES = [pysim.BruteForceIndex, pysim.KDTreeIndex, pysim.HNSWIndex]


def _small_index(cls):
    X = np.random.default_rng(7).standard_normal((50, 3)).astype(np.float32)
    if cls is pysim.HNSWIndex:
        index = pysim.HNSWIndex(3)
        index.add(X)
        return index
    return cls(X)


def _leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def _unix_socket(path):
    import socket

    if not hasattr(socket, "AF_UNIX") or len(str(path)) > 100:
        pytest.skip("needs a short AF_UNIX socket path")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


@pytest.mark.parametrize("what", ["directory", "fifo", "socket", "trailing slash"])
def test_save_refuses_non_regular_destinations(tmp_path, what):
    import os
    import stat

    index = _small_index(pysim.BruteForceIndex)
    dest = tmp_path / "dest"
    sock = None
    if what == "directory":
        dest.mkdir()
    elif what == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(dest)
    elif what == "socket":
        sock = _unix_socket(dest)
    else:
        dest = str(tmp_path / "new") + os.sep
    try:
        mode_before = os.lstat(dest).st_mode if what != "trailing slash" else None
        with pytest.raises(ValueError, match="cannot save") as info:
            index.save(dest)
        assert str(dest) in str(info.value)
        if mode_before is not None:
            assert stat.S_IFMT(os.lstat(dest).st_mode) == stat.S_IFMT(mode_before)
        assert _leftovers(tmp_path, {"dest"}) == []
    finally:
        if sock is not None:
            sock.close()


def test_save_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    import os

    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "index.pysim"
    first = _small_index(pysim.BruteForceIndex)
    first.save(target)
    link = tmp_path / "current.pysim"
    link.symlink_to(target)
    second = pysim.BruteForceIndex(np.ones((7, 3), np.float32))
    second.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(pysim.BruteForceIndex.load(target)) == 7
    assert (
        _leftovers(real_dir, {"index.pysim"}) == []
        and _leftovers(tmp_path, {"real", link.name}) == []
    )
    # a dangling link: the file it names is created, as open() would
    target.unlink()
    second.save(link)
    assert link.is_symlink() and len(pysim.BruteForceIndex.load(target)) == 7


def test_save_keeps_the_destination_mode_and_new_files_follow_the_umask(tmp_path):
    import os
    import stat

    index = _small_index(pysim.BruteForceIndex)
    path = tmp_path / "a.pysim"
    path.write_bytes(b"old")
    for mode in (0o644, 0o640, 0o604):
        os.chmod(path, mode)
        index.save(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == mode
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = tmp_path / "b.pysim"
    index.save(fresh)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o666 & ~umask
    assert len(pysim.BruteForceIndex.load(path)) == 50


_KILLED_SAVE = """
import sys, time
import numpy as np
import pysim
from pysim import _persist

chunks = _persist._chunks

def slow(*args):
    for i, chunk in enumerate(chunks(*args)):
        yield chunk
        if i == 1:
            print("writing", flush=True)
            time.sleep(120)

_persist._chunks = slow
pysim.BruteForceIndex(np.ones((5000, 16), np.float32)).save(sys.argv[1])
"""


def test_killed_save_leaves_no_orphan_after_the_next_save(tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "index.pysim"
    _small_index(pysim.BruteForceIndex).save(path)
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILLED_SAVE, str(path)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout.readline().strip() == "writing"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
            proc.stdout.close()
        assert len(_leftovers(tmp_path, {"index.pysim"})) == 1  # the killed save's temporary
        assert len(pysim.BruteForceIndex.load(path)) == 50  # the destination is untouched
    pysim.BruteForceIndex(np.ones((9, 3), np.float32)).save(path)
    assert _leftovers(tmp_path, {"index.pysim"}) == []
    assert len(pysim.BruteForceIndex.load(path)) == 9


def test_concurrent_saves_to_one_path_take_turns(tmp_path):
    path = tmp_path / "shared.pysim"
    sizes = (10, 20, 30, 40)
    indexes = [pysim.BruteForceIndex(np.ones((n, 3), np.float32)) for n in sizes]
    errors = []

    def saver(index):
        try:
            for _ in range(15):
                index.save(path)
                assert len(pysim.BruteForceIndex.load(path)) in sizes
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(ix,)) for ix in indexes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(pysim.BruteForceIndex.load(path)) in sizes
    assert _leftovers(tmp_path, {"shared.pysim"}) == []


@pytest.mark.parametrize("cls", INDEX_CLASSES, ids=lambda c: c.__name__)
def test_load_of_a_fifo_fails_at_once(tmp_path, cls):
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            cls.load(fifo)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # blocked in open(): give it a writer so the thread can end
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail("load() of a FIFO blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError), outcome
    assert str(fifo) in str(outcome[0]) and "FIFO" in str(outcome[0])


@pytest.mark.parametrize("cls", INDEX_CLASSES, ids=lambda c: c.__name__)
def test_load_of_a_directory_or_socket_is_a_value_error(tmp_path, cls):
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ValueError, match="directory") as info:
        cls.load(folder)
    assert str(folder) in str(info.value)
    sock = _unix_socket(tmp_path / "sock")
    try:
        with pytest.raises(ValueError, match="socket") as info:
            cls.load(tmp_path / "sock")
        assert "sock" in str(info.value)
    finally:
        sock.close()


# --- crafted files with a valid checksum -----------------------------------------------------


def _resave(tmp_path, index, change):
    """`index`'s state changed by `change(meta, arrays)`, written with a valid checksum."""
    from pysim import _persist

    meta, arrays = index._get_state()
    meta = dict(meta)
    arrays = {k: np.array(v, copy=True) for k, v in arrays.items()}
    change(meta, arrays)
    path = tmp_path / "crafted.pysim"
    _persist.save(path, index._KIND, meta, arrays)
    return path


def _refused(tmp_path, index, change, match=None):
    path = _resave(tmp_path, index, change)
    with pytest.raises(ValueError, match=match) as info:
        type(index).load(path)
    assert str(path) in str(info.value)
    blob = path.read_bytes()
    with pytest.raises(ValueError, match="corrupt pysim pickle"):
        pysim._index_base._rebuild(type(index), blob)


def _set(name, pos, value):
    def change(meta, arrays):
        arrays[name].reshape(-1)[pos] = value

    return change


@pytest.mark.parametrize(
    "change",
    [
        _set("split_bounds", 0, np.nan),
        _set("split_bounds", 1, np.nan),
        _set("split_bounds", 0, 3e38),
        _set("split_bounds", 3, -3e38),
        _set("split_bounds", 2, 0.0),  # moved, finite: pruning would skip true neighbours
        _set("points", 0, np.nan),
        _set("points", 5, 3e38),  # finite, but its squared distances overflow float32
        _set("bbox", 0, -1e30),
    ],
    ids=["lo-nan", "hi-nan", "lo-huge", "hi-huge", "moved", "point-nan", "point-huge", "bbox"],
)
def test_crafted_kdtree_bounds_and_points_are_refused(tmp_path, change):
    X = np.random.default_rng(8).standard_normal((400, 3)).astype(np.float32) + 5.0
    tree = pysim.KDTreeIndex(X, leaf_size=8)
    _refused(tmp_path, tree, change)


def test_crafted_kdtree_scale_exponent_is_refused(tmp_path):
    # Data stored rescaled has its largest value in [0.5, 1); a scale on other points is crafted.
    X = np.random.default_rng(8).standard_normal((100, 3)).astype(np.float32) * 4
    tree = pysim.KDTreeIndex(X)
    assert tree._scale_exp == 0

    def change(meta, arrays):
        meta["scale_exponent"] = 40

    _refused(tmp_path, tree, change, "scale_exponent")


@pytest.mark.parametrize("what", ["L", "VI", "L-transposed"])
def test_crafted_mahalanobis_factor_is_refused(tmp_path, what):
    rng = np.random.default_rng(9)
    A = rng.standard_normal((5, 5))
    VI = A @ A.T + np.eye(5)
    index = pysim.BruteForceIndex(rng.standard_normal((60, 5)), "mahalanobis", VI=VI)

    def change(meta, arrays):
        if what == "L":
            arrays["L"] *= 1.5
        elif what == "VI":
            arrays["VI"] = np.eye(5)
        else:
            arrays["L"] = arrays["L"].T.copy()

    _refused(tmp_path, index, change, "factor")


@pytest.mark.parametrize("quantization", [None, "rabitq", "f16", "bf16", "sq8", "sq4"])
@pytest.mark.parametrize("refine", [0, None])
def test_crafted_metric_switch_to_cosine_is_refused(tmp_path, quantization, refine):
    if quantization in (None, "rabitq") and refine is None:
        pytest.skip("one float32 layout case is enough")
    X = np.random.default_rng(10).standard_normal((300, 8)).astype(np.float32) * 3
    kwargs = {} if quantization in (None, "rabitq") else {"refine": refine}
    index = pysim.HNSWIndex(8, "sqeuclidean", quantization=quantization, **kwargs)
    index.add(X)

    def change(meta, arrays):
        meta["metric"] = "cosine"

    _refused(tmp_path, index, change, "norm|range")


@pytest.mark.parametrize("kinds", [("f16", "bf16"), ("bf16", "f16")], ids=["f16>bf16", "bf16>f16"])
def test_crafted_f16_bf16_swap_is_refused(tmp_path, kinds):
    X = np.random.default_rng(11).standard_normal((300, 8)).astype(np.float32)
    index = pysim.HNSWIndex(8, "euclidean", quantization=kinds[0])
    index.add(X)

    def change(meta, arrays):
        meta["quantization"] = kinds[1]

    _refused(tmp_path, index, change, "fingerprint")


@pytest.mark.parametrize("value", [0.0, np.nan, np.inf, -1.0])
def test_crafted_sq_step_is_refused(tmp_path, value):
    X = np.random.default_rng(12).standard_normal((300, 8)).astype(np.float32)
    index = pysim.HNSWIndex(8, quantization="sq8", refine=0)
    index.add(X)

    def change(meta, arrays):
        arrays["q_step"][:] = value

    _refused(tmp_path, index, change)


def _bool_cases():
    X = np.random.default_rng(13).standard_normal((1, 3)).astype(np.float32)
    brute = pysim.BruteForceIndex(X)
    tree = pysim.KDTreeIndex(X)
    hnsw = pysim.HNSWIndex(3)
    hnsw.add(X)
    return [
        (brute, "format", True),
        (brute, "n", True),
        (brute, "n", 1.0),
        (tree, "layout", True),
        (tree, "leaf_size", 64.0),
        (hnsw, "format", True),
        (hnsw, "entry", False),
        (hnsw, "ef", True),
    ]


@pytest.mark.parametrize("case", range(8))
def test_crafted_booleans_and_floats_where_integers_belong_are_refused(tmp_path, case):
    index, key, value = _bool_cases()[case]

    def change(meta, arrays):
        meta[key] = value

    _refused(tmp_path, index, change, key)


@pytest.mark.parametrize(
    "quantization, refine",
    [
        (None, None),
        ("rabitq", None),
        ("f16", 0),
        ("bf16", 0),
        ("sq8", None),
        ("sq8", 0),
        ("sq4", 0),
        ("f16", 8),
    ],
)
def test_valid_cosine_indexes_still_load(tmp_path, quantization, refine):
    """The new checks never refuse what save wrote: odd magnitudes, zero rows, one-sided data."""
    rng = np.random.default_rng(14)
    X = rng.standard_normal((400, 12)).astype(np.float32)
    X[:50] = np.abs(X[:50]) * 1e-20
    X[50:60] = 0
    X[60:100] *= 1e20
    first = np.abs(X[100:200])  # the ranges come from one-sided rows; later rows clip
    kwargs = {} if quantization in (None, "rabitq") else {"refine": refine}
    index = pysim.HNSWIndex(12, "cosine", quantization=quantization, **kwargs)
    index.add(first)
    index.add(X)
    index.remove([3, 150])
    path = tmp_path / "cos.pysim"
    index.save(path)
    loaded = pysim.HNSWIndex.load(path)
    np.testing.assert_array_equal(loaded.query(X[:20], k=3)[1], index.query(X[:20], k=3)[1])


def test_valid_exact_indexes_still_load(tmp_path):
    rng = np.random.default_rng(15)
    A = rng.standard_normal((6, 3))
    VI = A @ A.T  # rank 3: the eigendecomposition path
    X = rng.standard_normal((200, 6))
    cases = [
        (pysim.BruteForceIndex(X, "mahalanobis", VI=VI), X),
        (pysim.BruteForceIndex(X.astype(np.float32), "mahalanobis", VI=VI * 1e-12), X),
        (pysim.KDTreeIndex((X * 1e-30).astype(np.float32)), X * 1e-30),
        (pysim.KDTreeIndex((X * 1e25).astype(np.float32), leaf_size=1), X * 1e25),
        (pysim.KDTreeIndex(np.zeros((10, 2))), np.zeros((3, 2))),
        (pysim.KDTreeIndex(np.repeat(X[:5], 40, axis=0), leaf_size=3), X),
    ]
    for index, Q in cases:
        index.save(tmp_path / "ok.pysim")
        loaded = type(index).load(tmp_path / "ok.pysim")
        Q = np.asarray(Q[:7], index.dtype)
        np.testing.assert_array_equal(loaded.query(Q, k=3)[1], index.query(Q, k=3)[1])


def test_save_without_advisory_locks_falls_back_to_a_unique_name(tmp_path, monkeypatch):
    import errno
    import types

    from pysim import _persist

    def flock(fd, op):
        raise OSError(errno.ENOLCK, "no locks on this mount")

    monkeypatch.setattr(_persist, "fcntl", types.SimpleNamespace(flock=flock, LOCK_EX=2))
    path = tmp_path / "nolock.pysim"
    _small_index(pysim.BruteForceIndex).save(path)
    _small_index(pysim.BruteForceIndex).save(path)
    assert len(pysim.BruteForceIndex.load(path)) == 50
    assert _leftovers(tmp_path, {"nolock.pysim"}) == []
