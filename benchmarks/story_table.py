"""Print the "What you should see" table (README, docs/results/default-profile.md) from run directories of the default profile.

    python benchmarks/story_table.py outputs/o0 outputs/o1 outputs/o2

One row per run (train seed, A_N per method, ABD old / new, DI and Base old-class accuracy,
MID(real t1, syn t1) of DeepInversion / ABD, the story checks of `dfcil report` that hold), then the
mean row.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from dfcil_core.foundations import atomic_io
from dfcil_core.run.report import story_checks

METHODS = ["upper_bound", "base", "deepinversion", "abd"]


def short(check: str) -> str:
    """'A_N: ABD 35.5 > base 38.2' -> 'ABD > base'; otherwise the statement before its colon."""
    if check.startswith("A_N: ABD"):
        return "ABD > " + check.split("> ")[1].split()[0]
    return check.split(":")[0]


def row(run: Path) -> tuple[list[float], str]:
    doc = atomic_io.read_json(run / "metrics.json")
    m, d = doc["methods"], doc.get("diagnosis") or {}
    checks = story_checks(doc)
    failed = [short(text) for text, ok in checks if not ok]
    held = f"{sum(ok for _, ok in checks)} of {len(checks)}" + (f" (not: {'; '.join(failed)})" if failed else "")
    values = [m[k]["a_n"] for k in METHODS] + [m["abd"]["old_acc"], m["abd"]["new_acc"],
                                               m["deepinversion"]["old_acc"], m["base"]["old_acc"]]
    mid = f"{d['deepinversion']['mid_real1_syn1']:.2f} / {d['abd']['mid_real1_syn1']:.2f}"
    seed = doc.get("train_seed", doc["seed"])
    omega = max(m[k]["omega"] for k in m)
    print(f"| {seed} | {values[0]:.1f} | {values[1]:.1f} | {values[2]:.1f} | **{values[3]:.1f}** | "
          f"{values[4]:.1f} / {values[5]:.1f} | {values[6]:.1f} | {values[7]:.1f} | {mid} | {omega:.1f} | {held} |")
    return values, held


def main(paths: list[str]) -> None:
    print("| train seed | Upper bound | Base | DeepInversion | ABD | ABD old / new | DI old | Base old "
          "| MID(real t1, syn t1) DI / ABD | largest Ω | story checks that hold |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = np.array([row(Path(p))[0] for p in paths])
    mean, std = rows.mean(0), rows.std(0, ddof=1) if len(rows) > 1 else np.zeros(rows.shape[1])
    print(f"| mean ± std | {mean[0]:.1f} ± {std[0]:.1f} | {mean[1]:.1f} ± {std[1]:.1f} | {mean[2]:.1f} ± {std[2]:.1f} "
          f"| **{mean[3]:.1f} ± {std[3]:.1f}** | {mean[4]:.1f} / {mean[5]:.1f} | {mean[6]:.1f} | {mean[7]:.1f} | | | |")


if __name__ == "__main__":
    main(sys.argv[1:])
