"""The run's result tables (`results/runs.csv`, `results/tasks.csv`): their one schema, their
writer (the evaluate stage) and their one reader (the gate, the tables, the reference check, the
results sink and the KFP steps all read rows through `read_runs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.provenance import FINGERPRINT_COLUMNS

# One row per (run, method). `seed` is the class order (trial r of the paper), `train_seed` the
# training RNG; accuracies are top-`top_k` (ImageNet: 5); `device` and the fingerprint say which
# machine class computed it.
RUN_COLUMNS = ["name", "dataset", "n_tasks", "method", "ablation", "seed", "train_seed", "top_k", "a_n", "omega",
               "avg_inc_acc", "forgetting", "old_acc", "new_acc", "device", *FINGERPRINT_COLUMNS]
TASK_COLUMNS = ["method", "seed", "train_seed", "task", "acc_seen", "omega_term"]
RUNS_FILE, TASKS_FILE = "runs.csv", "tasks.csv"


def write_tables(results_dir: Path, run_rows: list[dict[str, Any]], task_rows: list[dict[str, Any]]) -> None:
    for name, rows, columns in ((RUNS_FILE, run_rows, RUN_COLUMNS), (TASKS_FILE, task_rows, TASK_COLUMNS)):
        with atomic_io.atomic_path(results_dir / name) as tmp:
            pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False, float_format="%.4f")


def runs_csv(source: str | Path) -> Path:
    """The runs table of an evaluated output directory (or of a results folder), or a CSV itself."""
    p = Path(source)
    for candidate in (p / "results" / RUNS_FILE, p / RUNS_FILE) if p.is_dir() else (p,):
        if candidate.is_file():
            return candidate
    raise DfcilError(f"{source}: no results/{RUNS_FILE} (evaluate the run first) and not a CSV file")


# Accuracies in %: within [0, 100] where a row has them (A_N and a task's accuracy always); Ω and
# forgetting may lie outside (Ω above 100 is noise, forgetting below 0 a gain) but must be finite.
_PERCENT_REQUIRED = ("a_n", "acc_seen")
_PERCENT = ("old_acc", "new_acc", "avg_inc_acc")
_FINITE = ("omega", "forgetting", "omega_term")


def check_metrics(df: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """`df` unchanged, or one line naming the first row whose metrics are no result (a diverged run:
    non-finite, or an accuracy outside [0, 100])."""
    for col in (*_PERCENT_REQUIRED, *_PERCENT, *_FINITE):
        if col not in df.columns:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        absent = values.isna() & df[col].isna() if col not in _PERCENT_REQUIRED else pd.Series(False, index=df.index)
        bad = ~absent & ~np.isfinite(values.astype(float))
        if col in _PERCENT_REQUIRED or col in _PERCENT:
            bad |= ~absent & ((values < 0) | (values > 100))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            who = f" ({df['method'].iloc[i]})" if "method" in df.columns else ""
            raise DfcilError(f"{source}: row {i + 1}{who} has {col} = {df[col].iloc[i]}, no result (non-finite"
                             f"{' or outside [0, 100]' if col not in _FINITE else ''}); it is refused")
    return df


def read_runs(source: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows of one runs table, refused with one line where a column the caller needs is missing
    (default: the keys that identify a row and A_N) or a metric is no result (`check_metrics`)."""
    path = runs_csv(source)
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DfcilError(f"{path}: not a results table ({type(err).__name__})") from None
    missing = [c for c in columns or ["dataset", "n_tasks", "method", "seed", "train_seed", "a_n"] if c not in df.columns]
    if missing:
        raise DfcilError(f"{path}: missing columns {missing}")
    return check_metrics(df, path)
