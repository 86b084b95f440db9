"""Accuracy beside the authors' code on the same protocol (the README "Fidelity" table).

Rows come from two places: the reference's own result files (`<log_dir>/results-acc/pt.yaml`, one
folder per method, written by `benchmarks/reference_proxy.sh`) and evaluated dfcil output
directories (`metrics.json` + `eval/<method>/accuracy_matrix.json`). A cell passes when the
reference lies within max(3 points, 2 std) of our mean over training seeds at the same class order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dfcil_core import io
from dfcil_core.errors import DfcilError
from dfcil_core.metrics import AccuracyMatrix

COLUMNS = ["source", "method", "seed", "train_seed", "task1_acc", "old_acc", "new_acc", "a_n"]
METRICS = ["task1_acc", "a_n", "old_acc", "new_acc"]
MIN_POINTS, K_STD = 3.0, 2.0


def reference_rows(log_root: Path) -> pd.DataFrame:
    """One row per (method, class-order seed) from the reference's `results-acc/pt.yaml` files.

    pt.yaml's history[j][i][r] is the accuracy (%) on task j+1 after task i+1 in trial r; all-NaN
    trials are placeholders and give no row.
    """
    rows = []
    for pt in sorted(log_root.glob("*/results-acc/pt.yaml")):
        method = pt.parent.parent.name
        hist = np.asarray(yaml.safe_load(pt.read_text())["history"], dtype=float)
        last = hist.shape[0] - 1
        for r in range(hist.shape[2]):
            a = hist[:, :, r]
            if np.isnan(a).all():  # a placeholder trial (reference_proxy.sh started at a later seed)
                continue
            old = float(a[:last, last].mean()) if last > 0 else float("nan")
            rows.append({"source": "reference", "method": method, "seed": r, "train_seed": r,
                         "task1_acc": float(a[0, 0]), "old_acc": old, "new_acc": float(a[last, last]),
                         "a_n": float(a[: last + 1, last].mean())})
    return pd.DataFrame(rows, columns=COLUMNS)


def dfcil_rows(out_dirs: list[Path]) -> pd.DataFrame:
    """One row per (output directory, method) of evaluated dfcil runs. Methods evaluated only at task 1
    (`dfcil evaluate --first-task`, eval/first_task.json) and absent from metrics.json give their task-1
    accuracy, the rest NaN (a run may have finished some methods and stopped others after task 1)."""
    rows = []
    for out in out_dirs:
        metrics_file, first_task = out / "metrics.json", out / "eval" / "first_task.json"
        if not metrics_file.is_file() and not first_task.is_file():
            raise DfcilError(f"{out}: no metrics.json (evaluate the run first, or `dfcil evaluate --first-task`)")
        done: set[str] = set()
        if metrics_file.is_file():
            doc = io.read_json(metrics_file)
            train_seed = doc.get("train_seed", doc["seed"])
            for method, summary in doc["methods"].items():
                a = AccuracyMatrix.from_dict(io.read_json(out / "eval" / method / "accuracy_matrix.json"))
                rows.append({"source": "dfcil", "method": method, "seed": doc["seed"], "train_seed": train_seed,
                             "task1_acc": float(a.values[0, 0]), "old_acc": summary["old_acc"],
                             "new_acc": summary["new_acc"], "a_n": summary["a_n"]})
                done.add(method)
        if first_task.is_file():
            doc = io.read_json(first_task)
            rows += [{"source": "dfcil", "method": m, "seed": doc["seed"], "train_seed": doc["train_seed"],
                      "task1_acc": acc, "old_acc": np.nan, "new_acc": np.nan, "a_n": np.nan}
                     for m, acc in doc["task1_acc"].items() if m not in done]
    return pd.DataFrame(rows, columns=COLUMNS)


def compare(ours: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Per (method, class-order seed) and metric: our mean ± std over training seeds, the reference's
    value and whether it lies within max(3 points, 2 std) of our mean."""
    out = []
    for (method, seed), g in ours.groupby(["method", "seed"], sort=True):
        ref = reference[(reference.method == method) & (reference.seed == seed)]
        for metric in METRICS:
            vals = g[metric].to_numpy(float)
            vals = vals[~np.isnan(vals)]  # runs evaluated at task 1 only have no later cells
            if len(vals) == 0:
                continue
            mean = float(vals.mean())
            std = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
            band = max(MIN_POINTS, K_STD * std) if len(vals) > 1 else MIN_POINTS
            ref_val = float(ref[metric].iloc[0]) if len(ref) else float("nan")
            passed = bool(abs(ref_val - mean) <= band) if len(ref) else None
            out.append({"method": method, "seed": int(seed), "metric": metric, "runs": len(vals), "ours_mean": mean,
                        "ours_std": std, "reference": ref_val, "band": band, "pass": passed})
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame) -> str:
    """The README table: one row per (method, seed), each metric as `ours (± std) / reference`; `runs`
    counts our runs behind the task-1 cell and behind the later cells (a run may stop after task 1)."""
    lines = ["| method | class-order seed | runs (task 1 / all tasks) | "
             + " | ".join(f"{m}: ours / ref" for m in METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]
    for (method, seed), g in table.groupby(["method", "seed"], sort=True):
        cells = []
        for metric in METRICS:
            if not (g.metric == metric).any():
                cells.append("not run")
                continue
            r = g[g.metric == metric].iloc[0]
            std = "" if np.isnan(r.ours_std) else f" ± {r.ours_std:.1f}"
            ref = "not run" if np.isnan(r.reference) else f"{r.reference:.1f}"
            mark = "" if r["pass"] is None else (" ✓" if r["pass"] else " ✗")
            cells.append(f"{r.ours_mean:.1f}{std} / {ref}{mark}")
        runs = [int(g[g.metric == m].runs.max()) if (g.metric == m).any() else 0 for m in ("task1_acc", "a_n")]
        lines.append(f"| {method} | {seed} | {runs[0]} / {runs[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
