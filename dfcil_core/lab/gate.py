"""The regression gate: run profiles into a results table, compare against a baseline.

A results table has one row per (run, method): run_id, time, git_sha, image, device, profile, dataset,
n_tasks, method, seed (class order), train_seed, a_n, omega, forgetting, wall_seconds, throughput and
the device fingerprint. `compare` takes the mean over runs per (profile, dataset, n_tasks, method) and
flags a regression when a metric falls below the baseline mean by more than its tolerance:
max(absolute points, k * baseline std over runs).
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.provenance import FINGERPRINT_COLUMNS, commit_of, git_commit
from dfcil_core.run.artifacts import read_stage_log, stage_name
from dfcil_core.run.report import figure_html
from dfcil_core.run.results_table import check_metrics, read_runs

KEYS = ["profile", "dataset", "n_tasks", "method"]
LEDGER_KEYS = [*KEYS, "seed", "train_seed", "a_n", "device_class"]  # what every ledger row must have
TABLE_COLUMNS = ["run_id", "time", "git_sha", "image", "device", "profile", "dataset", "n_tasks", "method", "seed",
                 "train_seed", "a_n", "omega", "forgetting", "wall_seconds", "images_per_s", *FINGERPRINT_COLUMNS]
MIN_BAND_SEEDS = 3  # fewer baseline seeds than this: no std band, the absolute floor only
ACROSS_DEVICES_WIDEN = 2.0  # --across-devices: points and k_std both times this


@dataclass(frozen=True)
class Tolerance:
    points: float = 2.0  # absolute percentage points
    k_std: float = 2.0  # baseline standard deviations (over seeds)


DEFAULT_TOLERANCES = {"a_n": Tolerance(2.0, 2.0), "omega": Tolerance(3.0, 2.0)}


def run_profiles(profiles: list[str], out_root: Path, overrides: list[str] | None = None,
                 table: Path | None = None) -> pd.DataFrame:
    """Run each preset (or params file) end to end and append its rows to `table`."""
    from dfcil_core.drivers.results_sink import new_run_id
    from dfcil_core.run.sequence import run

    # The commit whose code this process runs: read before the runs, as a commit landing during an
    # hour-long run would otherwise label its rows.
    sha = git_commit()
    frames = []
    for profile in profiles:
        path = Path(profile)
        cfg = config_mod.load(path if path.is_file() else None, None if path.is_file() else profile, overrides)
        run_id = new_run_id()
        train = "" if cfg.train_seed is None else f"-train{cfg.train_seed}"
        out = out_root / f"{cfg.name}-seed{cfg.seed}{train}-{run_id}"
        t0 = time.perf_counter()
        run(cfg, out)
        frames.append(ledger_rows(out, run_id, sha, wall_seconds=time.perf_counter() - t0))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLE_COLUMNS)
    if table is not None:
        append_rows(table, df)
    return df


def ledger_rows(out: Path, run_id: str, sha: str | None = None, wall_seconds: float | None = None) -> pd.DataFrame:
    """The ledger rows of one evaluated output directory, one per method. The commit is `sha`, else
    the one that evaluated `out` (its log record), else the checkout's; the wall time is
    `wall_seconds`, else the method's training seconds; images/s the last task's training rate
    (both from the stages' log records; NaN where the outputs came without them)."""
    runs = read_runs(out)
    if sha is None:
        evaluated = commit_of(str(read_stage_log(out, "evaluate").get("code_version", "")))
        sha = evaluated if evaluated != "unknown" else git_commit()
    rows = []
    for _, r in runs.iterrows():
        n = int(r["n_tasks"])
        logs = [read_stage_log(out, stage_name("train", r["method"], t)) for t in range(1, n + 1)]
        rate = logs[-1].get("images_per_s") or []
        seconds = [log.get("seconds") for log in logs]
        rows.append({
            "run_id": run_id, "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_sha": sha, "image": os.environ.get("DFCIL_IMAGE", "local"), "device": r["device"],
            "profile": r["name"], "dataset": r["dataset"], "n_tasks": n, "method": r["method"],
            "seed": r["seed"], "train_seed": r["train_seed"], "a_n": r["a_n"], "omega": r["omega"],
            "forgetting": r["forgetting"],
            "wall_seconds": wall_seconds if wall_seconds is not None else
            (sum(seconds) if None not in seconds else np.nan),
            "images_per_s": float(np.mean(rate)) if rate else np.nan,
            **{c: r[c] for c in FINGERPRINT_COLUMNS},
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def rows_from_outputs(out_dirs: list[Path]) -> pd.DataFrame:
    """Benchmark rows from evaluated output directories (e.g. after `dvc exp run`), one run each."""
    from dfcil_core.drivers.results_sink import new_run_id

    return pd.concat([ledger_rows(Path(out), new_run_id()) for out in out_dirs], ignore_index=True)


def append_rows(table: Path, df: pd.DataFrame) -> None:
    """Append-only: existing rows are kept as they are."""
    old = pd.read_csv(table) if table.is_file() else pd.DataFrame(columns=TABLE_COLUMNS)
    merged = pd.concat([old, df], ignore_index=True) if len(old) else df
    with atomic_io.atomic_path(table) as tmp:
        merged.to_csv(tmp, index=False, float_format="%.4f")


def read_table(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DfcilError(f"results table not found: {path}")
    df = pd.read_csv(path)
    missing = [c for c in LEDGER_KEYS if c not in df.columns]
    if missing:
        raise DfcilError(f"results table {path}: missing columns {missing}")
    return check_metrics(df, path)


def summarize(df: pd.DataFrame, metrics: list[str], keys: list[str] = KEYS) -> pd.DataFrame:
    agg = df.groupby(keys)[metrics].agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    return agg.reset_index()


def seed_spread(df: pd.DataFrame, metrics: tuple[str, ...] = ("a_n", "omega")) -> pd.DataFrame:
    """Per (profile, device class, method): mean, std (over runs, ddof 1), min, max, the number of
    runs and their seeds as `class-order seed/training seed`."""
    keys = ["profile", "device_class", "method"]
    rows = []
    for key, part in df.groupby(keys):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        pairs = sorted(set(zip(part["seed"].astype(int), part["train_seed"].astype(int))))
        row["runs"] = len(pairs)
        row["seeds"] = " ".join(f"{s}/{t}" for s, t in pairs)
        for m in metrics:
            v = part[m].astype(float)
            row.update({f"{m}_mean": v.mean(), f"{m}_std": v.std(ddof=1) if len(v) > 1 else np.nan,
                        f"{m}_min": v.min(), f"{m}_max": v.max()})
        rows.append(row)
    return pd.DataFrame(rows)


def promote(baseline_path: Path, current: pd.DataFrame, methods: list[str] | None = None) -> tuple[pd.DataFrame, int]:
    """Make `current` (only `methods`, when given) the baseline of its (profile, device class) pairs.

    A baseline file holds one band per device class, so the gate can run on any node that has one:
    promoting on one class replaces that class's rows of the promoted profiles and keeps every other
    class's rows. Returns (the new baseline, how many old rows it kept)."""
    if methods:
        unknown = sorted(set(methods) - set(current["method"].astype(str)))
        if unknown:
            raise DfcilError(f"no rows for method(s) {unknown} in the runs to promote")
        current = current[current["method"].isin(methods)]
    if not baseline_path.exists():
        return current, 0
    old = read_table(baseline_path)
    promoted = set(zip(current["profile"].astype(str), current["device_class"].astype(str)))
    pairs = zip(old["profile"].astype(str), old["device_class"].astype(str))
    keep = old[[pair not in promoted for pair in pairs]]
    return (pd.concat([keep, current], ignore_index=True) if len(keep) else current), len(keep)


@dataclass
class Comparison:
    table: pd.DataFrame  # one row per (key, metric)
    regressions: pd.DataFrame
    notes: list[str]  # what the gate did differently (another device, too few baseline seeds)
    current_device: str = "unknown"
    baseline_devices: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return len(self.regressions) > 0


def _device_classes(df: pd.DataFrame) -> list[str]:
    return sorted(set(df["device_class"].astype(str)))


def compare(current: pd.DataFrame, baseline: pd.DataFrame, tolerances: dict[str, Tolerance] | None = None,
            across_devices: bool = False) -> Comparison:
    """Mean over seeds of `current` vs the baseline's band per (profile, dataset, n_tasks, method).

    Like against like: only baseline rows of the current rows' device class count (CPU ISA, threads,
    GPU, torch: numbers move between them). With none, refuse, unless `across_devices`, which
    compares with every baseline row and a band ACROSS_DEVICES_WIDEN times wider. The band is
    max(points, k x baseline std over seeds); with fewer than MIN_BAND_SEEDS baseline seeds there is
    no std to trust, and the gate says it uses the absolute floor only."""
    tolerances = tolerances or DEFAULT_TOLERANCES
    notes: list[str] = []
    classes = _device_classes(current)
    if len(classes) > 1:
        raise DfcilError(f"current rows come from several device classes ({'; '.join(classes)}); compare one at a time")
    device = classes[0]
    base_classes = _device_classes(baseline)
    same = baseline[baseline["device_class"].astype(str) == device]
    if same.empty:
        if not across_devices:
            raise DfcilError(
                f"baseline measured on [{'; '.join(base_classes)}], this run on [{device}]: not like for like "
                "(kernels, thread count and torch version move the numbers); refusing to gate. Promote a baseline "
                "on this device class, or pass --across-devices for a band "
                f"{ACROSS_DEVICES_WIDEN:g}x wider")
        notes.append(f"across devices: baseline [{'; '.join(base_classes)}] vs current [{device}]; "
                     f"band widened {ACROSS_DEVICES_WIDEN:g}x")
        tolerances = {m: Tolerance(t.points * ACROSS_DEVICES_WIDEN, t.k_std * ACROSS_DEVICES_WIDEN)
                      for m, t in tolerances.items()}
        same = baseline
    # Another class order is another set of tasks: its numbers say nothing about a regression.
    extra = sorted(set(current["seed"].astype(int)) - set(same["seed"].astype(int)))
    if extra:
        raise DfcilError(f"current runs use class-order seed(s) {extra}, the baseline only "
                         f"{sorted(set(same['seed'].astype(int)))}: other tasks, not like for like; vary "
                         "train_seed at the baseline's class order (or promote a baseline with those seeds)")
    metrics = [m for m in tolerances if m in current.columns and m in same.columns]
    keys = KEYS
    cur, base = summarize(current, metrics, keys), summarize(same, metrics, keys)
    joined = cur.merge(base, on=keys, suffixes=("", "_base"), how="left")
    rows = []
    for _, r in joined.iterrows():
        for m in metrics:
            tol = tolerances[m]
            b_mean, b_std, b_n = r[f"{m}_mean_base"], r[f"{m}_std_base"], r[f"{m}_count_base"]
            if pd.isna(r[f"{m}_mean"]):
                continue
            seeds = 0 if pd.isna(b_n) else int(b_n)
            floor_only = seeds < MIN_BAND_SEEDS
            allowed = tol.points if floor_only else max(tol.points, tol.k_std * (0.0 if pd.isna(b_std) else b_std))
            delta = r[f"{m}_mean"] - b_mean if not pd.isna(b_mean) else np.nan
            status = "no baseline" if pd.isna(b_mean) else ("REGRESSION" if delta < -allowed else "ok")
            if floor_only and seeds:
                status += f" (floor only: {seeds} baseline seed{'s' if seeds > 1 else ''})"
                note = (f"{r['method']} ({r['n_tasks']} tasks): the baseline has {seeds} seed(s) < {MIN_BAND_SEEDS}; "
                        "gating on the absolute floor only")
                if note not in notes:
                    notes.append(note)
            rows.append({**{k: r[k] for k in keys}, "metric": m, "current": r[f"{m}_mean"],
                         "baseline": b_mean, "baseline_std": b_std, "baseline_seeds": seeds, "delta": delta,
                         "allowed_drop": allowed, "status": status})
    table = pd.DataFrame(rows)
    regressions = table[table["status"].str.startswith("REGRESSION")] if len(table) else table
    return Comparison(table=table, regressions=regressions, notes=notes, current_device=device,
                      baseline_devices=tuple(base_classes))


def write_reports(comp: Comparison, current: pd.DataFrame, baseline: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Markdown + self-contained HTML (plots embedded) comparison reports."""
    from dfcil_core.run import eval_plots as plots

    out_dir.mkdir(parents=True, exist_ok=True)
    bars = {}
    for _, r in comp.table[comp.table["metric"] == "a_n"].iterrows() if len(comp.table) else []:
        bars[f"{r['method']} ({r['n_tasks']}t)"] = {"baseline": r["baseline"], "current": r["current"]}
    plots.grouped_bars(bars, out_dir / "a_n_bars.png", "A_N (%)", title="A_N: current vs baseline")
    figures = [out_dir / "a_n_bars.png"]
    if "omega" in current.columns and len(comp.table):
        oms = {}
        for _, r in comp.table[comp.table["metric"] == "omega"].iterrows():
            oms[f"{r['method']} ({r['n_tasks']}t)"] = {"baseline": r["baseline"], "current": r["current"]}
        if oms:  # profiles without the upper bound have no Ω
            plots.grouped_bars(oms, out_dir / "omega_bars.png", "Ω (%)", title="Ω: current vs baseline")
            figures.append(out_dir / "omega_bars.png")
    verdict = "REGRESSION" if comp.failed else "OK"
    md = [f"# dfcil benchmark: {verdict}", "", comp.table.to_markdown(index=False, floatfmt=".2f") if len(comp.table) else "",
          ""] + [f"![{p.stem}]({p.name})" for p in figures]
    md_path = out_dir / "report.md"
    imgs = "".join(figure_html(p, p.name) for p in figures)
    device_lines = (f"<p>current device: {html.escape(comp.current_device)}<br/>baseline device(s): "
                    f"{html.escape('; '.join(comp.baseline_devices))}</p>"
                    + "".join(f"<p><b>note:</b> {html.escape(n)}</p>" for n in comp.notes)
                    + "<p>Band: a metric regresses when its mean over seeds falls below the baseline mean by more "
                      "than allowed_drop = max(points, k x baseline std over seeds).</p>")
    md[1:1] = ["", f"current device: {comp.current_device}; baseline: {'; '.join(comp.baseline_devices)}",
               *[f"note: {n}" for n in comp.notes]]
    atomic_io.write_bytes(md_path, "\n".join(md).encode())
    page = (f"<html><head><meta charset='utf-8'><title>dfcil benchmark</title></head><body>"
            f"<h1>dfcil benchmark: {verdict}</h1>{device_lines}"
            f"{comp.table.to_html(index=False, float_format=lambda x: f'{x:.2f}')}"
            f"{imgs}<p>{html.escape(str(len(current)))} current rows, {len(baseline)} baseline rows</p></body></html>")
    html_path = out_dir / "report.html"
    atomic_io.write_bytes(html_path, page.encode())
    return {"markdown": md_path, "html": html_path}
