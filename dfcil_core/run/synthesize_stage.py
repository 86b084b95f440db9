"""Stage 2, synthesize: the generator for task t, inverted from the frozen θ(t-1) (Eq. 1-7)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from dfcil_core.foundations import atomic_io, registry
from dfcil_core.foundations.config import Config
from dfcil_core.foundations.errors import DfcilError, Diverged
from dfcil_core.method.datasets import CHANNEL_STATS
from dfcil_core.method.runtime import compile_module, configure, device_record, step_begin, task_seed
from dfcil_core.method.synthesis import new_generator, replay_class_shares, sample_replay, synthesize_generator
from dfcil_core.run.artifacts import (
    Layout,
    check_existing,
    check_task,
    class_blocks,
    generator_hash,
    input_hashes,
    load_checked,
    read_split,
    seen_classes,
    stage_name,
    write_stage_log,
)
from dfcil_core.run.checkpoints import load_model

log = logging.getLogger("dfcil")


def synthesize(cfg: Config, method: str, task: int, out: Path) -> Path:
    """Train the generator for task `task` by inverting θ(task-1); the generator and its optimiser
    carry on from the previous task's where the method carries them (`registry.continues_generator`).
    Writes the checkpoint, a sample grid and loss curves."""
    check_task(cfg, task)
    if task < 2:
        raise DfcilError("synthesize: task must be >= 2 (task 1 has no previous model)")
    if not registry.replays_inverted(method, task):
        raise DfcilError(f"synthesize: method {method!r} does not replay synthetic data")
    lay = Layout(out)
    path = lay.generator(method, task)
    h = generator_hash(cfg, method, task)
    if check_existing(path, h):
        log.info("synthesize task %d (%s): up to date", task, method)
        return path
    meta = read_split(cfg, lay)
    device = configure(cfg.runtime)
    past, _ = seen_classes(meta, task)
    teacher_path = lay.model(method, task - 1)
    teacher = load_model(cfg, teacher_path, method, task - 1, device, past)
    torch.manual_seed(task_seed(cfg.training_seed, task) + 50_000)
    generator, opt = new_generator(cfg, device)
    inputs = [teacher_path]
    if registry.continues_generator(method, task):
        prev_path = lay.generator(method, task - 1)
        prev = load_checked(prev_path, generator_hash(cfg, method, task - 1), f"generator of task {task - 1}")
        generator.load_state_dict(prev["state_dict"])
        opt.load_state_dict(prev["optimizer"])
        inputs.append(prev_path)
    t0 = time.perf_counter()
    bar = None
    if cfg.runtime.progress and cfg.synthesis.steps > 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.synthesis.steps, desc=f"synthesize task {task}", unit="step", leave=False)
    compile_module(generator, cfg.runtime, device)

    def after_step(_step: int) -> None:
        step_begin(cfg.runtime)  # the next step may overwrite this one's CUDA-graph outputs
        if bar is not None:
            bar.update(1)

    try:
        curves = synthesize_generator(generator, opt, teacher, past, cfg.synthesis, on_step=after_step,
                                      amp=cfg.runtime.amp)
    except Diverged as err:
        raise Diverged(f"synthesize {method} task {task}: {err}; no generator was written. Likely cause: the "
                       f"inversion's learning rate (synthesis.lr {cfg.synthesis.lr:g}); lower it and re-run") from None
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    atomic_io.save_torch(path, {"state_dict": generator.state_dict(), "optimizer": opt.state_dict(),
                                "curves": curves, "past": past,
                                "meta": atomic_io.metadata(h, cfg.seed, input_hashes(out, inputs),
                                                           stage="synthesize", task=task)})
    # Figures beside the checkpoint: what the generator dreams, and how its losses went. (matplotlib
    # is imported where a stage plots: the training stages, one process each, never need it.)
    from dfcil_core.run import generator_plots

    gen = torch.Generator(device=device).manual_seed(0)
    replay = sample_replay(generator, teacher, 64, past, gen)
    order = torch.argsort(replay["labels"], stable=True)
    mean, std = CHANNEL_STATS[cfg.data.dataset]
    names = meta.get("class_names") or [f"class {c}" for c in meta["class_order"]]
    generator_plots.sample_grid(replay["x"][order], mean, std, path.with_name(f"samples_task_{task}.png"),
                                title=f"synthetic past classes before task {task}: what θ({task - 1}) calls each image",
                                labels=[names[int(i)] for i in replay["labels"][order]])
    generator_plots.loss_curves(curves, path.with_name(f"losses_task_{task}.png"),
                                title=f"inversion losses, task {task}")
    shares = replay_class_shares(generator, teacher, past, class_blocks(meta, task - 1), gen=gen)
    write_stage_log(out, stage_name("synthesize", method, task), seconds=seconds, **device_record(device),
                    steps=cfg.synthesis.steps, replay=shares)
    log.info("synthesize task %d (%s): %d steps in %.1fs, final loss %.4f; replay draws old tasks %s, %d of %d "
             "classes", task, registry.lineage(method, task - 1), cfg.synthesis.steps, seconds,
             curves["total"][-1] if curves["total"] else float("nan"),
             " / ".join(f"{s:.0%}" for s in shares["share_by_task"]), shares["classes_drawn"], past)
    return path
