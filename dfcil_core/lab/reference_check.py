"""Accuracy beside the authors' code on the same protocol (the README's fidelity table, docs/fidelity.md).

Rows come from two places: the reference's own result files (`<log_dir>/results-acc/pt.yaml`, one
folder per method, written by `benchmarks/reference_proxy.sh`) and evaluated dfcil output
directories (`metrics.json` + `eval/<method>/accuracy_matrix.json`). A cell passes when the
reference lies within max(3 points, 2 std) of our mean over training seeds at the same class order.
Both carry a device class (CPU ISA, threads, torch; ours the one that trained them, the reference's
the one that recorded it): the same protocol and seed moves by several points between AVX2 and AVX-512
kernels, so our runs are compared with the reference rows of their own machine class (the device class
without its thread count) when there are any, and a value from another class is marked. Runs on other
thread counts of one machine class are pooled: the thread count changes the reduction order, and so the
trajectory, as another training seed does.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.provenance import UNKNOWN, combine_device_classes, commit_of, machine_class, thread_counts
from dfcil_core.method.metrics import AccuracyMatrix
from dfcil_core.run.artifacts import read_stage_log
from dfcil_core.run.results_table import read_runs

# `tasks`: the protocol's task count (2-task and many-task rows are never compared with each other);
# `a_by_task`: A_{t,1:t} after every task, "/"-joined (the many-task table's cells).
COLUMNS = ["source", "method", "seed", "train_seed", "tasks", "task1_acc", "old_acc", "new_acc", "a_n", "a_by_task"]
# Our per-run rows also name the device class and the commit that first evaluated their figures (a durable
# record: `benchmarks/fidelity_table.py --runs-csv` checks them in, so the table outlives the output folders).
RUN_COLUMNS = [*COLUMNS, "device_class", "commit"]
MIN_POINTS, K_STD = 3.0, 2.0


def curve_text(values: list[float]) -> str:
    """A_{t,1:t} for t = 1..T as the `a_by_task` cell."""
    return "/".join(f"{v:.2f}" for v in values)


def metrics_for(tasks: int) -> list[str]:
    """The compared cells of a T-task protocol: task 1, A_{t,1:t} after each middle task (`a_t2`, ...),
    A_N, and old / new class accuracy after the last task."""
    return ["task1_acc", *(f"a_t{t}" for t in range(2, tasks)), "a_n", "old_acc", "new_acc"]


def _with_middle_tasks(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with a column `a_t<t>` for every middle task t, read from `a_by_task` (NaN where absent)."""
    rows = rows.copy()
    curves = [[float(v) for v in str(c).split("/")] if isinstance(c, str) and c else [] for c in rows["a_by_task"]]
    for t in range(2, int(rows["tasks"].max()) if len(rows) else 2):
        rows[f"a_t{t}"] = [c[t - 1] if len(c) >= t else np.nan for c in curves]
    return rows


# Written into a reference log folder by benchmarks/reference_run.py when REFERENCE_CLASS_ORDER fixes the
# class order: {"class_order": k, "tasks": T}, T the protocol's task count (a run may stop earlier).
PROTOCOL_FILE = "protocol.json"


def fix_class_order(trainer_cls: Any, order: int) -> None:
    """Make the reference's `Trainer` shuffle the classes with seed `order` in every trial, so that a
    trial's index seeds only its training (its per-task seeds and coreset draws): `--repeat R` then gives
    R training seeds of one class order. Its constructor seeds Python's `random` with the trial index
    for that shuffle alone (`random.seed(self.seed)` before `random.shuffle(class_order)`); only that call
    is redirected, and only while the constructor runs."""
    init = trainer_cls.__init__

    def init_with_order(self: Any, args: Any, seed: int, *rest: Any, **kw: Any) -> None:
        real_seed = random.seed

        def seed_of_order(a: Any = None, *more: Any, **kw2: Any) -> None:
            real_seed(order if a == seed else a, *more, **kw2)

        random.seed = seed_of_order
        try:
            init(self, args, seed, *rest, **kw)
        finally:
            random.seed = real_seed

    trainer_cls.__init__ = init_with_order


def write_protocol(log_dir: Path, class_order: int, tasks: int) -> None:
    """Record in a reference log folder that its trials share class order `class_order` of a `tasks`-task
    protocol. Refused when the folder already records another, or holds trials run without a fixed
    order (trial r there had class order r): either way its trials would mix two orders."""
    path = log_dir / PROTOCOL_FILE
    doc = {"class_order": class_order, "tasks": tasks}
    recorded = _protocol(log_dir)
    if recorded is not None and recorded != doc:
        raise DfcilError(f"{path} records {json.dumps(recorded)}, not {json.dumps(doc)}: use another log folder")
    if recorded is None:
        other = [r for r in _trials(log_dir) if r != class_order]
        if other:
            raise DfcilError(f"{log_dir} holds trials {other} of other class orders (run without a fixed one): "
                             "use another log folder")
    log_dir.mkdir(parents=True, exist_ok=True)
    atomic_io.write_json(path, doc)


# Written into a reference log folder by benchmarks/reference_run.py as each trial starts: {"r": device
# class}, the class (CPU ISA, threads, torch) that ran trial r. Folders from before it take the class of the
# process that records them.
DEVICES_FILE = "devices.json"


def record_trial_devices(trainer_cls: Any, device_class: str) -> None:
    """Make the reference's `Trainer` write `device_class` for its trial (the constructor's `seed`, the
    trial index) into its log folder's devices.json as the trial starts, so each trial keeps the class
    that ran it when a folder's trials run under different thread counts (a resumed or extended run).
    The trial's models may come from earlier processes (`--overwrite 0` loads its own saved tasks,
    `--load_model_dir` another folder's task 1): their recorded classes are combined with this one
    ("1+2 threads")."""
    init = trainer_cls.__init__

    def init_and_record(self: Any, args: Any, seed: int, *rest: Any, **kw: Any) -> None:
        init(self, args, seed, *rest, **kw)
        log_dir = Path(args.log_dir)
        devices = _trial_devices(log_dir)
        earlier = [devices.get(str(seed))]
        if getattr(args, "load_model_dir", None):
            earlier.append(_trial_devices(Path(args.load_model_dir)).get(str(seed)))
        trial_class = combine_device_classes([c for c in (*earlier, device_class) if c])
        log_dir.mkdir(parents=True, exist_ok=True)
        atomic_io.write_json(log_dir / DEVICES_FILE, {**devices, str(seed): trial_class})

    trainer_cls.__init__ = init_and_record


def _trial_devices(method_dir: Path) -> dict[str, str]:
    path = method_dir / DEVICES_FILE
    return atomic_io.read_json(path) if path.is_file() else {}


def _protocol(method_dir: Path) -> dict[str, int] | None:
    """The folder's protocol.json (`write_protocol`), or None when its trials did not fix a class order."""
    path = method_dir / PROTOCOL_FILE
    return atomic_io.read_json(path) if path.is_file() else None


def _trials(method_dir: Path) -> dict[int, np.ndarray]:
    """The trials the reference ran into a method's folder: trial r -> a[j][i], the accuracy (%) on task
    j+1 after task i+1 (its `results-acc/pt.yaml` holds history[j][i][r]). All-NaN trials are
    placeholders (reference_proxy.sh started at a later seed) and left out."""
    pt = method_dir / "results-acc" / "pt.yaml"
    if not pt.is_file():
        return {}
    hist = np.asarray(yaml.safe_load(pt.read_text())["history"], dtype=float)
    return {r: hist[:, :, r] for r in range(hist.shape[2]) if not np.isnan(hist[:, :, r]).all()}


def reference_rows(log_root: Path) -> pd.DataFrame:
    """One row per (method, trial) from the reference's `results-acc/pt.yaml` files.

    pt.yaml's history[j][i][r] is the accuracy (%) on task j+1 after task i+1 in trial r; all-NaN
    trials are placeholders and give no row. Trial r is class-order seed r and training seed r, unless the
    method's folder holds `protocol.json` (`fix_class_order`): then every trial has its class order and
    trial r is training seed r, and a run that stopped before the protocol's last task gives the cells
    it reached (task 1 of a `--max_task 1` run) and NaN for the rest. `device_class` is the class that
    ran the trial (devices.json, `record_trial_devices`), None where the folder does not record it.
    """
    rows = []
    for pt in sorted(log_root.glob("*/results-acc/pt.yaml")):
        method_dir = pt.parent.parent
        protocol = _protocol(method_dir)
        devices = _trial_devices(method_dir)
        for r, a in _trials(method_dir).items():
            last = a.shape[0] - 1
            tasks = int(protocol["tasks"]) if protocol else last + 1
            complete = last + 1 == tasks
            old = float(a[:last, last].mean()) if last > 0 and complete else float("nan")
            rows.append({"source": "reference", "method": method_dir.name,
                         "seed": int(protocol["class_order"]) if protocol else r, "train_seed": r, "tasks": tasks,
                         "task1_acc": float(a[0, 0]), "old_acc": old,
                         "new_acc": float(a[last, last]) if complete else float("nan"),
                         "a_n": float(a[: last + 1, last].mean()) if complete else float("nan"),
                         "a_by_task": curve_text([float(a[: t + 1, t].mean()) for t in range(last + 1)]),
                         "device_class": devices.get(str(r))})
    return pd.DataFrame(rows, columns=[*COLUMNS, "device_class"])


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
            doc = atomic_io.read_json(metrics_file)
            runs = read_runs(out, ["method", "device_class"])
            devices = dict(zip(runs["method"].astype(str), runs["device_class"].astype(str), strict=True))
            commit = _commit(out, "evaluate")
            for method, summary in doc["methods"].items():
                a = AccuracyMatrix.from_dict(atomic_io.read_json(out / "eval" / method / "accuracy_matrix.json"))
                rows.append({"source": "dfcil", "method": method, "seed": doc["seed"], "train_seed": doc["train_seed"],
                             "tasks": a.n_tasks, "task1_acc": float(a.values[0, 0]), "old_acc": summary["old_acc"],
                             "new_acc": summary["new_acc"], "a_n": summary["a_n"],
                             "a_by_task": curve_text(a.seen_curve()), "device_class": devices[method],
                             "commit": commit})
                done.add(method)
        if first_task.is_file():
            doc = atomic_io.read_json(first_task)
            # first_task.json files older than its `tasks` key all came from the 2-task proxy
            rows += [{"source": "dfcil", "method": m, "seed": doc["seed"], "train_seed": doc["train_seed"],
                      "tasks": doc.get("tasks", 2), "task1_acc": acc, "old_acc": np.nan, "new_acc": np.nan,
                      "a_n": np.nan, "a_by_task": "",
                      "device_class": doc.get("trained_on", {}).get(m, doc["device_class"]),
                      "commit": _commit(out, "evaluate_first_task")}
                     for m, acc in doc["task1_acc"].items() if m not in done]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _commit(out: Path, stage: str) -> str:
    """The commit that ran a stage of `out`, from its log record ("unknown" without one)."""
    return commit_of(str(read_stage_log(out, stage).get("code_version", "")))


def read_run_rows(path: Path) -> pd.DataFrame:
    """Per-run rows checked in earlier (`fidelity_table.py --runs-csv`)."""
    df = pd.read_csv(path)
    missing = [c for c in RUN_COLUMNS if c not in df.columns]
    if missing:
        raise DfcilError(f"{path}: not a fidelity runs CSV (missing columns {missing})")
    return df[RUN_COLUMNS]


def merge_run_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """`old` with `new` added; a run of the same (protocol's task count, method, class order, training
    seed, device class) is replaced by the new one where its figures changed, never counted twice."""
    key = ["tasks", "method", "seed", "train_seed", "device_class"]
    both = pd.concat([old, new], ignore_index=True) if len(old) else new
    # Evaluating a new method into a folder re-evaluates its others: where a run's figures are unchanged
    # (to the CSV's two decimals) the row keeps the commit that first recorded them.
    figures = both.drop(columns="commit").round(2)
    both = both[~figures.duplicated(keep="first")]
    return both.drop_duplicates(key, keep="last").sort_values(key, ignore_index=True)


def _pooled(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with their `machine_class` (`provenance.machine_class`: the device class without its thread
    count), one row per (machine class, task count, method, class order, training seed): a lineage
    evaluated after its last task before one evaluated at task 1 only, then the latest `date` where rows
    have one, then the first device class. Runs of one machine class on other thread counts are pooled
    like more training seeds (the thread count moves the trajectory as a seed does); a training seed is
    never counted twice."""
    rows = rows.assign(device_class=rows["device_class"].fillna(UNKNOWN).astype(str))
    rows = rows.assign(machine_class=rows["device_class"].map(machine_class), complete=rows["a_n"].notna())
    order = ["complete", *(["date"] if "date" in rows else []), "device_class"]
    rows = rows.sort_values(order, ascending=[False] * (len(order) - 1) + [True], kind="stable")
    keys = ["machine_class", "tasks", "method", "seed", "train_seed"]
    return rows.drop_duplicates(keys).drop(columns="complete").sort_values(keys, ignore_index=True)


def _threads_of(device_classes: pd.Series) -> str:
    """The thread counts behind a group's runs, "1, 2" ("" where no class names one: a GPU)."""
    return ", ".join(map(str, sorted({n for c in device_classes for n in thread_counts(str(c))})))


def table_threads(threads: pd.Series) -> list[int]:
    """The thread counts behind some rows of `compare`'s table (their `threads` cells, "1, 2")."""
    return sorted({int(n) for t in threads if t for n in t.split(", ")})


def compare(ours: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Per (machine class, task count, method, class-order seed) and cell (`metrics_for`): our mean ± std
    over training seeds, the reference's value on the same protocol (the mean over its training seeds
    where it has several, `reference_runs` of them) and whether it lies within max(3 points, 2 std) of
    our mean. Each side is `_pooled`; the reference of our own machine class is used where there is one,
    else another class's, marked `other_device`."""
    ours, reference = _with_middle_tasks(_pooled(ours)), _with_middle_tasks(_pooled(reference))
    out = []
    for (machine, tasks, method, seed), g in ours.groupby(["machine_class", "tasks", "method", "seed"], sort=True):
        ref = reference[(reference.method == method) & (reference.seed == seed) & (reference.tasks == tasks)]
        mine = ref[ref.machine_class == machine]
        ref_machine = machine if len(mine) else (str(ref.machine_class.min()) if len(ref) else "")
        ref = ref[ref.machine_class == ref_machine]  # another class's values: marked below
        for metric in metrics_for(int(tasks)):
            has = g[g[metric].notna()]  # runs evaluated at task 1 only have no later cells
            if len(has) == 0:
                continue
            vals = has[metric].to_numpy(float)
            mean = float(vals.mean())
            std = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
            band = max(MIN_POINTS, K_STD * std) if len(vals) > 1 else MIN_POINTS
            ref_has = ref[ref[metric].notna()]
            ref_vals = ref_has[metric].to_numpy(float)
            ref_val = float(ref_vals.mean()) if len(ref_vals) else float("nan")
            ref_std = float(ref_vals.std(ddof=1)) if len(ref_vals) > 1 else float("nan")
            passed = bool(abs(ref_val - mean) <= band) if len(ref_vals) else None
            out.append({"machine_class": machine, "threads": _threads_of(has.device_class), "tasks": int(tasks),
                        "method": method, "seed": int(seed), "metric": metric, "runs": len(vals), "ours_mean": mean,
                        "ours_std": std, "reference": ref_val, "reference_std": ref_std,
                        "reference_runs": len(ref_vals), "reference_machine": ref_machine,
                        "reference_threads": _threads_of(ref_has.device_class),
                        "other_device": _differ(machine, ref_machine), "band": band, "pass": passed})
    return pd.DataFrame(out)


def _differ(device: str, ref_device: str) -> bool:
    """Known to be measured on two device classes (an unknown class is not claimed to differ)."""
    return bool(ref_device) and UNKNOWN not in (device, ref_device) and device != ref_device


def markdown(table: pd.DataFrame) -> str:
    """The fidelity table, one per protocol task count: one row per (method, seed), each cell as
    `ours (± std) / reference`, the reference as `mean ± std [n]` where it has n > 1 training seeds;
    `runs` counts our runs behind the task-1 cell and behind the later cells (a run may stop after
    task 1)."""
    if len(table) and table["tasks"].nunique() > 1:
        return "\n\n".join(f"**{tasks} tasks**\n\n" + markdown(g)
                           for tasks, g in table.groupby("tasks", sort=True))
    metrics = metrics_for(int(table["tasks"].iloc[0]) if len(table) else 2)
    several = table["machine_class"].nunique() > 1 if len(table) else False
    lines = ["| method | class-order seed | runs (task 1 / all tasks) | "
             + " | ".join(f"{m}: ours / ref" for m in metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for (machine, method, seed), g in table.groupby(["machine_class", "method", "seed"], sort=True):
        cells = []
        for metric in metrics:
            if not (g.metric == metric).any():
                cells.append("not run")
                continue
            r = g[g.metric == metric].iloc[0]
            std = "" if np.isnan(r.ours_std) else f" ± {r.ours_std:.1f}"
            ref = "not run" if np.isnan(r.reference) else f"{r.reference:.1f}"
            if r.reference_runs > 1:
                ref += f" ± {r.reference_std:.1f} [{r.reference_runs}]"
            mark = "" if r["pass"] is None else (" ✓" if r["pass"] else " ✗")
            other = " †" if r.other_device else ""
            cells.append(f"{r.ours_mean:.1f}{std} / {ref}{other}{mark}")
        runs = [int(g[g.metric == m].runs.max()) if (g.metric == m).any() else 0 for m in ("task1_acc", "a_n")]
        threads = table_threads(g.threads)
        label = [machine] if several else []
        label += [f"{'+'.join(map(str, threads))} threads"] if len(threads) > 1 else []  # pooled thread counts
        name = f"{method} ({'; '.join(label)})" if label else method
        lines.append(f"| {name} | {seed} | {runs[0]} / {runs[1]} | " + " | ".join(cells) + " |")
    others = table[table.other_device].drop_duplicates(["machine_class", "method", "seed"]) if len(table) else table
    if len(others):
        lines.append("")
        lines += [f"† {r.method} {r.seed}: ours on {r.machine_class}, the reference only on {r.reference_machine}"
                  for r in others.itertuples()]
    return "\n".join(lines)
