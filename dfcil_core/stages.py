"""Stage functions: the one place each stage's behaviour is defined (CLI, DVC and KFP call these).

Every stage is a pure function of its input files + config + seed to its output files, written
atomically. Each output records a hash of everything it depends on; an existing output with the
same hash is reused (a re-run after a crash redoes only what is missing), one with another hash
is refused rather than overwritten.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfcil_core import io, metrics, report
from dfcil_core.artifacts import Layout, check_existing, generator_hash, load_checked, model_hash
from dfcil_core.config import Config, lineage_hash, split_hash
from dfcil_core.data import CHANNEL_STATS, class_order, load_dataset, select_task, task_class_blocks
from dfcil_core.errors import DfcilError
from dfcil_core.learners import LEARNERS, lineage, make_learner
from dfcil_core.models import IncrementalClassifier
from dfcil_core.runtime import (
    compile_features,
    configure,
    device_fingerprint,
    device_name,
    prepare_model,
    task_seed,
    uncompiled_features,
)
from dfcil_core.synthesis import build_generator, new_generator, sample_replay, synthesize_generator
from dfcil_core.training import TaskData, accuracy_row, fit_task, new_classifier, to_device

log = logging.getLogger("dfcil")


# ---------------------------------------------------------------------------------------------
# 1. split


def split(cfg: Config, out: Path) -> Path:
    """Class order and per-task uint8 train/test arrays (labels = positions in the class order)."""
    lay = Layout(out)
    h = split_hash(cfg)
    sizes = cfg.task_sizes()
    if check_existing(lay.split_meta(), h) and all(lay.task_file(t).exists() for t in range(1, len(sizes) + 1)):
        log.info("split: up to date (%s)", lay.split_dir)
        return lay.split_dir
    d = cfg.data
    train, test = load_dataset(d.dataset, d.root, d.download, d.image_size)
    full = int(train.y.max()) + 1
    if cfg.total_classes > full:
        raise DfcilError(f"data.num_classes: {cfg.total_classes} > the {full} classes of {d.dataset}")
    order = class_order(full, cfg.seed)
    blocks = task_class_blocks(sizes)
    for t, positions in enumerate(blocks, start=1):
        tr = select_task(train, order, positions, d.train_per_class)
        te = select_task(test, order, positions, d.test_per_class)
        io.save_npz(lay.task_file(t), train_x=tr.x, train_y=tr.y, test_x=te.x, test_y=te.y)
    # meta last: its presence marks a complete split
    io.write_json(lay.split_meta(), io.metadata(
        h, cfg.seed, dataset=d.dataset, class_order=order[: cfg.total_classes],
        class_names=[train.classes[c] for c in order[: cfg.total_classes]] if train.classes else None,
        tasks=[[order[p] for p in b] for b in blocks], task_positions=blocks,
        inputs={"dataset": d.dataset}))
    log.info("split: %d tasks of %s classes -> %s", len(sizes), sizes, lay.split_dir)
    return lay.split_dir


def _read_split(cfg: Config, lay: Layout) -> dict[str, Any]:
    meta = io.read_json(lay.split_meta())
    if meta.get("config_hash") != split_hash(cfg):
        raise DfcilError(f"{lay.split_meta()} was made under another config; re-run the split stage")
    return meta


def _task_arrays(lay: Layout, task: int) -> dict[str, np.ndarray]:
    return io.load_npz(lay.task_file(task))


def _test_sets(lay: Layout, tasks: int, device: torch.device) -> list[TaskData]:
    """The test data of tasks 1..`tasks`, on the device."""
    sets = []
    for t in range(1, tasks + 1):
        a = _task_arrays(lay, t)
        sets.append(to_device(a["test_x"], a["test_y"], device))
    return sets


def _seen(meta: dict[str, Any], task: int) -> tuple[int, int]:
    blocks = meta["task_positions"]
    past = sum(len(b) for b in blocks[: task - 1])
    return past, past + len(blocks[task - 1])


def _check_task(cfg: Config, task: int) -> None:
    if not 1 <= task <= cfg.data.n_tasks:
        raise DfcilError(f"task: {task} is outside 1..{cfg.data.n_tasks}")


def _load_model(path: Path, cfg: Config, expected: str, what: str, device: torch.device,
                seen: int | None = None) -> IncrementalClassifier:
    return _model_from_checkpoint(load_checked(path, expected, what), path, cfg, what, device, seen)


def _model_from_checkpoint(ckpt: dict[str, Any], path: Path, cfg: Config, what: str, device: torch.device,
                           seen: int | None = None) -> IncrementalClassifier:
    if ckpt.get("arch") != cfg.model.arch:
        raise DfcilError(f"{path} ({what}) is a {ckpt.get('arch')} checkpoint, the config says {cfg.model.arch}")
    if seen is not None and ckpt.get("num_classes") != seen:
        raise DfcilError(f"{path} ({what}) has {ckpt.get('num_classes')} classes, expected {seen}")
    if ckpt.get("shortcut", "B") != cfg.model.shortcut:
        raise DfcilError(f"{path} ({what}) has option-{ckpt.get('shortcut', 'B')} shortcuts, "
                         f"the config says {cfg.model.shortcut}")
    m = new_classifier(cfg, ckpt["num_classes"], head_size=ckpt["state_dict"]["head.weight"].shape[0])
    m.load_state_dict(ckpt["state_dict"])
    return prepare_model(m, device, cfg.runtime)


# ---------------------------------------------------------------------------------------------
# 2. synthesize


def synthesize(cfg: Config, method: str, task: int, out: Path) -> Path:
    """Train the generator for task `task` by inverting θ(task-1); the generator and its optimiser
    carry on from the previous task's. Writes the checkpoint, a sample grid and loss curves."""
    _check_task(cfg, task)
    if task < 2:
        raise DfcilError("synthesize: task must be >= 2 (task 1 has no previous model)")
    if not LEARNERS[method].uses_replay:
        raise DfcilError(f"synthesize: method {method!r} does not replay synthetic data")
    lay = Layout(out)
    path = lay.generator(method, task)
    h = generator_hash(cfg, method, task)
    if check_existing(path, h):
        log.info("synthesize task %d (%s): up to date", task, method)
        return path
    meta = _read_split(cfg, lay)
    device = configure(cfg.runtime)
    past, _ = _seen(meta, task)
    teacher_path = lay.model(method, task - 1)
    teacher = _load_model(teacher_path, cfg, model_hash(cfg, method, task - 1), f"θ({task - 1})", device, past)
    torch.manual_seed(task_seed(cfg.training_seed, task) + 50_000)
    generator, opt = new_generator(cfg, device)
    inputs = {str(teacher_path.relative_to(out)): io.file_sha256(teacher_path)}
    if task >= 3:
        prev_path = lay.generator(method, task - 1)
        prev = load_checked(prev_path, generator_hash(cfg, method, task - 1), f"generator of task {task - 1}")
        generator.load_state_dict(prev["state_dict"])
        opt.load_state_dict(prev["optimizer"])
        inputs[str(prev_path.relative_to(out))] = io.file_sha256(prev_path)
    t0 = time.perf_counter()
    bar = None
    if cfg.runtime.progress and cfg.synthesis.steps > 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.synthesis.steps, desc=f"synthesize task {task}", unit="step", leave=False)
    curves = synthesize_generator(generator, opt, teacher, past, cfg.synthesis,
                                  on_step=(lambda _s: bar.update(1)) if bar else None, amp=cfg.runtime.amp)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    io.save_torch(path, {"state_dict": generator.state_dict(), "optimizer": opt.state_dict(),
                         "curves": curves, "past": past, "seconds": seconds,
                         "meta": io.metadata(h, cfg.seed, inputs, stage="synthesize", task=task)})
    # Figures beside the checkpoint: what the generator dreams, and how its losses went. (matplotlib
    # is imported where a stage plots: the training stages, one process each, never need it.)
    from dfcil_core import plots

    gen = torch.Generator(device=device).manual_seed(0)
    replay = sample_replay(generator, teacher, 64, past, gen)
    order = torch.argsort(replay["labels"], stable=True)
    mean, std = CHANNEL_STATS[cfg.data.dataset]
    names = meta.get("class_names") or [f"class {c}" for c in meta["class_order"]]
    plots.sample_grid(replay["x"][order], mean, std, path.with_name(f"samples_task_{task}.png"),
                      title=f"synthetic past classes before task {task}: what θ({task - 1}) calls each image",
                      labels=[names[int(i)] for i in replay["labels"][order]])
    plots.loss_curves(curves, path.with_name(f"losses_task_{task}.png"), title=f"inversion losses, task {task}")
    log.info("synthesize task %d (%s): %d steps in %.1fs, final loss %.4f", task, lineage(method, task - 1),
             cfg.synthesis.steps, seconds, curves["total"][-1] if curves["total"] else float("nan"))
    return path


# ---------------------------------------------------------------------------------------------
# 3. train


def train(cfg: Config, method: str, task: int, out: Path) -> Path:
    """θ(task) for `method` from θ(task-1), the generator (data-free methods) and task data."""
    _check_task(cfg, task)
    learner = make_learner(method, cfg)
    lay = Layout(out)
    path = lay.model(method, task)
    h = model_hash(cfg, method, task)
    if check_existing(path, h):
        log.info("train task %d (%s): up to date", task, lineage(method, task))
        return path
    meta = _read_split(cfg, lay)
    device = configure(cfg.runtime)
    past, seen = _seen(meta, task)
    tasks = range(1, task + 1) if learner.cumulative_data else [task]
    arrays = [_task_arrays(lay, t) for t in tasks]
    data = to_device(np.concatenate([a["train_x"] for a in arrays]),
                     np.concatenate([a["train_y"] for a in arrays]), device)
    inputs = {str(lay.task_file(t).relative_to(out)): io.file_sha256(lay.task_file(t)) for t in tasks}
    seed = task_seed(cfg.training_seed, task)
    torch.manual_seed(seed)
    teacher = generator = None
    if task == 1 or learner.fresh_model_each_task:
        model = prepare_model(new_classifier(cfg, seen), device, cfg.runtime)
        past_for_loss = 0
    else:
        prev_path = lay.model(method, task - 1)
        teacher = _load_model(prev_path, cfg, model_hash(cfg, method, task - 1), f"θ({task - 1})", device, past)
        inputs[str(prev_path.relative_to(out))] = io.file_sha256(prev_path)
        model = copy.deepcopy(teacher)
        model.grow(seen - past)
        model = prepare_model(model, device, cfg.runtime)
        past_for_loss = past
        if learner.uses_replay:
            gpath = lay.generator(method, task)
            gckpt = load_checked(gpath, generator_hash(cfg, method, task), f"generator of task {task}")
            generator = build_generator(cfg, device)
            generator.load_state_dict(gckpt["state_dict"])
            inputs[str(gpath.relative_to(out))] = io.file_sha256(gpath)
    compile_features(model, cfg.runtime, device)
    resume = path.with_name(f"{path.stem}.{h}.partial.pt")  # in-task checkpoint of this config only
    t0 = time.perf_counter()
    history = fit_task(model, learner, data, cfg, device, past_for_loss, seen, cfg.train.epochs_for(task),
                       seed, teacher=teacher, generator=generator, resume_path=resume,
                       progress=cfg.runtime.progress)
    seconds = time.perf_counter() - t0
    uncompiled_features(model)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    io.save_torch(path, {"state_dict": state, "num_classes": seen, "arch": cfg.model.arch,
                         "shortcut": cfg.model.shortcut,
                         "history": history, "seconds": seconds, "device": device_name(device),
                         "meta": io.metadata(h, cfg.seed, inputs, stage="train", method=method, task=task,
                                             lineage_hash=lineage_hash(cfg))})
    if resume.exists():
        resume.unlink()
    log.info("train task %d (%s): %d epochs in %.1fs, last loss %.4f", task, lineage(method, task),
             cfg.train.epochs_for(task), seconds, history["loss"][-1] if history["loss"] else float("nan"))
    return path


# ---------------------------------------------------------------------------------------------
# 4. evaluate


def accuracy_matrix(cfg: Config, method: str, out: Path, device: torch.device, tests: list[TaskData],
                    meta: dict[str, Any]) -> tuple[metrics.AccuracyMatrix, float, list[dict[str, Any]]]:
    """A[i][n] for `method`, the training seconds of its models and their per-task training
    histories (all read from the same checkpoints)."""
    lay = Layout(out)
    rows, seconds, histories = [], 0.0, []
    for i in range(1, cfg.data.n_tasks + 1):
        seen, path, what = _seen(meta, i)[1], lay.model(method, i), f"θ({i}) of {method}"
        ckpt = load_checked(path, model_hash(cfg, method, i), what)
        seconds += ckpt.get("seconds", 0.0)
        histories.append(ckpt.get("history") or {})
        model = _model_from_checkpoint(ckpt, path, cfg, what, device, seen)
        rows.append(accuracy_row(model, tests[:i], seen, cfg, device))
    return metrics.AccuracyMatrix.from_rows(rows, [int(t.y.shape[0]) for t in tests]), seconds, histories


def first_task_accuracy(cfg: Config, out: Path, methods: list[str] | None = None) -> dict[str, float]:
    """Task-1 test accuracy (%) of θ(1) for every method whose θ(1) exists: the first cell of the
    accuracy matrix, readable before the later tasks are trained (a task-1 fidelity check costs one
    task). Writes `eval/first_task.json` ({method: accuracy}); methods that share θ(1) share a value."""
    lay = Layout(out)
    meta = _read_split(cfg, lay)
    device = configure(cfg.runtime)
    test = _test_sets(lay, 1, device)[0]
    seen = _seen(meta, 1)[1]
    by_lineage: dict[str, float] = {}
    result: dict[str, float] = {}
    for m in methods or cfg.methods:
        path = lay.model(m, 1)
        if not path.exists():
            continue
        if lineage(m, 1) not in by_lineage:
            what = f"θ(1) of {m}"
            model = _load_model(path, cfg, model_hash(cfg, m, 1), what, device, seen)
            by_lineage[lineage(m, 1)] = accuracy_row(model, [test], seen, cfg, device)[0]
        result[m] = by_lineage[lineage(m, 1)]
    if not result:
        raise DfcilError(f"{out}: no θ(1) of {', '.join(methods or cfg.methods)} to evaluate; train task 1 first")
    io.write_json(lay.eval_dir() / "first_task.json", {
        "seed": cfg.seed, "train_seed": cfg.training_seed, "task1_acc": result,
        "device_class": device_fingerprint(device)["device_class"], "code_version": io.code_version()})
    return result


def feature_diagnosis(cfg: Config, method: str, out: Path, device: torch.device,
                      meta: dict[str, Any], n: int = 500) -> dict[str, float]:
    """Section 5 / Appendix B after task 2: MID and MMD between θ(2)'s penultimate features of
    real task-1 vs synthetic task-1 images, and of real task-1 vs real task-2 images."""
    lay = Layout(out)
    model = _load_model(lay.model(method, 2), cfg, model_hash(cfg, method, 2), f"θ(2) of {method}", device)
    teacher = _load_model(lay.model(method, 1), cfg, model_hash(cfg, method, 1), f"θ(1) of {method}", device)
    gck = load_checked(lay.generator(method, 2), generator_hash(cfg, method, 2), "generator of task 2")
    generator = build_generator(cfg, device)
    generator.load_state_dict(gck["state_dict"])
    from dfcil_core.data import DeviceAugment

    norm = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device).normalize
    t1, t2 = _task_arrays(lay, 1), _task_arrays(lay, 2)
    past, _ = _seen(meta, 2)
    gen = torch.Generator(device=device).manual_seed(task_seed(cfg.training_seed, 2) + 90_000)
    with torch.no_grad():
        x_syn = torch.cat([sample_replay(generator, teacher, min(n, 250), past, gen)["x"]
                           for _ in range((n + 249) // 250)])[:n]
        feats = {
            "real_t1": model.forward_with_features(norm(torch.from_numpy(t1["test_x"][:n]).to(device)))[1],
            "syn_t1": model.forward_with_features(x_syn)[1],
            "real_t2": model.forward_with_features(norm(torch.from_numpy(t2["test_x"][:n]).to(device)))[1],
        }
    z = {k: v.float().cpu().numpy() for k, v in feats.items()}
    mid_syn, dropped_syn = metrics.mean_image_distance_detail(z["real_t1"], z["syn_t1"])
    mid_real, dropped_real = metrics.mean_image_distance_detail(z["real_t1"], z["real_t2"])
    return {
        "mid_real1_syn1": mid_syn,
        "mid_real1_real2": mid_real,
        # Both MIDs standardise by the real task-1 features, so they leave out the same dimensions.
        "mid_dims_left_out": max(dropped_syn, dropped_real),
        "feature_dims": int(z["real_t1"].shape[1]),
        "mmd_real1_syn1": metrics.mmd_rbf(z["real_t1"], z["syn_t1"]),
        "mmd_real1_real2": metrics.mmd_rbf(z["real_t1"], z["real_t2"]),
    }


def evaluate(cfg: Config, out: Path, methods: list[str] | None = None) -> dict[str, Any]:
    """Accuracy matrices, A_N, Ω, forgetting; plots; result tables (one row per method/run and
    one per method/task). Ω needs the upper bound's models (method `upper_bound`)."""
    methods = methods or cfg.methods
    lay = Layout(out)
    meta = _read_split(cfg, lay)
    device = configure(cfg.runtime)
    tests = _test_sets(lay, cfg.data.n_tasks, device)
    evaluated = {m: accuracy_matrix(cfg, m, out, device, tests, meta) for m in methods}
    matrices = {m: a for m, (a, _, _) in evaluated.items()}
    wall = {m: s for m, (_, s, _) in evaluated.items()}
    upper = matrices.get("upper_bound")
    if upper is None and all(lay.model("upper_bound", t).exists() for t in range(1, cfg.data.n_tasks + 1)):
        upper = accuracy_matrix(cfg, "upper_bound", out, device, tests, meta)[0]
    from dfcil_core import plots

    ev = lay.eval_dir()
    fingerprint = device_fingerprint(device)
    results: dict[str, Any] = {}
    run_rows, task_rows = [], []
    for m, a in matrices.items():
        summary = metrics.summarize(a, upper)
        results[m] = summary
        io.write_json(ev / m / "accuracy_matrix.json", a.to_dict())
        plots.accuracy_heatmap(a.values, ev / m / "accuracy_matrix.png", title=f"{m}: A[i][n] (%)")
        plots.training_curves(evaluated[m][2], ev / m / "training_losses.png",
                              title=f"{m}: training loss and its weighted terms, per epoch")
        run_rows.append({"name": cfg.name, "dataset": cfg.data.dataset, "n_tasks": cfg.data.n_tasks,
                         "method": m, "ablation": cfg.abd.ablation if m == "abd" else "none",
                         "seed": cfg.seed, "train_seed": cfg.training_seed, **summary, "train_seconds": wall[m],
                         "device": device_name(device), **fingerprint})
        for i, acc in enumerate(a.seen_curve(), start=1):
            ratio = 100 * acc / upper.seen_accuracy(i - 1) if upper is not None else None
            task_rows.append({"method": m, "seed": cfg.seed, "train_seed": cfg.training_seed, "task": i,
                              "acc_seen": acc, "omega_term": ratio})
    # Section 5 diagnosis for the data-free learners (after task 2).
    diagnosis = {}
    if cfg.data.n_tasks >= 2:
        for m in methods:
            if LEARNERS[m].uses_replay:
                diagnosis[m] = feature_diagnosis(cfg, m, out, device, meta)
        if diagnosis:
            io.write_json(ev / "diagnosis.json", diagnosis)
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
    import pandas as pd  # here: the training stages, processes of their own, need not pay its import

    tables = lay.root / "results"
    for name, rows in (("runs.csv", run_rows), ("tasks.csv", task_rows)):
        with io.atomic_path(tables / name) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.4f")
    # Per-task plot data for `dvc plots`: one row per task, one column per method.
    io.write_json(ev / "plot_accuracy.json",
                  [{"task": i + 1, **{m: a.seen_accuracy(i) for m, a in matrices.items()}} for i in range(cfg.data.n_tasks)])
    if upper is not None:
        io.write_json(ev / "plot_omega.json",
                      [{"task": i + 1, **{m: 100 * a.seen_accuracy(i) / upper.seen_accuracy(i) for m, a in matrices.items()}}
                       for i in range(cfg.data.n_tasks)])
    doc = {"methods": results, "diagnosis": diagnosis, "name": cfg.name, "seed": cfg.seed, "train_seed": cfg.training_seed,
           "dataset": cfg.data.dataset, "n_tasks": cfg.data.n_tasks, "config_hash": lineage_hash(cfg),
           "code_version": io.code_version()}
    io.write_json(lay.metrics_file(), doc)
    # Per-method flat metrics: `dvc metrics show` prints them as one readable row per method.
    for m, summary in results.items():
        io.write_json(lay.method_metrics_file(m), {k: v for k, v in summary.items() if v is not None})
    report.write(lay.root)
    return doc


# ---------------------------------------------------------------------------------------------
# The whole sequence, in-process, through the same stage functions


def run(cfg: Config, out: Path) -> dict[str, Any]:
    split(cfg, out)
    for task in range(1, cfg.data.n_tasks + 1):
        for method in cfg.methods:
            if task >= 2 and LEARNERS[method].uses_replay:
                synthesize(cfg, method, task, out)
            train(cfg, method, task, out)
    return evaluate(cfg, out)
