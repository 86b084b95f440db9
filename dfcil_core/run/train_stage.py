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
from dfcil_core.method.learners import make_learner
from dfcil_core.method.models import new_classifier
from dfcil_core.method.runtime import compile_features, configure, device_name, prepare_model, task_seed
from dfcil_core.method.training import fit_task, to_device
from dfcil_core.run.artifacts import (
    Layout,
    check_existing,
    check_task,
    input_hashes,
    model_hash,
    read_split,
    seen_classes,
    stage_name,
    task_arrays,
    write_stage_log,
)
from dfcil_core.run.checkpoints import load_generator, load_model

log = logging.getLogger("dfcil")


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
    arrays = [task_arrays(lay, t) for t in tasks]
    data = to_device(np.concatenate([a["train_x"] for a in arrays]),
                     np.concatenate([a["train_y"] for a in arrays]), device)
    inputs = [lay.task_file(t) for t in tasks]
    seed = task_seed(cfg.training_seed, task)
    torch.manual_seed(seed)
    teacher = generator = None
    if not registry.starts_from_previous(method, task):
        model = prepare_model(new_classifier(cfg, seen), device, cfg.runtime)
        past_for_loss = 0
    else:
        prev_path = lay.model(method, task - 1)
        teacher = load_model(cfg, prev_path, method, task - 1, device, past)
        inputs.append(prev_path)
        model = copy.deepcopy(teacher)
        model.grow(seen - past)
        model = prepare_model(model, device, cfg.runtime)
        past_for_loss = past
        if registry.replays_inverted(method, task):
            gpath = lay.generator(method, task)
            generator = load_generator(cfg, gpath, method, task, device)
            inputs.append(gpath)
    compile_features(model, cfg.runtime, device)
    resume = path.with_name(f"{path.stem}.{h}.partial.pt")  # in-task checkpoint of this config only
    t0 = time.perf_counter()
    try:
        history = fit_task(model, learner, data, cfg, device, past_for_loss, seen, cfg.train.epochs_for(task),
                           seed, teacher=teacher, generator=generator, resume_path=resume,
                           progress=cfg.runtime.progress)
    except Diverged as err:
        resume.unlink(missing_ok=True)  # this config's in-task state is no place to resume from
        raise Diverged(f"train {method} task {task}: {err}; nothing of task {task} was written. Likely cause: "
                       f"the learning rate (train.lr {cfg.train.lr:g}); lower it and re-run") from None
    seconds = time.perf_counter() - t0
    timing = {k: history.pop(k) for k in ("seconds", "images_per_s")}  # differs run to run: the log's
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    atomic_io.save_torch(path, {"state_dict": state, "num_classes": seen, "arch": cfg.model.arch,
                                "shortcut": cfg.model.shortcut, "history": history,
                                "meta": atomic_io.metadata(h, cfg.seed, input_hashes(out, inputs), stage="train",
                                                           lineage=family, task=task)})
    write_stage_log(out, stage_name("train", method, task), seconds=seconds, device=device_name(device),
                    epoch_seconds=timing["seconds"], images_per_s=timing["images_per_s"])
    if resume.exists():
        resume.unlink()
    log.info("train task %d (%s): %d epochs in %.1fs, last loss %.4f", task, family,
             cfg.train.epochs_for(task), seconds, history["loss"][-1] if history["loss"] else float("nan"))
    return path
