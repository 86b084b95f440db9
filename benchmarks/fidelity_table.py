"""The README "Fidelity" accuracy table: dfcil beside the authors' code on the CPU proxy protocol.

    bash benchmarks/reference_proxy.sh 2                      # the reference, class orders 0 and 1 (slow)
    python benchmarks/fidelity_table.py --reference outputs/reference   # -> benchmarks/reference-proxy.csv
    dfcil run --preset fidelity-proxy -S seed=S -S train_seed=T --out outputs/proxy/sS-tT   # T = 0, 1, 2
    python benchmarks/fidelity_table.py outputs/proxy/*       # our mean ± std beside the checked-in reference

A run trained only through task 1 counts for the task-1 cells once `dfcil evaluate --first-task` (same
preset and -S flags, same --out) has written its eval/first_task.json.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch

from dfcil_core import fidelity
from dfcil_core.errors import DfcilError
from dfcil_core.runtime import device_fingerprint

REFERENCE_CSV = Path(__file__).resolve().parent / "reference-proxy.csv"
COMMAND = "bash benchmarks/reference_proxy.sh 2"
# Reference rows carry the device class they were measured on (run --reference on the machine that ran
# the reference): the same protocol and seed moves by several points between AVX2 and AVX-512 kernels.
REFERENCE_COLUMNS = [*fidelity.COLUMNS, "device_class", "date", "command"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", type=Path, help="evaluated dfcil output directories")
    p.add_argument("--reference", type=Path, help="the reference's log root: (re)write the reference CSV from it")
    p.add_argument("--reference-csv", type=Path, default=REFERENCE_CSV)
    p.add_argument("--csv", type=Path, help="also write the comparison as CSV")
    p.add_argument("--command", default=COMMAND, help="with --reference: the command that ran it (recorded)")
    a = p.parse_args()
    if a.reference is not None:
        rows = fidelity.reference_rows(a.reference)
        rows["device_class"] = device_fingerprint(torch.device("cpu"))["device_class"]
        rows["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
        rows["command"] = a.command
        if a.reference_csv.is_file():
            old = pd.read_csv(a.reference_csv)
            if "device_class" not in old.columns:
                old["device_class"] = "unknown"
            old = old.set_index(["method", "seed"])
            for i, r in rows.iterrows():
                key = (r.method, r.seed)
                if key not in old.index:
                    continue
                if abs(old.loc[key, "a_n"] - round(r.a_n, 2)) < 1e-6:  # measured earlier: keeps its date
                    rows.loc[i, ["device_class", "date", "command"]] = old.loc[key, ["device_class", "date", "command"]].to_list()
                else:
                    print(f"replacing reference {key[0]} seed {key[1]}: A_N {old.loc[key, 'a_n']:.2f} "
                          f"({old.loc[key, 'device_class']}, {old.loc[key, 'date']}) -> {r.a_n:.2f} ({r.device_class})")
            # rows of seeds this log root does not hold (run in an earlier checkout) are kept
            kept = old[~old.index.isin(list(zip(rows.method, rows.seed, strict=True)))].reset_index()
            rows = pd.concat([kept, rows], ignore_index=True).sort_values(["method", "seed"], ignore_index=True)
        rows = rows[REFERENCE_COLUMNS]
        rows.to_csv(a.reference_csv, index=False, float_format="%.2f")
        print(f"{len(rows)} reference rows -> {a.reference_csv}")
    if not a.runs:
        return 0
    reference = pd.read_csv(a.reference_csv)
    try:
        table = fidelity.compare(fidelity.dfcil_rows(a.runs), reference)
    except DfcilError as err:  # one line, as every dfcil command reports bad input
        print(f"fidelity_table: error: {err}", file=sys.stderr)
        return 2
    print(fidelity.markdown(table))
    if "device_class" in reference.columns:  # say which machine class each compared reference value came from
        used = reference.merge(table[["method", "seed"]].drop_duplicates(), on=["method", "seed"])
        for device, g in used.groupby("device_class", sort=True):
            pairs = ", ".join(f"{m} {s}" for m, s in zip(g.method, g.seed, strict=True))
            print(f"reference measured on {device}: {pairs}")
    if a.csv:
        table.to_csv(a.csv, index=False, float_format="%.2f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
