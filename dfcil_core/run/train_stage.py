"""Stage 3, train: θ(t) of one method's lineage from θ(t-1), the generator (data-free replay) and
task t's real data, through the one training loop."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import numpy as np
import torch

from dfcil_core.foundations import atomic_io, registry
from dfcil_core.foundations.config import Config
from dfcil_core.foundations.errors import Diverged
from dfcil_core.method.coreset import Coreset, task_entries
from dfcil_core.method.learners import make_learner
from dfcil_core.method.models import new_classifier
from dfcil_core.method.runtime import compile_features, configure, device_record, prepare_model, task_seed
from dfcil_core.method.task_inputs import TaskData, TaskInputs, to_device
from dfcil_core.method.training import fit_task
from dfcil_core.run.artifacts import (
    Layout,
    check_existing,
    check_task,
    class_blocks,
    coreset_hash,
    input_hashes,
    model_hash,
    read_split,
    seen_classes,
    stage_name,
    task_arrays,
    write_stage_log,
)
from dfcil_core.run.checkpoints import load_coreset, load_generator, load_model, load_vae, new_vae

log = logging.getLogger("dfcil")


def coreset_images(lay: Layout, kept: Coreset, device: torch.device) -> TaskData:
    """The coreset's images and classes, gathered from the split's training arrays, in its order."""
    x = np.zeros((len(kept), *task_arrays(lay, 1)["train_x"].shape[1:]), np.uint8)
    for t in np.unique(kept.refs[:, 0]):
        at = kept.refs[:, 0] == t
        x[at] = task_arrays(lay, int(t))["train_x"][kept.refs[at, 1]]
    return to_device(x, kept.labels, device)


def train(cfg: Config, method: str, task: int, out: Path) -> Path:
    """θ(task) for `method` from θ(task-1), the generator (data-free methods) and task data."""
    check_task(cfg, task)
    learner = make_learner(method, cfg)
    spec = learner.spec
    lay = Layout(out)
    path = lay.model(method, task)
    h = model_hash(cfg, method, task)
    family = registry.lineage(method, task)
    if check_existing(path, h):
        log.info("train task %d (%s): up to date", task, family)
        return path
    meta = read_split(cfg, lay)
    device = configure(cfg.runtime)
    past, seen = seen_classes(meta, task)
    tasks = range(1, task + 1) if spec.cumulative_data else [task]
    arrays = {t: task_arrays(lay, t) for t in tasks}
    data = to_device(np.concatenate([arrays[t]["train_x"] for t in tasks]),
                     np.concatenate([arrays[t]["train_y"] for t in tasks]), device)
    inputs = [lay.task_file(t) for t in tasks]
    task_inputs = TaskInputs(new=data, new_refs=task_entries(arrays[task]["train_y"], task) if len(tasks) == 1 else None,
                             seed=cfg.training_seed, task=task, blocks=class_blocks(meta, task))
    if registry.uses_coreset(method, task):
        cpath = lay.coreset(method, task - 1)
        kept = load_coreset(cfg, cpath, method, task - 1)
        inputs.append(cpath)
        task_inputs.coreset, task_inputs.coreset_refs = coreset_images(lay, kept, device), kept
    seed = task_seed(cfg.training_seed, task)
    torch.manual_seed(seed)
    teacher = generator = None
    carried: dict = {}
    if not registry.starts_from_previous(method, task):
        model = prepare_model(new_classifier(cfg, seen), device, cfg.runtime)
        past_for_loss = 0
    else:
        prev_path = lay.model(method, task - 1)
        teacher = load_model(cfg, prev_path, method, task - 1, device, past)
        carried = atomic_io.load_torch(prev_path).get("carry", {})
        inputs.append(prev_path)
        model = copy.deepcopy(teacher)
        model.grow(seen - past)
        model = prepare_model(model, device, cfg.runtime)
        past_for_loss = past
        if registry.replays_inverted(method, task):
            gpath = lay.generator(method, task)
            generator = load_generator(cfg, gpath, method, task, device)
            inputs.append(gpath)
    learner.take_carry(carried)
    if spec.replay == "generative":  # DGR: the live VAE carries on; a frozen copy replays
        if task == 1:
            vae = new_vae(cfg, device)
        else:
            vae = load_vae(cfg, lay.vae(method, task - 1), method, task - 1, device)
            generator = copy.deepcopy(vae).eval()
            inputs.append(lay.vae(method, task - 1))
        learner.attach_vae(vae)
    compile_features(model, cfg.runtime, device)
    resume = path.with_name(f"{path.stem}.{h}.partial.pt")  # in-task checkpoint of this config only
    t0 = time.perf_counter()
    try:
        history = fit_task(model, learner, task_inputs, cfg, device, past_for_loss, seen, cfg.train.epochs_for(task),
                           seed, teacher=teacher, generator=generator, resume_path=resume,
                           progress=cfg.runtime.progress)
    except Diverged as err:
        resume.unlink(missing_ok=True)  # this config's in-task state is no place to resume from
        raise Diverged(f"train {method} task {task}: {err}; nothing of task {task} was written. Likely cause: "
                       f"the learning rate (train.lr {cfg.train.lr:g}); lower it and re-run") from None
    seconds = time.perf_counter() - t0
    timing = {k: history.pop(k) for k in ("seconds", "images_per_s")}  # differs run to run: the log's
    meta_out = atomic_io.metadata(h, cfg.seed, input_hashes(out, inputs), stage="train", lineage=family, task=task)
    # What else this stage keeps is written first: θ(task) last marks the stage complete.
    if spec.replay == "generative":
        atomic_io.save_torch(lay.vae(method, task), {"state_dict": {k: v.cpu() for k, v in learner.vae.state_dict().items()},
                                                     "z_dim": cfg.dgr.z_dim, "meta": meta_out})
    if registry.coreset_selected_in_training(method, task) and registry.keeps_coreset(method, task, cfg.data.n_tasks):
        atomic_io.write_json(lay.coreset(method, task), {
            **atomic_io.metadata(coreset_hash(cfg, method, task), cfg.training_seed, input_hashes(out, inputs),
                                 stage="train", lineage=registry.coreset_lineage(method), task=task,
                                 selection=spec.coreset.selection),
            **learner.selected.to_json()})
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    ckpt = {"state_dict": state, "num_classes": seen, "arch": cfg.model.arch, "shortcut": cfg.model.shortcut,
            "history": history, "meta": meta_out}
    if learner.carry():
        ckpt["carry"] = learner.carry()
    atomic_io.save_torch(path, ckpt)
    write_stage_log(out, stage_name("train", method, task), seconds=seconds, **device_record(device),
                    epoch_seconds=timing["seconds"], images_per_s=timing["images_per_s"])
    if resume.exists():
        resume.unlink()
    log.info("train task %d (%s): %d epochs in %.1fs, last loss %.4f", task, family,
             cfg.train.epochs_for(task), seconds, history["loss"][-1] if history["loss"] else float("nan"))
    return path
