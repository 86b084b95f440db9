"""Stage 4, evaluate: accuracy matrices, A_N, Ω, forgetting, the Section 5 diagnosis, the result
tables, the plots and the report page of a run."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import torch

from dfcil_core.foundations import atomic_io, registry
from dfcil_core.foundations.config import Config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.provenance import combine_device_classes, thread_counts, with_threads
from dfcil_core.method import metrics
from dfcil_core.method.models import LogitBias
from dfcil_core.method.runtime import configure, device_fingerprint, device_name
from dfcil_core.method.task_inputs import TaskData, to_device
from dfcil_core.method.training import accuracy_row
from dfcil_core.run import report
from dfcil_core.run.artifacts import (
    Layout,
    load_checked,
    model_hash,
    read_split,
    read_stage_log,
    seen_classes,
    stage_name,
    task_arrays,
    write_stage_log,
)
from dfcil_core.run.checkpoints import load_model, model_from_checkpoint
from dfcil_core.run.feature_diagnosis import feature_diagnosis
from dfcil_core.run.results_table import write_tables

log = logging.getLogger("dfcil")


def test_sets(lay: Layout, tasks: int, device: torch.device) -> list[TaskData]:
    """The test data of tasks 1..`tasks`, on the device."""
    sets = []
    for t in range(1, tasks + 1):
        a = task_arrays(lay, t)
        sets.append(to_device(a["test_x"], a["test_y"], device))
    return sets


def accuracy_matrix(cfg: Config, method: str, out: Path, device: torch.device, tests: list[TaskData],
                    meta: dict[str, Any]) -> tuple[metrics.AccuracyMatrix, list[dict[str, Any]]]:
    """A[i][n] for `method` and the per-task training histories of its models (read from the same
    checkpoints)."""
    lay = Layout(out)
    rows, histories = [], []
    unit = registry.method(method).inputs == "unit"
    for i in range(1, cfg.data.n_tasks + 1):
        seen, path, what = seen_classes(meta, i)[1], lay.model(method, i), f"θ({i}) of {method}"
        ckpt = load_checked(path, model_hash(cfg, method, i), what)
        histories.append(ckpt["history"])
        model = model_from_checkpoint(ckpt, path, cfg, what, device, seen)
        bias = ckpt.get("carry", {}).get("logit_bias")  # BiC's; its authors evaluate without them
        rows.append(accuracy_row(model, tests[:i], seen, cfg, device, unit_range=unit,
                                 logit_bias=LogitBias.from_list(bias).to(device) if bias and cfg.bic.apply_at_eval
                                 else None))
    return metrics.AccuracyMatrix.from_rows(rows, [int(t.y.shape[0]) for t in tests]), histories


_THREADS_IN_DEVICE_NAME = re.compile(r"^cpu \(.*, (\d+) threads\)$")  # `runtime.device_name`'s CPU form


def trained_device_class(out: Path, method: str, tasks: int, evaluated_on: str) -> str:
    """The device class that trained `method`'s θ(1..tasks): its train and synthesize stages' own
    records, combined (`provenance.combine_device_classes`: "1+2 threads" where they ran on different
    thread counts). The class that evaluates may differ from the one that trained, and only the one
    that trained decides the numbers. A record older than its `device_class` key gives its thread count
    in `device`, read into `evaluated_on`'s class; a stage without any record counts as `evaluated_on`."""
    stages = [stage_name("train", method, t) for t in range(1, tasks + 1)]
    stages += [stage_name("synthesize", method, t) for t in range(2, tasks + 1) if registry.replays_inverted(method, t)]
    classes = []
    for stage in stages:
        record = read_stage_log(out, stage)
        if "device_class" in record:
            classes.append(str(record["device_class"]))
            continue
        old = _THREADS_IN_DEVICE_NAME.match(str(record.get("device", "")))
        classes.append(with_threads(evaluated_on, int(old[1])) if old else evaluated_on)
    return combine_device_classes(classes)


def _trained_fingerprint(fingerprint: dict[str, Any], out: Path, method: str, tasks: int) -> dict[str, Any]:
    """The evaluating device's fingerprint with the class (and thread count) of the stages that trained
    `method`: a results row names what produced its numbers."""
    trained = trained_device_class(out, method, tasks, str(fingerprint["device_class"]))
    threads = thread_counts(trained)
    return {**fingerprint, "device_class": trained, "threads": "+".join(map(str, threads)) or fingerprint["threads"]}


def _earlier_methods(cfg: Config, lay: Layout, methods: list[str]) -> list[str]:
    """The methods an earlier `evaluate` of this folder (same seeds and task count) summarised that
    `methods` leaves out: `evaluate` evaluates them again while their models stand, so a run of one
    method into a folder keeps the others' summary (metrics.json, the results tables, the report)
    instead of replacing it."""
    if not lay.metrics_file().is_file():
        return []
    doc = atomic_io.read_json(lay.metrics_file())
    if (doc.get("seed"), doc.get("train_seed"), doc.get("n_tasks")) != (cfg.seed, cfg.training_seed, cfg.data.n_tasks):
        return []
    return [m for m in doc.get("methods", {}) if m not in methods and m in registry.METHODS]


def first_task_accuracy(cfg: Config, out: Path, methods: list[str] | None = None) -> dict[str, float]:
    """Task-1 test accuracy (%) of θ(1) for every method whose θ(1) exists: the first cell of the
    accuracy matrix, readable before the later tasks are trained (a task-1 fidelity check costs one
    task). Writes `eval/first_task.json` ({method: accuracy}); methods that share θ(1) share a value."""
    lay = Layout(out)
    meta = read_split(cfg, lay)
    device = configure(cfg.runtime)
    test = test_sets(lay, 1, device)[0]
    seen = seen_classes(meta, 1)[1]
    by_lineage: dict[str, float] = {}
    result: dict[str, float] = {}
    for m in methods or cfg.methods:
        path = lay.model(m, 1)
        if not path.exists():
            continue
        if registry.lineage(m, 1) not in by_lineage:
            model = load_model(cfg, path, m, 1, device, seen)
            by_lineage[registry.lineage(m, 1)] = accuracy_row(model, [test], seen, cfg, device,
                                                              unit_range=registry.method(m).inputs == "unit")[0]
        result[m] = by_lineage[registry.lineage(m, 1)]
    if not result:
        raise DfcilError(f"{out}: no θ(1) of {', '.join(methods or cfg.methods)} to evaluate; train task 1 first")
    here = device_fingerprint(device)["device_class"]
    atomic_io.write_json(lay.eval_dir() / "first_task.json", {
        "seed": cfg.seed, "train_seed": cfg.training_seed, "tasks": cfg.data.n_tasks, "task1_acc": result,
        "device_class": here,  # the class that evaluated; each θ(1)'s trainer's in `trained_on`
        "trained_on": {m: trained_device_class(out, m, 1, here) for m in result}})
    write_stage_log(out, "evaluate_first_task", device=device_name(device))
    return result


def evaluate(cfg: Config, out: Path, methods: list[str] | None = None) -> dict[str, Any]:
    """Accuracy matrices, A_N, Ω, forgetting; plots; result tables (one row per method/run and
    one per method/task). Ω needs the upper bound's models (method `upper_bound`). Methods an earlier
    evaluation of `out` summarised are evaluated again beside `methods` while their models stand
    (`_earlier_methods`)."""
    t0 = time.perf_counter()
    lay = Layout(out)
    methods = methods or cfg.methods
    meta = read_split(cfg, lay)
    device = configure(cfg.runtime)
    tests = test_sets(lay, cfg.data.n_tasks, device)
    evaluated = {m: accuracy_matrix(cfg, m, out, device, tests, meta) for m in methods}
    for m in _earlier_methods(cfg, lay, methods):
        try:
            evaluated[m] = accuracy_matrix(cfg, m, out, device, tests, meta)
        except DfcilError as err:  # its models are gone or come from another config: it leaves the summary
            log.info("evaluate: %s leaves the summary (%s)", m, err)
    methods = list(evaluated)
    matrices = {m: a for m, (a, _) in evaluated.items()}
    upper = matrices.get("upper_bound")
    if upper is None and all(lay.model("upper_bound", t).exists() for t in range(1, cfg.data.n_tasks + 1)):
        upper = accuracy_matrix(cfg, "upper_bound", out, device, tests, meta)[0]
    from dfcil_core.run import eval_plots as plots  # matplotlib: only the stages that plot import it

    ev = lay.eval_dir()
    fingerprint = device_fingerprint(device)
    results: dict[str, Any] = {}
    run_rows, task_rows = [], []
    for m, a in matrices.items():
        summary = metrics.summarize(a, upper)
        results[m] = summary
        atomic_io.write_json(ev / m / "accuracy_matrix.json", a.to_dict())
        plots.accuracy_heatmap(a.values, ev / m / "accuracy_matrix.png", title=f"{m}: A[i][n] (%)")
        plots.training_curves(evaluated[m][1], ev / m / "training_losses.png",
                              title=f"{m}: training loss and its weighted terms, per epoch")
        run_rows.append({"name": cfg.name, "dataset": cfg.data.dataset, "n_tasks": cfg.data.n_tasks,
                         "method": m, "ablation": cfg.abd.ablation if m == "abd" else "none",
                         "seed": cfg.seed, "train_seed": cfg.training_seed, "top_k": cfg.top_k, **summary,
                         "device": device_name(device), **_trained_fingerprint(fingerprint, out, m, cfg.data.n_tasks)})
        for i, acc in enumerate(a.seen_curve(), start=1):
            ratio = 100 * acc / upper.seen_accuracy(i - 1) if upper is not None else None
            task_rows.append({"method": m, "seed": cfg.seed, "train_seed": cfg.training_seed, "task": i,
                              "acc_seen": acc, "omega_term": ratio})
    # Section 5 diagnosis for the data-free learners (after task 2).
    diagnosis = {}
    if cfg.data.n_tasks >= 2:
        for m in methods:
            if registry.replays_inverted(m, 2):
                diagnosis[m] = feature_diagnosis(cfg, m, out, device)
        if diagnosis:
            atomic_io.write_json(ev / "diagnosis.json", diagnosis)
            plots.grouped_bars({m: {"MID real t1 vs synthetic t1": d["mid_real1_syn1"],
                                    "MID real t1 vs real t2": d["mid_real1_real2"]} for m, d in diagnosis.items()},
                               ev / "mid.png", "MID", title="Feature distance after task 2 (Fig. 2)")
            plots.grouped_bars({m: {"MMD real t1 vs synthetic t1": d["mmd_real1_syn1"],
                                    "MMD real t1 vs real t2": d["mmd_real1_real2"]} for m, d in diagnosis.items()},
                               ev / "mmd.png", "MMD", title="Feature MMD after task 2 (Fig. B)")
    plots.curves_per_task({m: a.seen_curve() for m, a in matrices.items()}, ev / "accuracy_per_task.png",
                          "accuracy over seen classes (%)", title=f"{cfg.name}: A_(i,1:i)")
    if upper is not None:
        plots.curves_per_task(
            {m: [100 * a.seen_accuracy(i) / upper.seen_accuracy(i) for i in range(a.n_tasks)]
             for m, a in matrices.items()}, ev / "omega_per_task.png", "A_(i,1:i) / upper bound (%)",
            title=f"{cfg.name}: terms of Ω")
    write_tables(lay.results_dir(), run_rows, task_rows)
    # Per-task plot data for `dvc plots`: one row per task, one column per method.
    atomic_io.write_json(ev / "plot_accuracy.json", [{"task": i + 1, **{m: a.seen_accuracy(i) for m, a in matrices.items()}}
                                                     for i in range(cfg.data.n_tasks)])
    if upper is not None:
        atomic_io.write_json(ev / "plot_omega.json", [
            {"task": i + 1, **{m: 100 * a.seen_accuracy(i) / upper.seen_accuracy(i) for m, a in matrices.items()}}
            for i in range(cfg.data.n_tasks)])
    doc = {"methods": results, "diagnosis": diagnosis, "name": cfg.name, "seed": cfg.seed,
           "train_seed": cfg.training_seed, "dataset": cfg.data.dataset, "n_tasks": cfg.data.n_tasks}
    atomic_io.write_json(lay.metrics_file(), doc)
    # Per-method flat metrics: `dvc metrics show` prints them as one readable row per method.
    for m, summary in results.items():
        atomic_io.write_json(lay.method_metrics_file(m), {k: v for k, v in summary.items() if v is not None})
    report.write(lay.root)
    write_stage_log(out, "evaluate", seconds=time.perf_counter() - t0, device=device_name(device))
    return doc
