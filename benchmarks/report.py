"""Turn pytest-benchmark JSON into the suite's tables, JSON summaries and plots.

pytest-benchmark measures; this module only reads its JSON (``--benchmark-json``), where every
benchmark carries what the report needs in ``extra_info`` (``contender``, ``metric``/``case``
or ``dataset``, ``threads``, and where relevant ``recall``, ``qps``, ``gflops``, ``gbps``,
``pairs_per_s``). Nothing here knows a particular benchmark module, so a new part gets tables
and plots by recording those fields:

- every part: per benchmark group, a table of contenders ordered by speed, with the speed
  relative to pysim; and, where each group has one row per contender, a one-line-per-group
  summary (rows = groups, columns = contenders) with "pysim / best peer";
- records with ``recall`` and ``qps``: recall@10 against queries per second (log scale), one
  PNG per dataset in the ann-benchmarks style (Pareto front per contender), and a table of the
  best queries/s each contender reaches at recall >= 0.90 / 0.95 / 0.99;
- kernels (``gflops``/``gbps``): speed-up bars per kernel against numpy's BLAS formula, the
  instruction-set speed-ups over scalar, and the one-query bandwidth as a share of the
  read-bandwidth yardstick measured in the same run.

Also usable by hand on any pytest-benchmark JSON:
``python benchmarks/report.py RAW.json [--part NAME] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: extra_info keys shown as table columns, in this order, when present (others follow).
PREFERRED = [
    "dataset",
    "metric",
    "case",
    "threads",
    "params",
    "k",
    "recall",
    "qps",
    "gflops",
    "gbps",
    "accuracy",
    "build_s",
    "memory_mb",
    "rows_timed",
    "max_rel_err",
]
#: extra_info keys never shown as columns (used elsewhere or redundant).
HIDDEN = {"contender", "kernel", "m", "n", "d", "dtype", "pairs_per_s", "bytes", "isa"}
#: Recall levels of the "best queries/s at recall >= r" table.
RECALL_LEVELS = (0.90, 0.95, 0.99)
#: Parts whose benchmark module adds a section the generic tables cannot know (an issue's own
#: target table): part -> module with ``report_section(records, out) -> (markdown, [png])``.
PART_SECTIONS = {
    "quantized": "bench_quantized",
    "recommend": "bench_recommend",
    "metric": "bench_metric_learning",
}


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def load_records(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten pytest-benchmark's JSON: one dict per benchmark with timing and extra_info."""
    out = []
    for b in raw.get("benchmarks", []):
        s = b.get("stats", {})
        rec = {
            "group": b.get("group") or b.get("name", "").split("[")[0],
            "name": b.get("name"),
            "median_s": s.get("median"),
            "min_s": s.get("min"),
            "iqr_s": s.get("iqr"),
            "rounds": s.get("rounds"),
        }
        extra = dict(b.get("extra_info") or {})
        extra.setdefault("contender", _contender_from_name(b.get("name", "")))
        rec.update(extra)
        out.append(rec)
    return out


def _contender_from_name(name: str) -> str:
    m = re.search(r"\[(.*)\]", name)
    return m.group(1) if m else name


def rate(rec: dict[str, Any]) -> float:
    """Work per second, comparable within a group (higher is better)."""
    for key in ("qps", "pairs_per_s", "items_per_s", "gflops", "gbps"):
        v = rec.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    med = rec.get("median_s")
    return 1.0 / med if med else float("nan")


def is_pysim(rec: dict[str, Any]) -> bool:
    return str(rec.get("contender", "")).startswith("pysim")


def by_group(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["group"]].append(r)
    return dict(groups)


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 0.01:
            return f"{v:#.3g}"
        return f"{v:.2g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v).replace("|", "\\|")


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c) for c in row) + " |")
    return "\n".join(lines)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def ratio(x: float, y: float) -> str:
    if not (x > 0 and y > 0) or math.isnan(x) or math.isnan(y):
        return "n/a"
    return f"{x / y:.2f}×"


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def group_table(recs: list[dict[str, Any]]) -> str:
    """All rows of one group, fastest first, with the speed relative to pysim."""
    recs = sorted(recs, key=lambda r: -rate(r))
    keys: list[str] = [k for k in PREFERRED if any(r.get(k) is not None for r in recs)]
    base = {"group", "name", "median_s", "min_s", "iqr_s", "rounds"}
    extra = sorted({k for r in recs for k in r} - base - HIDDEN - set(keys))
    keys += [k for k in extra if any(r.get(k) is not None for r in recs)]
    # Columns that are the same on every row only repeat the group title.
    keys = [
        k
        for k in keys
        if len({json.dumps(r.get(k), default=str) for r in recs}) > 1
        or k in ("recall", "qps", "gflops", "gbps", "accuracy")
    ]
    ref = max((rate(r) for r in recs if is_pysim(r)), default=float("nan"))
    # A speed ratio means something only between rows doing the same work (not along a
    # recall sweep, where the ann table compares at equal recall).
    comparable = len({r["contender"] for r in recs}) == len(recs)
    header = (
        ["contender", "median ms", "rounds"] + keys + (["pysim speed ÷ this"] if comparable else [])
    )
    rows = []
    for r in recs:
        rows.append(
            [r.get("contender"), ms(r.get("median_s")), r.get("rounds")]
            + [r.get(k) for k in keys]
            + ([ratio(ref, rate(r))] if comparable else [])
        )
    return md_table(header, rows)


def _unit(recs: list[dict[str, Any]]) -> tuple[str, str]:
    if all(r.get("gbps") for r in recs):
        return "gbps", "GB/s"
    if all(r.get("gflops") for r in recs):
        return "gflops", "GFLOP/s"
    if all(r.get("qps") for r in recs):
        return "qps", "queries/s"
    return "median_s", "ms"


def pivot_table(groups: dict[str, list[dict[str, Any]]]) -> str | None:
    """Rows = groups, columns = contenders, over the groups with one row per contender."""
    groups = {k: g for k, g in groups.items() if len({r["contender"] for r in g}) == len(g)}
    if not groups:
        return None
    contenders: list[str] = []
    for g in groups.values():
        for r in sorted(g, key=lambda r: (not is_pysim(r), r["contender"])):
            if r["contender"] not in contenders:
                contenders.append(r["contender"])
    if len(contenders) < 2:
        return None
    rows = []
    for name, g in groups.items():
        key, unit = _unit(g)
        cells = {r["contender"]: r for r in g}
        row: list[Any] = [f"{name} ({unit})"]
        for c in contenders:
            r = cells.get(c)
            if r is None:
                row.append("—")
            else:
                v = ms(r.get(key)) if key == "median_s" else r.get(key)
                row.append(fmt(v) + ("*" if r.get("rows_timed") not in (None, r.get("m")) else ""))
        mine = max((rate(r) for r in g if is_pysim(r)), default=float("nan"))
        peers = [rate(r) for r in g if not is_pysim(r) and r["contender"] != "yardstick"]
        row.append(ratio(mine, max(peers)) if peers else "")
        rows.append(row)
    return md_table(["benchmark"] + contenders + ["pysim ÷ best peer"], rows)


def ann_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("recall") is not None and rate(r) > 0]


def ann_table(records: list[dict[str, Any]]) -> str | None:
    """Best queries/s each contender reaches at recall >= 0.90/0.95/0.99, per dataset."""
    recs = ann_records(records)
    if not recs:
        return None
    rows = []
    for ds, contenders in _by_dataset_contender(recs).items():
        best_pysim = {
            lvl: max(
                (
                    rate(r)
                    for c, rs in contenders.items()
                    if c.startswith("pysim")
                    for r in rs
                    if r["recall"] >= lvl
                ),
                default=float("nan"),
            )
            for lvl in RECALL_LEVELS
        }
        for c, rs in sorted(
            contenders.items(), key=lambda kv: (not kv[0].startswith("pysim"), kv[0])
        ):
            row: list[Any] = [ds, c, max(r["recall"] for r in rs)]
            for lvl in RECALL_LEVELS:
                q = max((rate(r) for r in rs if r["recall"] >= lvl), default=None)
                mine = best_pysim[lvl]
                row.append(
                    "—"
                    if q is None
                    else fmt(q)
                    if math.isnan(mine)
                    else f"{fmt(q)} ({ratio(mine, q)})"
                )
            rows.append(row)
    header = ["dataset", "contender", "max recall"] + [
        f"q/s at recall ≥ {lvl:.2f} (pysim ÷ this)" for lvl in RECALL_LEVELS
    ]
    return md_table(header, rows)


def _by_dataset_contender(recs):
    out: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in recs:
        label = str(r.get("contender"))
        if r.get("threads") not in (None, 1) and len({x.get("threads") for x in recs}) > 1:
            label += f" (t={r['threads']})"
        out[str(r.get("dataset", r["group"]))][label].append(r)
    return out


def kernel_extras(records: list[dict[str, Any]]) -> str | None:
    """ISA speed-ups over scalar and one-query bandwidth against the yardstick."""
    parts = []
    isa = [r for r in records if r.get("kernel") == "isa"]
    if isa:
        rows = []
        for g, rs in by_group(isa).items():
            scalar = next((rate(r) for r in rs if r.get("isa") == "scalar"), float("nan"))
            for r in sorted(rs, key=rate):
                rows.append(
                    [
                        g,
                        r.get("isa"),
                        r.get("threads"),
                        ms(r["median_s"]),
                        r.get("gflops"),
                        ratio(rate(r), scalar),
                    ]
                )
        parts.append(
            "**Instruction sets** (pysim forced with `_core._set_isa`):\n\n"
            + md_table(
                ["benchmark", "isa", "threads", "median ms", "GFLOP/s", "speed-up over scalar"],
                rows,
            )
        )
    yard = [r for r in records if r.get("contender") == "yardstick" and r.get("gbps")]
    one = [r for r in records if r.get("gbps") and r.get("m") == 1]
    if yard and one:
        y = max(r["gbps"] for r in yard)
        rows = [
            [r["group"], r["contender"], r.get("threads"), r["gbps"], f"{100 * r['gbps'] / y:.0f}%"]
            for r in sorted(one, key=lambda r: (r["group"], -r["gbps"]))
        ]
        parts.append(
            f"**One query against many rows**: read rate of the big operand against the "
            f"yardstick ({fmt(y)} GB/s, same run):\n\n"
            + md_table(["benchmark", "contender", "threads", "GB/s", "of yardstick"], rows)
        )
    return "\n\n".join(parts) or None


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        print("skipped: plots (matplotlib not installed: pip install matplotlib)")
        return None


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")[:80]


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten in both recall and speed, by increasing recall."""
    front: list[tuple[float, float]] = []
    for rec, q in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or q > front[-1][1]:
            front.append((rec, q))
    return sorted(front)


def plot_recall_qps(records, part: str, out: Path, title_suffix: str = "") -> list[Path]:
    """recall@10 vs queries/s (log), one PNG per dataset, ann-benchmarks style."""
    plt = _pyplot()
    recs = ann_records(records)
    if plt is None or not recs:
        return []
    paths = []
    for ds, contenders in _by_dataset_contender(recs).items():
        fig, ax = plt.subplots(figsize=(7.5, 5))
        for c, rs in sorted(contenders.items()):
            pts = [(r["recall"], rate(r)) for r in rs]
            front = pareto(pts)
            style = dict(lw=2.6, zorder=3) if c.startswith("pysim") else dict(lw=1.4)
            (line,) = ax.plot(
                [p[0] for p in front], [p[1] for p in front], "o-", ms=4, label=c, **style
            )
            ax.scatter(
                [p[0] for p in pts], [p[1] for p in pts], s=8, alpha=0.3, color=line.get_color()
            )
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (log scale)")
        ax.set_title(f"{ds}: recall vs speed ({part}){title_suffix}\nup and right is better")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
        path = out / f"{part}-{_slug(ds)}-recall-qps.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_speed_bars(groups, part: str, out: Path, title_suffix: str = "") -> list[Path]:
    """Per group (kernel x case x metric), each contender's speed relative to a baseline."""
    plt = _pyplot()
    groups = {
        g: rs
        for g, rs in groups.items()
        if len({r["contender"] for r in rs}) == len(rs) > 1
        and not any(r.get("kernel") == "isa" for r in rs)
    }
    if plt is None or not groups:
        return []
    baseline = (
        "numpy"
        if all(any(r["contender"] == "numpy" for r in rs) for rs in groups.values())
        else "pysim"
    )
    contenders = sorted(
        {r["contender"] for rs in groups.values() for r in rs}, key=lambda c: (c != "pysim", c)
    )
    names = list(groups)
    width = 0.8 / len(contenders)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(names) + 2), 5.2))
    for i, c in enumerate(contenders):
        xs, ys = [], []
        for j, g in enumerate(names):
            cell = {r["contender"]: r for r in groups[g]}
            base = next((rate(r) for r in groups[g] if r["contender"] == baseline), None)
            if c in cell and base:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(rate(cell[c]) / base)
        style = dict(edgecolor="black", linewidth=1.2) if c == "pysim" else {}
        ax.bar(xs, ys, width, label=c, **style)
    ax.axhline(1.0, color="grey", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.replace(" ", "\n", 2) for n in names], fontsize=7)
    ax.set_ylabel(f"speed relative to {baseline} (log scale, higher is better)")
    ax.set_title(f"{part}: speed per kernel relative to {baseline}{title_suffix}")
    ax.legend(fontsize=8, ncol=min(len(contenders), 6), loc="upper left")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    path = out / f"{part}-speedup.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_isa(records, part: str, out: Path, title_suffix: str = "") -> list[Path]:
    plt = _pyplot()
    isa = [r for r in records if r.get("kernel") == "isa"]
    if plt is None or not isa:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    groups = by_group(isa)
    isas = sorted(
        {r["isa"] for r in isa}, key=lambda s: [r["isa"] for r in sorted(isa, key=rate)].index(s)
    )
    width = 0.8 / len(groups)
    for i, (g, rs) in enumerate(groups.items()):
        scalar = next((rate(r) for r in rs if r["isa"] == "scalar"), None)
        cell = {r["isa"]: r for r in rs}
        xs = [j - 0.4 + width * (i + 0.5) for j, s in enumerate(isas) if s in cell]
        ys = [rate(cell[s]) / scalar for s in isas if s in cell] if scalar else []
        if ys:
            bars = ax.bar(xs, ys, width, label=g)
            ax.bar_label(bars, labels=[f"{y:.1f}×" for y in ys], fontsize=7)
    ax.set_xticks(range(len(isas)))
    ax.set_xticklabels(isas)
    ax.set_ylabel("speed-up over scalar")
    ax.set_title(f"pysim per instruction set{title_suffix}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"{part}-isa.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


# --------------------------------------------------------------------------------------------
# Part and summary files
# --------------------------------------------------------------------------------------------


def part_section(part: str, records: list[dict[str, Any]], out: Path) -> tuple[str, list[Path]]:
    """The part module's own section (see PART_SECTIONS), or ("", []) when it has none."""
    module = PART_SECTIONS.get(part)
    if module is None:
        return "", []
    try:
        return importlib.import_module(module).report_section(records, out)
    except Exception as exc:  # noqa: BLE001 - the generic report must still be written
        return f"_({module}.report_section failed: {exc.__class__.__name__}: {exc})_", []


def header_md(meta: dict[str, Any]) -> str:
    m = meta.get("machine", {})
    simd = meta.get("simd_info") or {}
    isa = simd.get("isa") if isinstance(simd, dict) else simd
    lines = [
        f"Command: `{meta.get('command', '?')}`  ",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores usable, "
        f"{m.get('memory_gb', '?')} GB, {m.get('platform', '?')}  ",
        f"pysim {meta.get('versions', {}).get('pysim', '?')} running ISA `{isa}`; "
        f"CPU SIMD flags: {', '.join(m.get('simd_flags', [])) or '?'}  ",
    ]
    blas = meta.get("blas")
    if blas:
        lines.append(f"BLAS: {blas}  ")
    lines.append(f"Date: {meta.get('date', '?')}")
    return "\n".join(lines)


def write_part(part: str, raw: dict[str, Any], meta: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write ``<part>.md``, ``<part>.json`` and the PNGs; return what was written."""
    out.mkdir(parents=True, exist_ok=True)
    records = load_records(raw)
    groups = by_group(records)
    suffix = "" if not meta.get("machine") else f"\n{meta['machine'].get('cpu', '')}"
    pngs = (
        plot_speed_bars(groups, part, out, suffix)
        + plot_isa(records, part, out, suffix)
        + plot_recall_qps(records, part, out, suffix)
    )
    sections = [f"## {part}", header_md(meta)]
    if not records:
        sections.append("_No benchmark ran._")
    summary = pivot_table(
        {
            g: rs
            for g, rs in groups.items()
            if not any(r.get("kernel") in ("isa", "read") for r in rs)
        }
    )
    if summary:
        sections.append("Summary (* = timed on fewer query rows, see `rows_timed`):\n\n" + summary)
    extras = kernel_extras(records)
    if extras:
        sections.append(extras)
    own_md, own_pngs = part_section(part, records, out)
    if own_md:
        sections.append(own_md)
    pngs = own_pngs + pngs
    ann = ann_table(records)
    if ann:
        sections.append("Best queries/s at a recall@10 floor:\n\n" + ann)
    for png in pngs:
        sections.append(f"![{png.stem}]({png.name})")
    sections.append("<details><summary>All benchmarks</summary>\n")
    for g, rs in groups.items():
        sections.append(f"**{g}**\n\n" + group_table(rs))
    sections.append("</details>")
    for note in meta.get("notes", []):
        sections.append(f"- {note}")
    md = "\n\n".join(sections) + "\n"
    (out / f"{part}.md").write_text(md, encoding="utf-8")
    doc = {
        "part": part,
        **meta,
        "records": records,
        "pytest_benchmark": {
            k: raw.get(k) for k in ("machine_info", "commit_info", "datetime", "version")
        },
    }
    (out / f"{part}.json").write_text(
        json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8"
    )
    return {
        "part": part,
        "markdown": md,
        "md_path": out / f"{part}.md",
        "json_path": out / f"{part}.json",
        "pngs": pngs,
        "records": records,
    }


def write_summary(
    parts: list[dict[str, Any]], meta: dict[str, Any], out: Path, skipped: dict[str, str]
) -> Path:
    """``summary.md``: every part of this run, ready to paste into a README."""
    sections = ["# pysim benchmark results", header_md(meta)]
    if skipped:
        sections.append(
            "Skipped parts:\n\n" + "\n".join(f"- {p}: {why}" for p, why in skipped.items())
        )
    for p in parts:
        sections.append(p["markdown"].replace("\n## ", "\n### ", 1))
    path = out / "summary.md"
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Tables and plots from pytest-benchmark JSON.")
    ap.add_argument("raw", type=Path, help="a pytest-benchmark --benchmark-json file")
    ap.add_argument("--part", default=None, help="name of the part (default: file stem)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    raw = json.loads(args.raw.read_text())
    meta = {
        "command": f"pytest ... --benchmark-json={args.raw}",
        "date": raw.get("datetime"),
        "machine": {"cpu": (raw.get("machine_info") or {}).get("cpu", {}).get("brand_raw", "?")},
    }
    info = write_part(args.part or args.raw.stem, raw, meta, args.out)
    print(f"wrote {info['md_path']}, {info['json_path']}" + "".join(f", {p}" for p in info["pngs"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
