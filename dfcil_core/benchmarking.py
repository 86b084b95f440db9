"""Regression benchmarking: run profiles into a results table, compare against a baseline.

A results table has one row per (run, method): run_id, time, git_sha, image, device, profile, dataset,
n_tasks, method, seed (class order), train_seed, a_n, omega, forgetting, wall_seconds, throughput and
the device fingerprint. `compare` takes the mean over runs per (profile, dataset, n_tasks, method) and
flags a regression when a metric falls below the baseline mean by more than its tolerance:
max(absolute points, k * baseline std over runs).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from dfcil_core import artifacts, io, plots, tables
from dfcil_core import config as config_mod
from dfcil_core.errors import DfcilError
from dfcil_core.runtime import FINGERPRINT_COLUMNS

KEYS = ["dataset", "n_tasks", "method"]
TABLE_COLUMNS = ["run_id", "time", "git_sha", "image", "device", "profile", "dataset", "n_tasks", "method", "seed",
                 "train_seed", "a_n", "omega", "forgetting", "wall_seconds", "images_per_s", *FINGERPRINT_COLUMNS]
# The nightly gate's protocol (README "Regression benchmarking": its seed spread): the fidelity proxy,
# CIFAR-100 2 tasks x 10 classes with all images, 10 epochs per task, the five methods the fidelity table
# compares with the authors' code but LwF.MC, whose saturating BCE (the reference's) collapses its task 1
# to chance on some seeds (A_N 5.2-21.7 over four; README). The 4-class `default` profile of the main job
# is too small to gate on: one run of a replay method there moves by 6-7 points A_N.
GATE_PROFILE = "fidelity-proxy"
GATE_METHODS = ("base", "lwf", "deepinversion", "abd")
# The thread count is part of the device class (reduction order): pinned, so that a CPU node with more
# cores runs the baseline's numerics (2 threads, the machine the baseline was measured on).
GATE_OVERRIDES = (f"methods=[{','.join(GATE_METHODS)}]", "runtime.threads=2")
GATE_BASELINE = "benchmarks/baseline-fidelity-proxy.csv"
# Every gate run's rows, on any machine, are appended here and committed: `outputs/` is scratch, and a
# device class's band is built from runs of several sessions (about 75 min per seed on a 2-core AVX2
# CPU), so the rows a promote needs must outlive the machine that made them. The baseline's rows are
# a subset of this ledger (tests/test_benchmarking.py).
GATE_LEDGER = "benchmarks/gate-runs.csv"
# The nightly run's training seeds (`train_seed`) at the gate profile's class order (`seed` 0): the
# band is the training noise of one fixed set of tasks; another class order is another benchmark, and
# `compare` refuses to mix them.
GATE_SEEDS = (0, 1, 2)
MIN_BAND_SEEDS = 3  # fewer baseline seeds than this: no std band, the absolute floor only
ACROSS_DEVICES_WIDEN = 2.0  # --across-devices: points and k_std both times this


def gate_run(overrides: list[str]) -> tuple[list[str], list[str]]:
    """The gate's profiles and overrides: its profile, its methods and thread count, then `overrides`."""
    return [GATE_PROFILE], [*GATE_OVERRIDES, *overrides]


@dataclass(frozen=True)
class Tolerance:
    points: float = 2.0  # absolute percentage points
    k_std: float = 2.0  # baseline standard deviations (over seeds)


DEFAULT_TOLERANCES = {"a_n": Tolerance(2.0, 2.0), "omega": Tolerance(3.0, 2.0)}


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip()[:12] or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_profiles(profiles: list[str], out_root: Path, overrides: list[str] | None = None,
                 table: Path | None = None) -> pd.DataFrame:
    """Run each preset (or params file) end to end and append its rows to `table`."""
    from dfcil_core import stages
    from dfcil_core.results_sink import new_run_id

    # The commit whose code this process runs: read before the runs, as a commit landing during an
    # hour-long run would otherwise label its rows.
    sha = _git_sha()
    rows = []
    for profile in profiles:
        path = Path(profile)
        cfg = config_mod.load(path if path.is_file() else None, None if path.is_file() else profile, overrides)
        run_id = new_run_id()
        train = "" if cfg.train_seed is None else f"-train{cfg.train_seed}"
        out = out_root / f"{cfg.name}-seed{cfg.seed}{train}-{run_id}"
        t0 = time.perf_counter()
        doc = stages.run(cfg, out)
        wall = time.perf_counter() - t0
        runs = pd.read_csv(out / "results" / "runs.csv")
        for _, r in runs.iterrows():
            hist = io.load_torch(artifacts.Layout(out).model(r["method"], cfg.data.n_tasks))["history"]
            rows.append({
                "run_id": run_id, "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "git_sha": sha, "image": os.environ.get("DFCIL_IMAGE", "local"), "device": r["device"],
                "profile": cfg.name, "dataset": cfg.data.dataset, "n_tasks": cfg.data.n_tasks, "method": r["method"],
                "seed": cfg.seed, "train_seed": cfg.training_seed,
                "a_n": r["a_n"], "omega": r["omega"], "forgetting": r["forgetting"], "wall_seconds": wall,
                "images_per_s": float(np.mean(hist["images_per_s"])) if hist["images_per_s"] else np.nan,
                **{c: r.get(c, "unknown") for c in FINGERPRINT_COLUMNS},
            })
        del doc
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    if table is not None:
        append_rows(table, df)
    return df


def _read_runs(out: Path) -> pd.DataFrame:
    """`results/runs.csv` of an evaluated output directory."""
    runs_csv = out / "results" / "runs.csv"
    if not runs_csv.is_file():
        raise DfcilError(f"{runs_csv} not found (evaluate {out} first)")
    return pd.read_csv(runs_csv)


def _run_git_sha(out: Path) -> str:
    """The commit that evaluated `out` (metrics.json's code_version `X.Y.Z+sha`), else the checkout's."""
    metrics = out / "metrics.json"
    version = str(io.read_json(metrics).get("code_version", "")) if metrics.is_file() else ""
    return version.split("+", 1)[1] if "+" in version else _git_sha()


def rows_from_outputs(out_dirs: list[Path]) -> pd.DataFrame:
    """Benchmark rows from evaluated output directories (e.g. after `dvc exp run`), one run each."""
    from dfcil_core.results_sink import new_run_id

    rows = []
    for out in out_dirs:
        runs = _read_runs(Path(out))
        runs["train_seed"] = tables.training_seeds(runs)
        run_id = new_run_id()
        sha = _run_git_sha(Path(out))
        for _, r in runs.iterrows():
            rows.append({"run_id": run_id, "time": datetime.now(UTC).isoformat(timespec="seconds"),
                         "git_sha": sha, "image": os.environ.get("DFCIL_IMAGE", "local"), "device": r["device"],
                         "profile": r.get("name", "unknown"), "dataset": r["dataset"], "n_tasks": r["n_tasks"],
                         "method": r["method"], "seed": r["seed"], "train_seed": r["train_seed"],
                         "a_n": r["a_n"], "omega": r["omega"], "forgetting": r["forgetting"],
                         "wall_seconds": r.get("train_seconds", np.nan), "images_per_s": np.nan,
                         **{c: r.get(c, "unknown") for c in FINGERPRINT_COLUMNS}})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def append_rows(table: Path, df: pd.DataFrame) -> None:
    """Append-only: existing rows are kept as they are."""
    old = pd.read_csv(table) if table.is_file() else pd.DataFrame(columns=TABLE_COLUMNS)
    merged = pd.concat([old, df], ignore_index=True) if len(old) else df
    with io.atomic_path(table) as tmp:
        merged.to_csv(tmp, index=False, float_format="%.4f")


def read_table(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DfcilError(f"results table not found: {path}")
    df = pd.read_csv(path)
    missing = [c for c in KEYS + ["a_n"] if c not in df.columns]
    if missing:
        raise DfcilError(f"results table {path}: missing columns {missing}")
    return df


def summarize(df: pd.DataFrame, metrics: list[str], keys: list[str] = KEYS) -> pd.DataFrame:
    agg = df.groupby(keys)[metrics].agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    return agg.reset_index()


def seed_spread(df: pd.DataFrame, metrics: tuple[str, ...] = ("a_n", "omega")) -> pd.DataFrame:
    """Per (profile, device class, method): mean, std (over runs, ddof 1), min, max, the number of
    runs and their seeds as `class-order seed/training seed`."""
    keys = [k for k in ("profile", "device_class") if k in df.columns] + ["method"]
    df = df.assign(_train=tables.training_seeds(df))
    rows = []
    for key, part in df.groupby(keys):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        pairs = sorted(set(zip(part["seed"].astype(int), part["_train"].astype(int))))
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
    if "device_class" not in old.columns or "device_class" not in current.columns:
        return current, 0
    promoted = set(zip(current["profile"].astype(str), tables.device_classes(current)))
    pairs = zip(old["profile"].astype(str), tables.device_classes(old))
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
    return sorted(set(tables.device_classes(df)))


def compare(current: pd.DataFrame, baseline: pd.DataFrame, tolerances: dict[str, Tolerance] | None = None,
            across_devices: bool = False) -> Comparison:
    """Mean over seeds of `current` vs the baseline's band per (dataset, n_tasks, method).

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
    same = baseline[tables.device_classes(baseline) == device]
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
    if "seed" in current.columns and "seed" in same.columns:
        # Another class order is another set of tasks: its numbers say nothing about a regression.
        extra = sorted(set(current["seed"].astype(int)) - set(same["seed"].astype(int)))
        if extra:
            raise DfcilError(f"current runs use class-order seed(s) {extra}, the baseline only "
                             f"{sorted(set(same['seed'].astype(int)))}: other tasks, not like for like; vary "
                             "train_seed at the baseline's class order (or promote a baseline with those seeds)")
    metrics = [m for m in tolerances if m in current.columns and m in same.columns]
    # Tables written before the profile column existed gate on (dataset, n_tasks, method) alone.
    keys = ["profile", *KEYS] if "profile" in current.columns and "profile" in same.columns else KEYS
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
    import base64
    import html

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
    imgs = "".join(f"<img src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}'/>" for p in figures)
    device_lines = (f"<p>current device: {html.escape(comp.current_device)}<br/>baseline device(s): "
                    f"{html.escape('; '.join(comp.baseline_devices))}</p>"
                    + "".join(f"<p><b>note:</b> {html.escape(n)}</p>" for n in comp.notes)
                    + "<p>Band: a metric regresses when its mean over seeds falls below the baseline mean by more "
                      "than allowed_drop = max(points, k x baseline std over seeds).</p>")
    md[1:1] = ["", f"current device: {comp.current_device}; baseline: {'; '.join(comp.baseline_devices)}",
               *[f"note: {n}" for n in comp.notes]]
    io.write_bytes(md_path, "\n".join(md).encode())
    page = (f"<html><head><meta charset='utf-8'><title>dfcil benchmark</title></head><body>"
            f"<h1>dfcil benchmark: {verdict}</h1>{device_lines}"
            f"{comp.table.to_html(index=False, float_format=lambda x: f'{x:.2f}')}"
            f"{imgs}<p>{html.escape(str(len(current)))} current rows, {len(baseline)} baseline rows</p></body></html>")
    html_path = out_dir / "report.html"
    io.write_bytes(html_path, page.encode())
    return {"markdown": md_path, "html": html_path}


# ---------------------------------------------------------------------------------------------
# Numerics snapshot: the `tiny` profile is bit-reproducible on one device class, so CI compares a
# fresh tiny run with a checked-in snapshot for this class; any change to the numbers (accuracies
# or the last training loss, which moves with any change of kernel or RNG use) shows up.

SNAPSHOT_COLUMNS = ["device_class", "profile", "method", "a_n", "omega", "old_acc", "new_acc", "final_loss"]


def snapshot_rows(out: Path) -> pd.DataFrame:
    """One row per method of an evaluated output directory: its accuracies and last epoch's loss."""
    rows = []
    for _, r in _read_runs(Path(out)).iterrows():
        hist = io.load_torch(artifacts.Layout(Path(out)).model(r["method"], int(r["n_tasks"])))["history"]
        rows.append({"device_class": r.get("device_class", "unknown"), "profile": r["name"], "method": r["method"],
                     "a_n": r["a_n"], "omega": r["omega"], "old_acc": r["old_acc"], "new_acc": r["new_acc"],
                     "final_loss": float(hist["loss"][-1]) if hist["loss"] else np.nan})
    return pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)


def _of_class(df: pd.DataFrame, device: str, profile: str) -> pd.Series:
    """Rows of one (device class, profile)."""
    return (df["device_class"].astype(str) == device) & (df["profile"].astype(str) == profile)


def check_snapshot(current: pd.DataFrame, snapshot: pd.DataFrame) -> tuple[str, list[str]]:
    """('match' | 'differs' | 'no snapshot', lines): `current` against the snapshot rows of its device class.

    Accuracies must be equal to the stored 4 decimals, the final loss to 1e-5 relative (what a CSV
    round trip keeps); anything else is a numerics change."""
    classes = sorted(set(current["device_class"].astype(str)))
    if len(classes) != 1:
        raise DfcilError(f"snapshot rows from several device classes: {classes}")
    device = classes[0]
    profile = str(current["profile"].iloc[0])
    mine = snapshot[_of_class(snapshot, device, profile)]
    if mine.empty:
        return "no snapshot", [f"no {profile} snapshot for device class [{device}]; nothing to compare "
                               "(record one with `dfcil benchmark snapshot --update`)"]
    lines = []
    joined = current.merge(mine, on="method", how="outer", suffixes=("", "_snap"), indicator=True)
    for _, r in joined.iterrows():
        if r["_merge"] != "both":
            lines.append(f"{r['method']}: only in the {'current run' if r['_merge'] == 'left_only' else 'snapshot'}")
            continue
        for m in SNAPSHOT_COLUMNS[3:]:
            a, b = float(r[m]), float(r[f"{m}_snap"])
            same = (np.isclose(a, b, rtol=1e-5, atol=0.0) if m == "final_loss" else round(a, 4) == round(b, 4))
            if not same and not (np.isnan(a) and np.isnan(b)):
                lines.append(f"{r['method']} {m}: {a:.6g} (snapshot {b:.6g})")
    return ("differs" if lines else "match"), lines


def read_snapshot(path: Path) -> pd.DataFrame:
    """The snapshot table (empty when the file does not exist yet)."""
    if not Path(path).is_file():
        return pd.DataFrame(columns=SNAPSHOT_COLUMNS)
    df = pd.read_csv(path)
    missing = [c for c in SNAPSHOT_COLUMNS if c not in df.columns]
    if missing:
        raise DfcilError(f"snapshot {path}: missing columns {missing}")
    return df


def update_snapshot(path: Path, current: pd.DataFrame) -> None:
    """Replace this device class's rows for this profile; other classes' rows are kept."""
    old = read_snapshot(path)
    device, profile = str(current["device_class"].iloc[0]), str(current["profile"].iloc[0])
    keep = old[~_of_class(old, device, profile)]
    merged = pd.concat([keep, current], ignore_index=True) if len(keep) else current
    with io.atomic_path(path) as tmp:
        merged.to_csv(tmp, index=False, float_format="%.8g")
