"""Stage 3b, coreset: the coreset a replay method keeps after task t, for task t+1.

A random coreset (Naive Rehearsal, LwF + coreset, which share it) depends on the data alone: the
split, the coreset before it and the training seed. A ranked one is ranked by θ(t) (E2E after task 1,
BiC after every task); E2E's later coresets are ranked between its training phases, so its training
stage writes them. The file records which images (task, row of the split's training arrays) in the
authors' order, duplicates kept (`dfcil_core.method.coreset`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from dfcil_core.foundations import atomic_io, registry
from dfcil_core.foundations.config import Config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.method import coreset
from dfcil_core.method.augment import DeviceAugment
from dfcil_core.method.models import penultimate_features
from dfcil_core.method.runtime import configure, device_name
from dfcil_core.run.artifacts import (
    Layout,
    check_existing,
    check_task,
    coreset_hash,
    input_hashes,
    read_split,
    stage_name,
    task_arrays,
    write_stage_log,
)
from dfcil_core.run.checkpoints import load_coreset, load_model

log = logging.getLogger("dfcil")


def replayed(cfg: Config, method: str, task: int, previous: coreset.Coreset, n_new: int) -> coreset.Coreset:
    """What task `task`'s training set took of the coreset before it: the draws, or the coreset."""
    spec = registry.method(method).coreset
    if spec.mix == "resampled":
        return coreset.resampled(previous, n_new, cfg.training_seed, task)
    return previous


def select_coreset(cfg: Config, method: str, task: int, out: Path) -> Path:
    """Write the coreset `method` keeps after task `task` (not E2E's after task >= 2: its training
    stage does)."""
    check_task(cfg, task)
    if registry.method(method).coreset is None:
        raise DfcilError(f"coreset: method {method!r} keeps no coreset")
    if registry.coreset_selected_in_training(method, task):
        raise DfcilError(f"coreset: {method}'s coreset of task {task} is written by its training stage")
    lay = Layout(out)
    path = lay.coreset(method, task)
    h = coreset_hash(cfg, method, task)
    if check_existing(path, h):
        log.info("coreset task %d (%s): up to date", task, registry.coreset_lineage(method))
        return path
    t0 = time.perf_counter()
    read_split(cfg, lay)  # refused when made under another config
    spec = registry.method(method).coreset
    labels = task_arrays(lay, task)["train_y"]
    previous, inputs = coreset.Coreset.empty(), [lay.task_file(task)]
    if task >= 2:
        previous = load_coreset(cfg, lay.coreset(method, task - 1), method, task - 1)
        inputs.append(lay.coreset(method, task - 1))
    cands = coreset.candidates(coreset.task_entries(labels, task), replayed(cfg, method, task, previous, len(labels)))
    device = None
    if spec.selection == "random":
        kept = coreset.select_random(cands, cfg.coreset.size, cfg.training_seed, task)
    else:
        device = configure(cfg.runtime)
        model_path = lay.model(method, task)
        model = load_model(cfg, model_path, method, task, device)
        inputs.append(model_path)
        images = torch.from_numpy(task_arrays(lay, task)["train_x"]).to(device)
        normalize = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device).normalize

        def features_of(refs: np.ndarray) -> np.ndarray:
            if not (refs[:, 0] == task).all():  # only a new class is ranked: its images are this task's
                raise ValueError("a ranked class's candidates come from the new task")
            return penultimate_features(model, images[torch.from_numpy(refs[:, 1])], normalize)

        kept = coreset.select_ranked(cands, previous, cfg.coreset.size, spec.selection, features_of)
    atomic_io.write_json(path, {**atomic_io.metadata(h, cfg.training_seed, input_hashes(out, inputs), stage="coreset",
                                                     lineage=spec.lineage, task=task, selection=spec.selection),
                                **kept.to_json()})
    write_stage_log(out, stage_name("coreset", method, task), seconds=time.perf_counter() - t0,
                    device=device_name(device) if device is not None else "cpu")
    log.info("coreset task %d (%s): %d images (%d distinct) of %d classes", task, spec.lineage, len(kept),
             len({tuple(r) for r in kept.refs.tolist()}), len(np.unique(kept.labels)))
    return path
