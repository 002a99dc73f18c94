"""The benchmark suite's dataset loaders, ground truth, recall and report.

Every format is checked by writing a small file here and reading it back through the same
entry point a user's ``run.py --dataset PATH`` takes. Ground truth is checked against the
float64 reference of tests/reference.py (a full sort, ties by the smaller index), recall on
hand-made cases. Tests on the shared MNIST/MiniLM folders skip with a reason when the folder
is absent (a wheel tested elsewhere).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys

import datasets
import numpy as np
import pytest
import reference
import report
from conftest import repo_data


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    # Computed ground truth goes to a per-test folder, never into benchmarks/results.
    monkeypatch.setenv("PYSIM_BENCH_CACHE", str(tmp_path / "cache"))
    datasets.load_dataset.cache_clear()
    yield
    datasets.load_dataset.cache_clear()


def ref_ids(base, queries, k, metric):
    metric = {"euclidean": "sqeuclidean"}.get(metric, metric)
    return reference.knn(base, queries, k, metric)[1]


# --- texmex -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "dtype"), [(".fvecs", np.float32), (".ivecs", np.int32), (".bvecs", np.uint8)]
)
@pytest.mark.parametrize("d", [1, 3, 128])
def test_vecs_round_trip(tmp_path, rng, suffix, dtype, d):
    X = (
        (rng.standard_normal((17, d)) * 50).astype(dtype)
        if dtype != np.uint8
        else rng.integers(0, 256, (17, d)).astype(np.uint8)
    )
    path = tmp_path / f"x{suffix}"
    datasets.write_vecs(path, X)
    reader = {
        ".fvecs": datasets.read_fvecs,
        ".ivecs": datasets.read_ivecs,
        ".bvecs": datasets.read_bvecs,
    }[suffix]
    got = reader(path)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, X)
    np.testing.assert_array_equal(reader(path, count=5), X[:5])


def test_vecs_rejects_foreign_files(tmp_path, rng):
    path = tmp_path / "bad.fvecs"
    datasets.write_vecs(path, rng.standard_normal((4, 8)))
    path.write_bytes(path.read_bytes()[:-3])  # truncated
    with pytest.raises(ValueError, match="bad.fvecs"):
        datasets.read_fvecs(path)
    rows = np.zeros((2, 1 + 4), "<i4")
    rows[:, 0] = [4, 5]  # second row claims another dimension
    path.write_bytes(rows.tobytes())
    with pytest.raises(ValueError, match="dimension"):
        datasets.read_fvecs(path)


def write_texmex(folder, rng, n=300, nq=20, d=12, kind=".fvecs"):
    folder.mkdir()
    base = rng.integers(0, 256, (n, d)) if kind == ".bvecs" else rng.standard_normal((n, d))
    queries = rng.integers(0, 256, (nq, d)) if kind == ".bvecs" else rng.standard_normal((nq, d))
    datasets.write_vecs(folder / f"toy_base{kind}", base)
    datasets.write_vecs(folder / f"toy_query{kind}", queries)
    gt = ref_ids(base.astype(np.float32), queries.astype(np.float32), 10, "sqeuclidean")
    datasets.write_vecs(folder / "toy_groundtruth.ivecs", gt)
    return base, queries, gt


@pytest.mark.parametrize("kind", [".fvecs", ".bvecs"])
@pytest.mark.parametrize("via", ["folder", "base file"])
def test_texmex_dataset(tmp_path, rng, kind, via):
    base, queries, gt = write_texmex(tmp_path / "toy", rng, kind=kind)
    path = tmp_path / "toy" if via == "folder" else tmp_path / "toy" / f"toy_base{kind}"
    data = datasets.load_path(path)
    assert data["base"].dtype == np.float32 and data["metric"] == "euclidean"
    np.testing.assert_array_equal(data["base"], base.astype(np.float32))
    np.testing.assert_array_equal(data["queries"], queries.astype(np.float32))
    assert data["gt_source"] == "file"
    np.testing.assert_array_equal(data["gt"], gt)


def test_texmex_without_queries_is_split(tmp_path, rng):
    X = rng.standard_normal((50, 4)).astype(np.float32)
    datasets.write_vecs(tmp_path / "only.fvecs", X)
    data = datasets.load_path(tmp_path / "only.fvecs")
    np.testing.assert_array_equal(data["base"], X[:45])
    np.testing.assert_array_equal(data["queries"], X[45:])
    np.testing.assert_array_equal(data["gt"], ref_ids(X[:45], X[45:], 45, "sqeuclidean"))


# --- ann-benchmarks hdf5 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("distance", "metric"), [("euclidean", "euclidean"), ("angular", "cosine")]
)
@pytest.mark.parametrize("with_gt", [True, False])
def test_hdf5_dataset(tmp_path, rng, distance, metric, with_gt):
    h5py = pytest.importorskip("h5py", reason="h5py is the optional 'hdf5' extra")
    train = rng.standard_normal((200, 6)).astype(np.float32)
    test = rng.standard_normal((15, 6)).astype(np.float32)
    gt = ref_ids(train, test, 10, "cosine" if metric == "cosine" else "sqeuclidean")
    path = tmp_path / "toy-6-angular.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
        if with_gt:
            f.create_dataset("neighbors", data=gt.astype(np.int32))
            f.create_dataset("distances", data=np.zeros(gt.shape, np.float32))
        f.attrs["distance"] = distance
    data = datasets.load_path(path)
    assert data["metric"] == metric
    np.testing.assert_array_equal(data["base"], train)
    assert data["gt_source"] == ("file" if with_gt else "computed")
    np.testing.assert_array_equal(data["gt"][:, :10], gt)


def test_hdf5_without_h5py_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "x.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(ImportError, match=r"pysim\[hdf5\]"):
        datasets.load_path(tmp_path / "x.hdf5")


# --- npy / npz --------------------------------------------------------------------------------


@pytest.mark.parametrize("gt_name", ["gt.npy", "gt_top100.npy", None])
def test_npy_folder(tmp_path, rng, gt_name):
    base = rng.standard_normal((120, 5)).astype(np.float32)
    queries = rng.standard_normal((9, 5)).astype(np.float32)
    gt = ref_ids(base, queries, 10, "sqeuclidean")
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "queries.npy", queries)
    if gt_name:
        np.save(tmp_path / gt_name, gt.astype(np.int32))
    data = datasets.load_path(tmp_path)
    np.testing.assert_array_equal(data["base"], base)
    np.testing.assert_array_equal(data["queries"], queries)
    np.testing.assert_array_equal(data["gt"][:, :10], gt)
    assert data["gt"].dtype == np.int64
    assert data["gt_source"] == ("file" if gt_name else "computed")


def test_computed_ground_truth_is_cached(tmp_path, rng):
    X = rng.standard_normal((300, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    cache = tmp_path / "gtcache"
    first = datasets.load_path(tmp_path / "x.npy", cache_dir=cache)
    files = sorted(cache.glob("gt-*.npy"))
    assert len(files) == 1
    np.save(files[0], np.zeros_like(first["gt"]))  # the cached file is what gets read
    np.testing.assert_array_equal(datasets.load_path(tmp_path / "x.npy", cache_dir=cache)["gt"], 0)
    # Another metric is another cache entry.
    datasets.load_path(tmp_path / "x.npy", "cosine", cache_dir=cache)
    assert len(list(cache.glob("gt-*.npy"))) == 2


def test_single_npy_and_npz(tmp_path, rng):
    X = rng.standard_normal((2000, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    data = datasets.load_path(tmp_path / "x.npy", max_queries=50)
    assert data["base"].shape == (1800, 3) and data["queries"].shape == (50, 3)
    np.testing.assert_array_equal(data["queries"], X[1800:1850])
    np.savez(tmp_path / "y.npz", base=X[:100], queries=X[100:110])
    data = datasets.load_path(tmp_path / "y.npz", "ip")
    assert data["metric"] == "ip"
    np.testing.assert_array_equal(data["gt"], ref_ids(X[:100], X[100:110], 100, "ip"))


# --- IDX and MNIST-style folders ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, rng, dtype, gz):
    X = (rng.standard_normal((7, 3, 2)) * 40).astype(dtype)
    path = tmp_path / ("x-idx3-ubyte" + (".gz" if gz else ""))
    datasets.write_idx(path, X)
    got = datasets.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.shape == X.shape
    np.testing.assert_array_equal(got, X)


def test_idx_rejects_bad_files(tmp_path):
    (tmp_path / "a-idx1-ubyte").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="magic"):
        datasets.read_idx(tmp_path / "a-idx1-ubyte")
    (tmp_path / "b-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09\x05")
    with pytest.raises(ValueError, match="bytes"):
        datasets.read_idx(tmp_path / "b-idx1-ubyte")


def write_mnist_like(folder, rng, n=200):
    folder.mkdir()
    images = rng.integers(0, 256, (n, 4, 4)).astype(np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    datasets.write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    datasets.write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    (folder / "README.md").write_text("- Metric: Euclidean (L2). Split 180/20.\n")
    return images.reshape(n, -1).astype(np.float32), labels


def test_mnist_style_folder(tmp_path, rng):
    X, y = write_mnist_like(tmp_path / "mnist", rng)
    data = datasets.load_path(tmp_path / "mnist")
    assert data["metric"] == "euclidean"
    np.testing.assert_array_equal(data["base"], X[:180])
    np.testing.assert_array_equal(data["queries"], X[180:])
    np.testing.assert_array_equal(data["y_queries"], y[180:])
    # Integer pixels have exact ties: the tie rule (smaller index) must hold.
    np.testing.assert_array_equal(data["gt"], ref_ids(X[:180], X[180:], 100, "sqeuclidean"))
    single = datasets.load_path(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(single["gt"], data["gt"])


def test_readme_metric_and_override(tmp_path, rng):
    base = rng.standard_normal((100, 8)).astype(np.float32)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "queries.npy", queries)
    shipped = ref_ids(base, queries, 10, "cosine")
    np.save(tmp_path / "gt_top10.npy", shipped)
    (tmp_path / "README.md").write_text("Embeddings. Metric: **cosine** (unit length).\n")
    data = datasets.load_path(tmp_path)
    assert data["metric"] == "cosine" and data["gt_source"] == "file"
    # --metric euclidean: the shipped cosine ground truth no longer applies.
    data = datasets.load_path(tmp_path, "euclidean")
    assert data["metric"] == "euclidean" and data["gt_source"] == "computed"
    np.testing.assert_array_equal(data["gt"], ref_ids(base, queries, 100, "sqeuclidean"))


def test_unknown_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.load_path(tmp_path / "missing.fvecs")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="format"):
        datasets.load_path(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="metric"):
        datasets.normalise_metric("hamming")


# --- ground truth and recall ------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine", "ip"])
@pytest.mark.parametrize("blocks", ["one block", "many blocks"])
def test_exact_knn_matches_reference(rng, monkeypatch, metric, blocks):
    if blocks == "many blocks":
        monkeypatch.setattr(datasets, "BLOCK_ELEMENTS", 64 * 20)  # 20-row base blocks
    # Small integers: many exact ties, which must go to the smaller index.
    base = rng.integers(-2, 3, (157, 5)).astype(np.float32)
    queries = rng.integers(-2, 3, (23, 5)).astype(np.float32)
    k = 12
    got = datasets.exact_knn(base, queries, k, metric)
    if metric in ("cosine", "ip"):
        # Compare distances (cosine of integer vectors is not exact in floating point).
        D = reference.cdist(queries, base, metric)
        np.testing.assert_allclose(
            np.take_along_axis(D, got, 1), np.sort(D, axis=1)[:, :k], atol=1e-12
        )
    else:
        np.testing.assert_array_equal(got, ref_ids(base, queries, k, metric))


def test_recall_hand_made():
    gt = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert datasets.recall_at_k(gt, gt, 4) == 1.0
    assert datasets.recall_at_k(gt[:, ::-1], gt, 4) == 1.0  # order does not matter
    found = np.array([[0, 1, 9, 9], [7, 6, 5, 4]])  # 2/4 (duplicate 9 counts once), 4/4
    assert datasets.recall_at_k(found, gt, 4) == pytest.approx(6 / 8)
    found = np.array([[0, 0, 0, 0], [4, -1, -1, -1]])  # repeats and padding never count
    assert datasets.recall_at_k(found, gt, 4) == pytest.approx(2 / 8)
    # k smaller than the columns: only the first k of each side.
    assert datasets.recall_at_k(np.array([[1, 0, 3], [5, 9, 4]]), gt, 2) == pytest.approx(3 / 4)
    assert datasets.recall_at_k(np.array([[3], [4]]), gt, 1) == pytest.approx(1 / 2)


@pytest.mark.parametrize(
    ("found", "gt", "k"),
    [
        (np.zeros((2, 3)), np.zeros((3, 3)), 3),
        (np.zeros((2, 2)), np.zeros((2, 3)), 3),
        (np.zeros((2, 3)), np.zeros((2, 3)), 0),
        (np.zeros(3), np.zeros(3), 1),
    ],
)
def test_recall_rejects_bad_shapes(found, gt, k):
    with pytest.raises(ValueError):
        datasets.recall_at_k(found, gt, k)


def test_recall_against_python_sets(rng):
    gt = np.stack([rng.permutation(50)[:10] for _ in range(40)])
    found = rng.integers(-1, 50, (40, 10))
    pairs = zip(found, gt, strict=True)
    expected = np.mean([len({f for f in fr if f >= 0} & set(g)) / 10 for fr, g in pairs])
    assert datasets.recall_at_k(found, gt, 10) == pytest.approx(expected)


# --- named datasets ---------------------------------------------------------------------------


def test_embedded_datasets_are_deterministic():
    a = datasets.load_dataset("clustered-2000x8")
    datasets.load_dataset.cache_clear()
    b = datasets.load_dataset("clustered-2000x8")
    np.testing.assert_array_equal(a["base"], b["base"])
    assert a["base"].shape == (2000, 8) and a["queries"].shape == (200, 8)
    np.testing.assert_array_equal(
        a["gt"][:5, :10], ref_ids(a["base"], a["queries"][:5], 10, "sqeuclidean")
    )
    digits = datasets.load_dataset("digits")
    assert digits["base"].shape == (1600, 64) and len(digits["y_queries"]) == 197
    with pytest.raises(KeyError):
        datasets.load_dataset("nonsense")


def test_user_dataset_from_environment(tmp_path, rng, monkeypatch):
    X = rng.standard_normal((400, 6)).astype(np.float32)
    np.save(tmp_path / "u.npy", X)
    monkeypatch.setenv("PYSIM_BENCH_DATASET", str(tmp_path / "u.npy"))
    monkeypatch.setenv("PYSIM_BENCH_METRIC", "cosine")
    data = datasets.load_dataset("user")
    assert data["metric"] == "cosine" and data["name"] == "u.npy"
    assert data["queries"].shape == (40, 6)


# --- real data kept in the repository (tests/data) ----------------------------------------------


def test_mnist_folder_split_and_ground_truth():
    data = datasets.load_path(repo_data("mnist"))
    assert data["base"].shape == (9000, 784) and data["queries"].shape == (1000, 784)
    assert data["metric"] == "euclidean" and data["gt_source"] == "file"
    np.testing.assert_array_equal(
        datasets.exact_knn(data["base"], data["queries"][:50], 100, "euclidean"), data["gt"][:50]
    )


def test_minilm_folder_cosine():
    data = datasets.load_path(repo_data("minilm-2k"))
    assert data["metric"] == "cosine" and data["gt_source"] == "file"
    assert data["base"].shape == (2000, 384)
    found = datasets.exact_knn(data["base"], data["queries"][:50], 10, "cosine")
    assert datasets.recall_at_k(found, data["gt"][:50], 10) == 1.0


# --- report -----------------------------------------------------------------------------------


def test_report_from_pytest_benchmark_json(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the optional matplotlib")

    def bench(group, contender, median, **extra):
        return {
            "group": group,
            "name": f"test[{contender}]",
            "stats": {"median": median, "min": median, "iqr": 0.0, "rounds": 3},
            "extra_info": {"contender": contender, **extra},
        }

    raw = {
        "benchmarks": [
            bench("cdist 10x10x4 sqeuclidean", "pysim", 0.01, gflops=2.0, m=10),
            bench("cdist 10x10x4 sqeuclidean", "numpy", 0.02, gflops=1.0, m=10),
            *[
                bench("hnsw toy", c, 1.0 / q, dataset="toy", recall=r, qps=q, params=f"ef={q}")
                for c, pts in {
                    "pysim": [(0.9, 900.0), (0.99, 400.0)],
                    "hnswlib": [(0.9, 600.0), (0.97, 300.0)],
                }.items()
                for r, q in pts
            ],
        ]
    }
    info = report.write_part("toy", raw, {"command": "test", "machine": {"cpu": "cpu"}}, tmp_path)
    md = info["md_path"].read_text()
    assert "| cdist 10x10x4 sqeuclidean (GFLOP/s) | 2.00 | 1.00 | 2.00× |" in md
    assert "| toy | hnswlib | 0.970 | 600 (1.50×) | 300 (1.33×) | — |" in md  # pysim: 900, 400
    assert {p.name for p in info["pngs"]} == {"toy-speedup.png", "toy-toy-recall-qps.png"}
    doc = json.loads(info["json_path"].read_text())
    assert len(doc["records"]) == 6
    assert report.pareto([(0.5, 10.0), (0.6, 5.0), (0.4, 8.0), (0.6, 7.0)]) == [
        (0.5, 10.0),
        (0.6, 7.0),
    ]


def test_gzip_idx_is_really_gzipped(tmp_path):
    datasets.write_idx(tmp_path / "x.gz", np.arange(6, dtype=np.uint8).reshape(2, 3))
    with gzip.open(tmp_path / "x.gz", "rb") as f:
        assert f.read(4) == b"\x00\x00\x08\x02"


# --- the driver, end to end on a toy part ----------------------------------------------------

TOY_PART = """
import numpy as np
import pytest
from _common import ann_datasets, dataset, peer, record, recall_at_k


@pytest.mark.parametrize("contender", ["pysim", "numpy", "notinstalled"])
def test_toy(benchmark, contender):
    benchmark.group = "toy 8x8"
    if contender == "notinstalled":
        peer("a_module_that_does_not_exist")
    X = np.ones((8, 8), np.float32)
    benchmark.pedantic(np.dot, args=(X, X), rounds=2, iterations=1)
    record(benchmark, contender=contender, gflops=1.0 if contender == "pysim" else 0.5)


@pytest.mark.parametrize("ef", [1, 4])
@pytest.mark.parametrize("name", ann_datasets(["clustered-500x4"]))
def test_toy_search(benchmark, name, ef):
    d = dataset(name)
    benchmark.group = f"search {d['name']}"
    found = d["gt"][:, :10].copy()
    found[:, ef:] = -1
    benchmark.pedantic(lambda: None, rounds=2, iterations=1)
    record(benchmark, contender="pysim", dataset=d["name"], recall=recall_at_k(found, d["gt"], 10),
           qps=1000.0 * ef)
"""


def test_driver_end_to_end(tmp_path, monkeypatch, capsys):
    import run

    (tmp_path / "bench_toy.py").write_text(TOY_PART)
    monkeypatch.setitem(run.PARTS, "toy", ([str(tmp_path / "bench_toy.py")], "a toy part"))
    monkeypatch.setitem(run.PARTS, "ghost", (["bench_ghost_missing.py"], "never written"))
    out = tmp_path / "results"
    # --blas-env keep: tests never change the BLAS environment, not even for a child.
    code = run.main(
        [
            "--parts",
            "toy,ghost",
            "--out",
            str(out),
            "--blas-env",
            "keep",
            "--quiet",
            "--repeats",
            "2",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "skipped part 'ghost'" in printed and "does not exist yet" in printed
    assert "a_module_that_does_not_exist not installed" in printed
    md = (out / "toy.md").read_text()
    assert "| toy 8x8 (GFLOP/s) | 1.00 | 0.500 | 2.00× |" in md
    doc = json.loads((out / "toy.json").read_text())
    assert doc["versions"]["numpy"] and doc["machine"]["cores"] >= 1
    assert isinstance(doc["threadpool_info"], list) and doc["simd_info"]["isa"]
    assert len(doc["records"]) == 4
    # Plots need matplotlib (the bench extra); without it the tables are still written.
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (out / "toy-clustered-500x4-recall-qps.png").is_file() == has_matplotlib
    assert "ghost" in (out / "summary.md").read_text()
    assert list((out / "cache").glob("gt-clustered-500x4-*.npy"))
