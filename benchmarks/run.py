"""Run pysim's benchmark suite: one command, a progress bar, tables, JSON and plots.

    python benchmarks/run.py                       # every part, embedded data, < 10 min
    python benchmarks/run.py --parts kernels --threads 2 --repeats 7
    python benchmarks/run.py --full                # the per-issue workloads, no time limit
    python benchmarks/run.py --dataset ~/sift/ --metric euclidean   # your data (ANN parts)

pytest-benchmark stays the timing engine (``pytest benchmarks/ --benchmark-only`` works on its
own); this driver runs it once per part, in a child process, and turns its JSON into
``benchmarks/results/<part>.md``, ``<part>.json``, PNG plots and ``summary.md`` (see
``benchmarks/README.md``). Each part runs in its own process so that a crash or a leak stays in
that part, and so that the BLAS environment can be set for the benchmark process alone.

The BLAS environment: this machine (and others like it) exports ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` because older OpenBLAS builds mis-detect its CPU. They slow a current
numpy, which is pysim's main yardstick, so for the benchmark process only (never for tests or
CI) the driver, by default (``--blas-env auto``), asks a probe process what kernel the current
numpy's OpenBLAS picks with both unset and then pins every OpenBLAS in the benchmark process to
that kernel, with ``OPENBLAS_L2_SIZE`` unset. Pinning rather than just unsetting matters:
faiss-cpu bundles an old OpenBLAS that, left to detect on its own, falls back to a pre-AVX
kernel and would make faiss look several times slower than it is. ``--blas-env unset``
unsets both (the literal advice), ``--blas-env keep`` leaves them. What threadpoolctl reports
inside the benchmark process is recorded in every result file; every contender's output is
still checked against a float64 reference, so a BLAS kernel that computes wrongly fails.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata as md
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: Part name -> benchmark modules (in benchmarks/), and what each part measures.
PARTS: dict[str, tuple[list[str], str]] = {
    "kernels": (
        ["bench_kernels.py"],
        "cdist/dot/mahalanobis kernels vs numpy, scipy, "
        "scikit-learn, faiss, simsimd; ISA speed-ups; read bandwidth",
    ),
    "exact": (
        ["bench_bruteforce.py", "bench_kdtree.py"],
        "exact k-NN: brute force and KD-tree vs faiss, scikit-learn, scipy, pykdtree",
    ),
    "hnsw": (["bench_hnsw.py"], "HNSW recall/queries-per-second sweep vs hnswlib, faiss, usearch"),
    "quantized": (
        ["bench_quantized.py"],
        "quantised graph search vs HNSW peers, pynndescent, scann",
    ),
    "metric": (
        ["bench_metric_learning.py"],
        "metric learning fit time and 3-NN accuracy vs scikit-learn NCA and metric-learn",
    ),
    "classifier": (["bench_classifier.py"], "KNeighborsClassifier fit+predict vs scikit-learn"),
    "recommend": (
        ["bench_recommend.py"],
        "MovieLens-small recommenders (ItemKNN, EASE) vs implicit and popularity",
    ),
    "distributed": (
        ["bench_distributed.py"],
        "ShardedIndex on a LocalCluster (1 and 2 workers) vs one HNSWIndex and per-part hnswlib",
    ),
}
#: Typical seconds of each part's quick run on a 2-core machine (the estimate of what remains
#: is these, scaled by how the parts so far compared with theirs); parts not listed: 30 s.
QUICK_SECONDS: dict[str, float] = {
    "kernels": 75,
    "exact": 76,
    "hnsw": 52,
    "quantized": 68,
    "metric": 48,
    "classifier": 5,
    "recommend": 41,
    "distributed": 15,
}
#: Parts that can run on a user's dataset (--dataset).
DATASET_PARTS = ["exact", "hnsw", "quantized"]
#: Distributions whose versions are recorded with every result.
LIBRARIES = [
    "pysim",
    "numpy",
    "scipy",
    "scikit-learn",
    "faiss-cpu",
    "simsimd",
    "hnswlib",
    "usearch",
    "pykdtree",
    "metric-learn",
    "implicit",
    "pynndescent",
    "scann",
    "threadpoolctl",
    "pytest",
    "pytest-benchmark",
    "matplotlib",
    "tqdm",
    "h5py",
    "dask",
    "distributed",
]
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
QUICK_BUDGET_S = 600


# --------------------------------------------------------------------------------------------
# Machine and environment
# --------------------------------------------------------------------------------------------


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
        elif not line.strip() and out:
            break
    return out


def machine_info() -> dict[str, Any]:
    """CPU model, usable cores, memory, OS and the CPU's SIMD feature flags."""
    info = _cpuinfo()
    flags = (info.get("flags") or info.get("Features") or "").split()
    simd = sorted(
        f
        for f in flags
        if f.startswith(
            ("sse", "ssse", "avx", "fma", "f16c", "amx", "asimd", "sve", "neon", "bf16", "vnni")
        )
    )
    cpu = info.get("model name") or info.get("Model") or platform.processor() or "unknown CPU"
    if sys.platform == "darwin":
        try:
            cpu = (
                subprocess.run(
                    ["sysctl", "-n", "machdep.cpu.brand_string"],
                    text=True,
                    capture_output=True,
                    check=False,
                ).stdout.strip()
                or cpu
            )
        except OSError:
            pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": cores,
        "memory_gb": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "simd_flags": simd,
    }


def versions() -> dict[str, str | None]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = md.version(lib)
        except md.PackageNotFoundError:
            out[lib] = None
    return out


def _probe_numpy_blas(env: dict[str, str]) -> list[dict[str, Any]]:
    code = (
        "import json, numpy\nfrom threadpoolctl import threadpool_info\n"
        "print(json.dumps(threadpool_info()))"
    )
    try:
        res = subprocess.run(
            [sys.executable, "-P", "-c", code],
            env=env,
            text=True,
            capture_output=True,
            timeout=120,
            check=True,
        )
        return json.loads(res.stdout)
    except (subprocess.SubprocessError, json.JSONDecodeError, OSError):
        return []


def preflight() -> str | None:
    """Why the benchmark process could not run, checked in a child like it (or None)."""
    code = "import pysim, pytest_benchmark, numpy"
    res = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    if res.returncode == 0:
        return None
    last = (res.stderr.strip().splitlines() or ["?"])[-1]
    return (
        f"{sys.executable} cannot import pysim and pytest-benchmark ({last}).\n"
        'Install them first: pip install ".[bench]" (from the repository root).'
    )


def blas_environment(mode: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The benchmark process's environment and a record of what was done to BLAS."""
    env = dict(os.environ)
    parent = {k: os.environ.get(k) for k in BLAS_VARS}
    record: dict[str, Any] = {"mode": mode, "parent": parent}
    if mode == "keep" or not any(parent.values()):
        record["benchmark_process"] = parent
        return env, record
    for k in BLAS_VARS:
        env.pop(k, None)
    if mode == "auto":
        numpy_pools = [
            p
            for p in _probe_numpy_blas(env)
            if p.get("internal_api") == "openblas" and "numpy" in p.get("filepath", "")
        ]
        core = numpy_pools[0].get("architecture") if numpy_pools else None
        record["numpy_autodetected_core"] = core
        if core:
            env["OPENBLAS_CORETYPE"] = core
    record["benchmark_process"] = {k: env.get(k) for k in BLAS_VARS}
    return env, record


def blas_summary(pools: Any) -> str:
    if not isinstance(pools, list):
        return str(pools)
    items = []
    for p in pools:
        if p.get("user_api") != "blas":
            continue
        lib = Path(p.get("filepath", "")).parent.name.replace(".libs", "")
        items.append(
            f"{lib}: {p.get('internal_api')} {p.get('version')} "
            f"core={p.get('architecture')} threads={p.get('num_threads')}"
        )
    return "; ".join(items)


# --------------------------------------------------------------------------------------------
# Running one part
# --------------------------------------------------------------------------------------------


class Progress:
    """A tqdm bar fed from the child's progress file (plain lines without tqdm)."""

    def __init__(self, part: str, quiet: bool):
        self.part, self.quiet, self.bar, self.done = part, quiet, None, 0
        try:
            from tqdm import tqdm

            self._tqdm = tqdm
        except ImportError:
            self._tqdm = None

    def collected(self, n: int) -> None:
        if self._tqdm is not None and not self.quiet:
            self.bar = self._tqdm(
                total=n, desc=f"{self.part:>10}", unit="bench", dynamic_ncols=True, leave=True
            )
        elif not self.quiet:
            print(f"[{self.part}] {n} benchmarks", flush=True)

    def start(self, nodeid: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(nodeid.split("::")[-1][:48], refresh=True)

    def finished(self, nodeid: str, outcome: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif not self.quiet:
            print(f"[{self.part}] {self.done} {outcome:7} {nodeid.split('::')[-1]}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_part(
    part: str, modules: list[Path], env: dict[str, str], args, raw_path: Path, log_path: Path
) -> dict[str, Any]:
    """Run pytest-benchmark on the part's modules; return events and the exit code."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        progress_path = Path(f.name)
    child_env = dict(env)
    child_env["PYSIM_BENCH_PROGRESS"] = str(progress_path)
    child_env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    # -P: the repository root must not shadow the installed pysim (the source tree has no
    # compiled core unless it is an editable install).
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "pytest",
        *map(str, modules),
        "--benchmark-only",
        f"--benchmark-json={raw_path}",
        "-p",
        "_progress",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rs",
        "--benchmark-columns=median,rounds",
        "--benchmark-sort=name",
    ]
    if args.repeats:
        cmd.append(f"--benchmark-min-rounds={args.repeats}")
    if args.select:
        cmd += ["-k", args.select]
    cmd += args.pytest_args
    events: list[dict[str, Any]] = []
    bar = Progress(part, args.quiet)
    t0 = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + shlex.join(cmd) + "\n\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=child_env, stdout=log, stderr=subprocess.STDOUT)
        pos = 0
        try:
            while True:
                finished = proc.poll() is not None
                with open(progress_path, encoding="utf-8") as pf:
                    pf.seek(pos)
                    chunk = pf.read()
                # Only whole lines: a line being written is read on the next pass.
                complete = chunk[: chunk.rfind("\n") + 1]
                pos += len(complete.encode("utf-8"))
                for line in complete.splitlines():
                    ev = json.loads(line)
                    events.append(ev)
                    if ev["event"] == "collected":
                        bar.collected(ev["n"])
                    elif ev["event"] == "start":
                        bar.start(ev["nodeid"])
                    elif ev["event"] == "done":
                        bar.finished(ev["nodeid"], ev["outcome"])
                if finished:
                    break
                time.sleep(0.2)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        finally:
            bar.close()
            progress_path.unlink(missing_ok=True)
    return {
        "returncode": proc.returncode,
        "events": events,
        "seconds": time.time() - t0,
        "command": shlex.join(cmd),
    }


def summarise_events(part: str, events: list[dict[str, Any]], log_path: Path) -> list[str]:
    """Print skip reasons (deduplicated) and failures; return notes for the report."""
    notes: list[str] = []
    skips: dict[str, int] = {}
    for ev in events:
        if ev["event"] == "done" and ev["outcome"] == "skipped":
            skips[ev.get("reason") or "?"] = skips.get(ev.get("reason") or "?", 0) + 1
        if ev["event"] == "done" and ev["outcome"] == "failed":
            msg = f"FAILED {ev['nodeid']}: {(ev.get('reason') or '').strip().splitlines()[-1:]}"
            print(f"  {msg}")
            notes.append(msg)
        if ev["event"] == "collect_error":
            msg = f"could not collect {ev['nodeid']} (see {log_path})"
            print(f"  {msg}")
            notes.append(msg)
    for reason, count in sorted(skips.items()):
        print(f"  skipped ({count}): {reason}")
        notes.append(f"skipped ({count}): {reason}")
    return notes


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Run pysim's benchmarks against its peers; write tables, JSON and plots.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="parts:\n" + "\n".join(f"  {p:<11}{d}" for p, (_, d) in PARTS.items()),
    )
    ap.add_argument(
        "--parts",
        default=None,
        help="comma-separated parts (default: all; with --dataset: "
        + ",".join(DATASET_PARTS)
        + ")",
    )
    ap.add_argument(
        "--threads",
        default=None,
        help="thread counts, e.g. 2 or 1,2 (default: each part's own, as its issue specifies)",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds per benchmark; the median is reported (default 3 in the "
        "quick run, 5 with --full; the quick run fits a slow contender's rounds in "
        "about a second, at least one)",
    )
    ap.add_argument(
        "--full",
        action="store_true",
        help="the per-issue workloads (MNIST, 1M x 3, 100k x 128, MNIST-PCA50...) "
        "with every round; no time limit",
    )
    ap.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="your data: .fvecs/.bvecs (+ *_query, *_groundtruth.ivecs), .hdf5 "
        "(ann-benchmarks), .npy/.npz, IDX (.gz), or a folder of those",
    )
    ap.add_argument(
        "--metric",
        default=None,
        help="metric for --dataset (sqeuclidean, euclidean, cosine, ip; default: "
        "what the data says, else euclidean)",
    )
    ap.add_argument(
        "--max-queries", type=int, default=None, help="use only the first N queries of --dataset"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="results folder (default benchmarks/results)",
    )
    ap.add_argument(
        "--blas-env",
        choices=["auto", "unset", "keep"],
        default="auto",
        help="what to do with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for the benchmark "
        "process (see the module docstring; default auto)",
    )
    ap.add_argument(
        "-k", dest="select", default=None, help="only benchmarks matching this pytest -k expression"
    )
    ap.add_argument("--list", action="store_true", help="list the parts and exit")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for p, (mods, desc) in PARTS.items():
            have = [m for m in mods if (HERE / m).is_file()]
            print(f"{p:<11}{desc}\n{'':11}modules: {', '.join(have) or '(none yet)'}")
        return 0
    chosen = (
        args.parts.split(",") if args.parts else (DATASET_PARTS if args.dataset else list(PARTS))
    )
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        print(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    t_start = time.time()
    problem = preflight()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    out = args.out.resolve()
    (out / "raw").mkdir(parents=True, exist_ok=True)
    env, blas = blas_environment(args.blas_env)
    env["PYSIM_BENCH_CACHE"] = str(out / "cache")
    env.pop("PYSIM_BENCH_FULL", None)
    if args.full:
        env["PYSIM_BENCH_FULL"] = "1"
    if args.threads:
        env["PYSIM_BENCH_THREADS"] = args.threads
    if args.repeats:
        env["PYSIM_BENCH_ROUNDS"] = str(args.repeats)
    command = "python benchmarks/run.py" + (
        ""
        if argv is None and len(sys.argv) == 1
        else " " + shlex.join(argv if argv is not None else sys.argv[1:])
    )
    notes: list[str] = []
    user_name = None
    if args.dataset:
        env["PYSIM_BENCH_DATASET"] = str(args.dataset.expanduser().resolve())
        if args.metric:
            env["PYSIM_BENCH_METRIC"] = args.metric
        if args.max_queries:
            env["PYSIM_BENCH_MAX_QUERIES"] = str(args.max_queries)
        # Load once here: errors surface before anything runs, and the exact ground truth
        # (when the data has none) is computed and cached outside every timing.
        import datasets

        t0 = time.time()
        try:
            data = datasets.load_path(
                args.dataset, args.metric, max_queries=args.max_queries, cache_dir=out / "cache"
            )
        except (OSError, ValueError, ImportError) as exc:
            print(f"cannot use --dataset {args.dataset}: {exc}", file=sys.stderr)
            return 2
        user_name = data["name"]
        msg = (
            f"dataset {user_name}: base {data['base'].shape}, queries "
            f"{data['queries'].shape}, metric {data['metric']}, ground truth "
            f"{data['gt_source']} ({time.time() - t0:.1f} s)"
        )
        print(msg)
        notes.append(msg)
        del data
    machine = machine_info()
    meta: dict[str, Any] = {
        "command": command,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine,
        "versions": versions(),
        "blas_env": blas,
        "threads_option": args.threads,
        "repeats_option": args.repeats,
        "full": args.full,
        "dataset": str(args.dataset) if args.dataset else None,
        "metric": args.metric,
    }
    print(
        f"pysim benchmarks on {machine['cpu']} ({machine['cores']} cores); parts: "
        f"{', '.join(chosen)}{' (full workloads)' if args.full else ''}"
    )
    print(
        f"BLAS environment for the benchmark process ({args.blas_env}): "
        f"{blas['benchmark_process']} (was {blas['parent']})"
    )
    import report

    written, skipped, failed = [], {}, False
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    spent_actual, spent_typical = 0.0, 0.0
    for number, part in enumerate(chosen, 1):
        mods, description = PARTS[part]
        print(f"[{number}/{len(chosen)}] {part}: {description}")
        present = [HERE / m for m in mods if (HERE / m).is_file()]
        missing = [m for m in mods if not (HERE / m).is_file()]
        if not present:
            why = (
                f"{', '.join('benchmarks/' + m for m in missing)} "
                f"{'does' if len(missing) == 1 else 'do'} not exist yet"
            )
            print(f"skipped part {part!r}: {why}")
            skipped[part] = why
            continue
        part_notes = list(notes)
        if missing:
            msg = (
                f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist "
                "yet (the rest of the part ran)"
            )
            print(f"  note: {msg}")
            part_notes.append(msg)
        raw_path = out / "raw" / f"{part}-{stamp}.json"
        log_path = out / "raw" / f"{part}-{stamp}.log"
        res = run_part(part, present, env, args, raw_path, log_path)
        with open(log_path.with_suffix(".events.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(e, default=str) + "\n" for e in res["events"])
        part_notes += summarise_events(part, res["events"], log_path)
        env_ev = next((e for e in res["events"] if e["event"] == "env"), {})
        pm = dict(
            meta,
            simd_info=env_ev.get("simd_info"),
            threadpool_info=env_ev.get("threadpool_info"),
            blas=blas_summary(env_ev.get("threadpool_info")),
            pytest_command=res["command"],
            seconds=round(res["seconds"], 1),
            notes=part_notes,
        )
        if res["returncode"] not in (0, 1, 5) or not raw_path.is_file():
            why = f"pytest exited with {res['returncode']}; see {log_path}"
            print(f"  part {part!r} produced no results: {why}")
            skipped[part] = why
            failed = True
            continue
        failed |= res["returncode"] == 1
        raw = json.loads(raw_path.read_text())
        info = report.write_part(part, raw, pm, out)
        if user_name and not any(r.get("dataset") in ("user", user_name) for r in info["records"]):
            print(
                f"  note: part {part!r} did not use --dataset (its module does not take "
                "its datasets from _common.ann_datasets())"
            )
        written.append(info)
        meta.update(simd_info=pm["simd_info"], blas=pm["blas"])
        print(
            f"  {part}: {len(info['records'])} results in {res['seconds']:.0f} s -> "
            f"{info['md_path']}" + "".join(f", {p.name}" for p in info["pngs"])
        )
        if not args.full and not args.dataset:
            spent_actual += res["seconds"]
            spent_typical += QUICK_SECONDS.get(part, 30.0)
            left = sum(QUICK_SECONDS.get(p, 30.0) for p in chosen[number:])
            pace = spent_actual / spent_typical if spent_typical else 1.0
            if left:
                print(f"  about {left * pace / 60:.1f} min left ({len(chosen) - number} parts)")
    if written:
        path = report.write_summary(written, meta, out, skipped)
        print(f"summary: {path}")
    total = time.time() - t_start
    print(f"done in {total / 60:.1f} min")
    if not args.full and not args.dataset and total > QUICK_BUDGET_S:
        print(f"warning: the quick run took longer than its {QUICK_BUDGET_S // 60}-minute budget")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
