"""The numerics snapshot: the `tiny` profile is bit-reproducible on one device class, so CI compares a
fresh tiny run with a checked-in snapshot for this class; any change to the numbers (accuracies or
the last training loss, which moves with any change of kernel or RNG use) shows up."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations.config import Config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.run.artifacts import Layout
from dfcil_core.run.results_table import read_runs

SNAPSHOT_COLUMNS = ["device_class", "profile", "method", "a_n", "omega", "old_acc", "new_acc", "final_loss"]


def snapshot_rows(out: Path) -> pd.DataFrame:
    """One row per method of an evaluated output directory: its accuracies and last epoch's loss."""
    rows = []
    for _, r in read_runs(out).iterrows():
        hist = atomic_io.load_torch(Layout(Path(out)).model(r["method"], int(r["n_tasks"])))["history"]
        rows.append({"device_class": r["device_class"], "profile": r["name"], "method": r["method"],
                     "a_n": r["a_n"], "omega": r["omega"], "old_acc": r["old_acc"], "new_acc": r["new_acc"],
                     "final_loss": float(hist["loss"][-1]) if hist["loss"] else np.nan})
    return pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)


def _of_class(df: pd.DataFrame, device: str, profile: str) -> pd.Series:
    """Rows of one (device class, profile)."""
    return (df["device_class"].astype(str) == device) & (df["profile"].astype(str) == profile)


def check_snapshot(current: pd.DataFrame, snapshot: pd.DataFrame) -> tuple[str, list[str]]:
    """('match' | 'differs' | 'no snapshot', lines): `current` against the snapshot rows of its device class.

    Accuracies must be equal to the stored 4 decimals, the final loss to 1e-5 relative (what a CSV
    round trip keeps); anything else is a numerics change, and so is a method the snapshot has and the
    run lacks. A method new since the class's snapshot was recorded has nothing to be compared with:
    a line says so, and the match stands."""
    classes = sorted(set(current["device_class"].astype(str)))
    if len(classes) != 1:
        raise DfcilError(f"snapshot rows from several device classes: {classes}")
    device = classes[0]
    profile = str(current["profile"].iloc[0])
    mine = snapshot[_of_class(snapshot, device, profile)]
    if mine.empty:
        return "no snapshot", [f"no {profile} snapshot for device class [{device}]; nothing to compare "
                               "(record one with `dfcil benchmark snapshot --update`)"]
    lines, new = [], []
    joined = current.merge(mine, on="method", how="outer", suffixes=("", "_snap"), indicator=True)
    for _, r in joined.iterrows():
        if r["_merge"] == "left_only":
            new.append(r["method"])
            continue
        if r["_merge"] == "right_only":
            lines.append(f"{r['method']}: only in the snapshot")
            continue
        for m in SNAPSHOT_COLUMNS[3:]:
            a, b = float(r[m]), float(r[f"{m}_snap"])
            same = (np.isclose(a, b, rtol=1e-5, atol=0.0) if m == "final_loss" else round(a, 4) == round(b, 4))
            if not same and not (np.isnan(a) and np.isnan(b)):
                lines.append(f"{r['method']} {m}: {a:.6g} (snapshot {b:.6g})")
    notes = [f"{', '.join(new)}: no snapshot row for this device class yet (new methods; not compared)"] if new else []
    return ("differs" if lines else "match"), lines + notes


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
    with atomic_io.atomic_path(path) as tmp:
        merged.to_csv(tmp, index=False, float_format="%.8g")


def fresh_snapshot(cfg: Config) -> pd.DataFrame:
    """Run `cfg` afresh in a temporary directory (never reusing outputs) and return its snapshot rows."""
    from dfcil_core.run.sequence import run

    with tempfile.TemporaryDirectory(prefix="dfcil-snapshot-") as tmp:
        run(cfg, Path(tmp))
        return snapshot_rows(Path(tmp))
