"""`dfcil tables`: finished runs -> Table 1 / 2 / 3 shaped results beside the paper's values.

Input rows are the `results/runs.csv` rows that `evaluate` writes (one per method and run), read
from output directories, results tables (CSV) or the S3 results sink. They are grouped by dataset,
task count, method and ablation; each cell is the mean ± std (sample std) over class-order seeds,
beside the paper's value, the difference and a flag when |ours - paper| exceeds
max(2 points, 2 x sqrt(std_ours² + std_paper²)). A cell nobody ran says "not run", never a number.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.registry import CORESET_METHOD_KEYS, METHODS
from dfcil_core.lab.paper_values import PAPER_TABLES, TABLE3, PaperCell
from dfcil_core.run.report import figure_html
from dfcil_core.run.results_table import read_runs as read_runs_table

METHOD_ORDER = list(METHODS)
METHOD_NAMES = {k: m.name if m.tables else f"{m.name} (not in the ABD paper)" for k, m in METHODS.items()}
TABLE_TITLES = {"table1": "Table 1 shape (data-free, and DGR)",
                "table2": "Table 2 shape (replay data: a coreset; ABD without one)"}
FLAG_POINTS, FLAG_K = 2.0, 2.0
REQUIRED = ["name", "dataset", "n_tasks", "method", "ablation", "seed", "train_seed", "a_n", "omega"]
LONG_COLUMNS = ["table", "profile", "dataset", "n_tasks", "method", "ablation", "metric", "rows", "runs", "ours_mean",
                "ours_std", "paper_mean", "paper_std", "diff", "flag", "source"]


def read_runs(sources: list[str]) -> pd.DataFrame:
    """runs.csv rows from output directories, CSV files or s3:// result sinks."""
    frames = []
    for src in sources:
        if src.startswith("s3://"):
            from dfcil_core.drivers.results_sink import S3ResultsSink

            frames.append(S3ResultsSink(src).read_table("runs.csv"))
        else:
            frames.append(read_runs_table(src, REQUIRED))
    if not frames:
        raise DfcilError("tables: give at least one output directory, results table or s3:// URL")
    runs = pd.concat(frames, ignore_index=True)
    missing = sorted(set(REQUIRED) - set(runs.columns))
    if missing:
        raise DfcilError(f"tables: input rows lack columns {missing}")
    # One row per (run, method): the same run read twice (directory and sink) counts once; runs that
    # differ only in the training seed are separate runs.
    return runs.drop_duplicates(subset=["name", "dataset", "n_tasks", "method", "ablation", "seed", "train_seed"],
                                keep="last")


def _cell(group: pd.DataFrame, metric: str) -> tuple[int, float, float]:
    vals = group[metric].dropna().to_numpy(float)
    if len(vals) == 0:
        return 0, float("nan"), float("nan")
    return len(vals), float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")


def paper_schedule(profile: str) -> bool:
    """Only the paper's presets (`paper-*`) run the paper's schedule; other profiles get the paper's
    values for orientation, never a flag."""
    return profile.startswith("paper-")


def _long_row(table: str, profile: str, dataset: str, n: int, method: str, ablation: str, metric: str,
              group: pd.DataFrame | None, paper: PaperCell | None) -> dict:
    runs, mean, std = _cell(group, metric) if group is not None else (0, float("nan"), float("nan"))
    p_mean = getattr(paper, metric) if paper else float("nan")
    p_std = getattr(paper, f"{metric}_std") if paper else float("nan")
    diff = mean - p_mean if runs and paper else float("nan")
    band = max(FLAG_POINTS, FLAG_K * float(np.sqrt(np.nan_to_num(std) ** 2 + np.nan_to_num(p_std) ** 2)))
    return {"table": table, "profile": profile, "dataset": dataset, "n_tasks": n, "method": method,
            "ablation": ablation, "metric": metric, "rows": 0 if group is None else len(group),
            "runs": runs, "ours_mean": mean, "ours_std": std,
            "paper_mean": p_mean, "paper_std": p_std, "diff": diff,
            "flag": bool(runs and paper and paper_schedule(profile) and abs(diff) > band),
            "source": paper.source if paper else ""}


def build(runs: pd.DataFrame) -> pd.DataFrame:
    """Long-format rows per profile name and dataset present in `runs`: Table 1 (the data-free
    methods and DGR), Table 2 (the coreset methods beside the upper bound and ABD, when any of them
    ran) over every task split run or published, and Table 3 (ABD ablations, ten tasks)."""
    rows = []
    for (profile, dataset), part in runs.groupby(["name", "dataset"], sort=True):
        paper = PAPER_TABLES.get(dataset, {})
        published = {n for cells in paper.get("table1", {}).values() for n in cells}
        splits = sorted(set(part["n_tasks"].astype(int)) | published)
        full = part[part["ablation"] == "none"]
        ran = set(full["method"])
        t1, t2 = paper.get("table1", {}), paper.get("table2", {})
        tables = [("table1", [m for m in METHOD_ORDER if m not in CORESET_METHOD_KEYS and (m in ran or m in t1)]
                   + sorted(ran - set(METHOD_ORDER)), t1)]
        if ran & set(CORESET_METHOD_KEYS):
            tables.append(("table2", [m for m in METHOD_ORDER if m in t2 or (m in ran and m in CORESET_METHOD_KEYS)], t2))
        for table, methods, values in tables:
            for method in methods:
                for n in splits:
                    g = full[(full["method"] == method) & (full["n_tasks"] == n)]
                    cell = values.get(method, {}).get(n)
                    for metric in ("a_n", "omega"):
                        rows.append(_long_row(table, profile, dataset, n, method, "none", metric,
                                              g if len(g) else None, cell))
        abd = part[part["method"] == "abd"]
        for n in sorted(set(abd["n_tasks"].astype(int)) | ({10} if dataset == "cifar100" else set())):
            ablations = list(TABLE3) + sorted(set(abd["ablation"]) - set(TABLE3))
            for ablation in ablations:
                g = abd[(abd["n_tasks"] == n) & (abd["ablation"] == ablation)]
                cell = TABLE3.get(ablation) if dataset == "cifar100" and n == 10 else None
                for metric in ("a_n", "omega"):
                    rows.append(_long_row("table3", profile, dataset, n, "abd", ablation, metric,
                                          g if len(g) else None, cell))
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def _fmt(mean: float, std: float, runs: int) -> str:
    if not runs:
        return "not run"
    return f"{mean:.1f}" + ("" if np.isnan(std) else f" ± {std:.1f}") + f" (n={runs})"


def _text_cell(r: pd.Series) -> str:
    # Runs without the metric (Ω needs the upper bound's models in the same run) are not "not run".
    ours = "n/a (no upper bound)" if r.rows and not r.runs else _fmt(r.ours_mean, r.ours_std, int(r.runs))
    if np.isnan(r.paper_mean):
        return ours
    paper = f"{r.paper_mean:.1f} ± {r.paper_std:.1f}"
    if not r.runs:
        return f"{ours} / {paper}"
    return f"{ours} / {paper} ({r['diff']:+.1f}){' ⚠' if r.flag else ''}"


def markdown(long: pd.DataFrame) -> str:
    out = []
    for (profile, dataset), part in long.groupby(["profile", "dataset"], sort=True):
        note = ("ours / paper (Δ); ⚠ beyond max(2 points, 2 std)" if paper_schedule(profile) else
                "NOT the paper's schedule: paper values for orientation only, no flags")
        for table, title in TABLE_TITLES.items():
            t = part[part.table == table]
            if t.empty:
                continue
            splits = sorted(set(t.n_tasks))
            if table != "table1":
                out.append("")
            out.append(f"### {title}: profile {profile}, {dataset} ({note})")
            out.append("| method | " + " | ".join(f"{n} tasks A_N | {n} tasks Ω" for n in splits) + " |")
            out.append("|---|" + "---|---|" * len(splits))
            for method in dict.fromkeys(t.method):
                cells = []
                for n in splits:
                    for metric in ("a_n", "omega"):
                        r = t[(t.method == method) & (t.n_tasks == n) & (t.metric == metric)].iloc[0]
                        cells.append(_text_cell(r))
                out.append(f"| {METHOD_NAMES.get(method, method)} | " + " | ".join(cells) + " |")
        t3 = part[part.table == "table3"]
        for n in sorted(set(t3.n_tasks)):
            out.append("")
            out.append(f"### Table 3 shape: ABD ablations, {n} tasks, profile {profile}, {dataset}")
            out.append("| ablated | A_N | Ω |")
            out.append("|---|---|---|")
            sub = t3[t3.n_tasks == n]
            for ablation in dict.fromkeys(sub.ablation):
                a = sub[(sub.ablation == ablation) & (sub.metric == "a_n")].iloc[0]
                o = sub[(sub.ablation == ablation) & (sub.metric == "omega")].iloc[0]
                out.append(f"| {'— (full method)' if ablation == 'none' else ablation} | {_text_cell(a)} | {_text_cell(o)} |")
        out.append("")
    return "\n".join(out)


def write(long: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """tables.md, tables.csv and tables.html (with a bar chart of A_N, ours vs paper, per split)."""
    out = Path(out_dir)
    md = markdown(long)
    paths = {"markdown": out / "tables.md", "csv": out / "tables.csv", "html": out / "tables.html"}
    atomic_io.write_bytes(paths["markdown"], md.encode())
    with atomic_io.atomic_path(paths["csv"]) as tmp:
        long.to_csv(tmp, index=False, float_format="%.4f")
    figures = []
    t1 = long[(long.table == "table1") & (long.metric == "a_n") & (long.runs > 0)]
    for (profile, dataset, n), part in t1.groupby(["profile", "dataset", "n_tasks"], sort=True):
        bars = {METHOD_NAMES.get(r.method, r.method): {"ours": r.ours_mean, **({} if np.isnan(r.paper_mean) else
                                                                                {"paper": r.paper_mean})}
                for r in part.itertuples()}
        png = out / f"a_n_{profile}_{dataset}_{n}tasks.png"
        from dfcil_core.run.eval_plots import grouped_bars

        grouped_bars(bars, png, "A_N (%)", title=f"{profile}, {dataset}, {n} tasks: A_N")
        figures.append(png)
    body = "".join(f"<pre>{html.escape(block)}</pre>" for block in md.split("\n\n"))
    imgs = "".join(figure_html(p, p.name) for p in figures)
    table = long.to_html(index=False, float_format=lambda x: f"{x:.2f}", na_rep="")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>dfcil tables</title></head><body>"
            f"<h1>dfcil: the paper's tables</h1>{body}{imgs}<h2>All cells</h2>{table}</body></html>")
    atomic_io.write_bytes(paths["html"], page.encode())
    return paths


def collect_runs(results_dirs: list[str], out_dir: str) -> int:
    """Concatenate the runs tables of evaluated result directories (or of earlier collections) into
    `out_dir/runs.csv`; returns the row count (a KFP fan-out's collect step)."""
    runs = pd.concat([read_runs_table(d, REQUIRED) for d in results_dirs], ignore_index=True)
    with atomic_io.atomic_path(Path(out_dir) / "runs.csv") as tmp:
        runs.to_csv(tmp, index=False)
    return len(runs)


def tables_step(runs_dir: str, out_dir: str) -> str:
    """`dfcil tables` over a collected runs.csv; returns the HTML page's path."""
    return str(write(build(read_runs([str(Path(runs_dir) / "runs.csv")])), out_dir)["html"])
