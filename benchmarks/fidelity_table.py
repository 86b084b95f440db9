"""The fidelity accuracy table (README, docs/fidelity.md): dfcil beside the authors' code on the CPU proxy protocol.

    bash benchmarks/reference_proxy.sh 2                      # the reference, class orders 0 and 1 (slow)
    python benchmarks/fidelity_table.py --reference outputs/reference   # -> benchmarks/reference-proxy.csv
    dfcil run --preset fidelity-proxy -S seed=S -S train_seed=T --out outputs/proxy/sS-tT   # T = 0, 1, 2
    python benchmarks/fidelity_table.py outputs/proxy/*       # our mean ± std beside the checked-in reference
    python benchmarks/fidelity_table.py outputs/proxy/* --runs-csv benchmarks/fidelity-runs.csv   # and check our rows in
    python benchmarks/fidelity_table.py benchmarks/fidelity-runs.csv   # the table again, from the checked-in rows

The many-task proxy (4 tasks x 5 classes) goes the same way; its rows carry `tasks` = 4 and A_{t,1:t}
after every task, and meet only the reference's 4-task rows (one table per task count):

    TASKS=4 CLASSES=5 REFERENCE_OUT=outputs/reference-4task bash benchmarks/reference_proxy.sh 2
    python benchmarks/fidelity_table.py --reference outputs/reference-4task \
        --command "TASKS=4 CLASSES=5 REFERENCE_OUT=outputs/reference-4task bash benchmarks/reference_proxy.sh 2"
    dfcil run --preset fidelity-proxy-4task -S seed=S -S train_seed=T --out outputs/proxy4/sS-tT

Each reference row and each of our runs names its device class; a run is compared with the reference
row of its own class where one exists, and a value from another class is marked †.

A run trained only through task 1 counts for the task-1 cells once `dfcil evaluate --first-task` (same
preset and -S flags, same --out) has written its eval/first_task.json.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dfcil_core.foundations.errors import DfcilError, one_line
from dfcil_core.lab import reference_check as fidelity
from dfcil_core.method.runtime import device_fingerprint

REFERENCE_CSV = Path(__file__).resolve().parent / "reference-proxy.csv"
COMMAND = "bash benchmarks/reference_proxy.sh 2"
# Reference rows carry the device class they were measured on (run --reference on the machine that ran
# the reference): the same protocol and seed moves by several points between AVX2 and AVX-512 kernels.
REFERENCE_COLUMNS = [*fidelity.COLUMNS, "device_class", "date", "command"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", type=Path,
                   help="evaluated dfcil output directories, or CSVs of per-run rows written by --runs-csv")
    p.add_argument("--reference", type=Path, help="the reference's log root: (re)write its rows of this device class")
    p.add_argument("--reference-csv", type=Path, default=REFERENCE_CSV)
    p.add_argument("--csv", type=Path, help="also write the comparison as CSV")
    p.add_argument("--runs-csv", type=Path, help="add our per-run rows (device class, commit) to this CSV")
    p.add_argument("--command", default=COMMAND, help="with --reference: the command that ran it (recorded)")
    a = p.parse_args()
    try:
        if a.reference is not None:
            _record_reference(a.reference, a.reference_csv, a.command)
        if not a.runs:
            return 0
        ours = _our_rows(a.runs)
        if a.runs_csv:
            old = fidelity.read_run_rows(a.runs_csv) if a.runs_csv.is_file() else ours.iloc[:0]
            merged = fidelity.merge_run_rows(old, ours)
            merged.to_csv(a.runs_csv, index=False, float_format="%.2f")
            print(f"{len(merged)} run rows -> {a.runs_csv}")
        table = fidelity.compare(ours, pd.read_csv(a.reference_csv))
    except DfcilError as err:  # one line, as every dfcil command reports bad input
        print(f"fidelity_table: error: {one_line(err)}", file=sys.stderr)
        return 2
    print(fidelity.markdown(table))
    for machine, g in table.drop_duplicates(["machine_class", "method", "seed"]).groupby("reference_machine", sort=True):
        if machine:  # say which machine class each compared reference value came from
            pairs = ", ".join(f"{m} {s}" for m, s in zip(g.method, g.seed, strict=True))
            print(f"reference measured on {machine}: {pairs}")
    for machine, g in table.groupby("machine_class", sort=True):
        threads = fidelity.table_threads(g.threads)
        print(f"ours measured on {machine}" + (f" ({', '.join(map(str, threads))} threads)" if threads else ""))
    if a.csv:
        table.to_csv(a.csv, index=False, float_format="%.2f")
    return 0


def _our_rows(sources: list[Path]) -> pd.DataFrame:
    """Per-run rows from output directories and from checked-in CSVs (a run in both counts once)."""
    dirs = [s for s in sources if s.suffix != ".csv"]
    parts = [fidelity.read_run_rows(s) for s in sources if s.suffix == ".csv"]
    if dirs:
        parts.append(fidelity.dfcil_rows(dirs))
    rows = parts[0]
    for part in parts[1:]:
        rows = fidelity.merge_run_rows(rows, part)
    return rows


def _record_reference(log_root: Path, csv: Path, command: str) -> None:
    """Write the reference's rows into `csv`, each with the device class that ran its trial (as the log
    folder records it; the class of this process where it does not). A row of the same method, class-order
    seed, training seed and task count measured earlier on the same class (or on an unknown one) is
    replaced, and the replacement printed, except by a task-1-only run that repeats a whole lineage's
    task 1; other classes', seeds' and protocols' rows stay."""
    rows = fidelity.reference_rows(log_root)
    here = device_fingerprint(torch.device("cpu"))["device_class"]
    rows["device_class"] = rows["device_class"].fillna(here)
    rows["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    rows["command"] = command
    if csv.is_file():
        old = pd.read_csv(csv)
        old["device_class"] = old["device_class"].fillna(fidelity.UNKNOWN).astype(str)
        drop, rerun = [], []
        for i, r in rows.iterrows():
            # a 4-task run is another protocol: it never replaces the 2-task row of the same method and seed
            same = old[(old.method == r.method) & (old.seed == r.seed) & (old.train_seed == r.train_seed)
                       & (old.tasks == r.tasks) & old.device_class.isin([r.device_class, fidelity.UNKNOWN])]
            for j, o in same.iterrows():
                same_task1 = np.allclose(o.task1_acc, round(r.task1_acc, 2), atol=1e-6)
                if same_task1 and np.isnan(r.a_n) and not np.isnan(o.a_n):
                    # a task-1-only rerun of a lineage recorded whole (its task 1 repeated): the whole row stays
                    print(f"keeping reference {r.method} seed {r.seed} training seed {r.train_seed}: task 1 "
                          f"{r.task1_acc:.2f} repeats its whole lineage's ({o.date})")
                    rerun.append(i)
                    continue
                same_value = same_task1 and np.allclose(o.a_n, round(r.a_n, 2), atol=1e-6, equal_nan=True)
                if o.device_class == r.device_class and same_value:  # measured earlier: keeps its date
                    rows.loc[i, ["date", "command"]] = [o.date, o.command]
                else:
                    print(f"replacing reference {r.method} seed {r.seed} training seed {r.train_seed}: A_N {o.a_n:.2f} "
                          f"({o.device_class}, {o.date}) -> {r.a_n:.2f} ({r.device_class})")
                drop.append(j)
        # rows of seeds this log root does not hold, and of other device classes, are kept
        rows = pd.concat([old.drop(index=drop), rows.drop(index=rerun)], ignore_index=True)
    rows = rows[REFERENCE_COLUMNS].sort_values(["method", "seed", "train_seed", "device_class"], ignore_index=True)
    rows.to_csv(csv, index=False, float_format="%.2f")
    print(f"{len(rows)} reference rows -> {csv}")


if __name__ == "__main__":
    sys.exit(main())
