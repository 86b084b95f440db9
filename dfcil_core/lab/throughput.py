"""Throughput benchmark: (a) ResNet-32 CE step on real-sized data, (b) the full ABD step
(128 real + 128 synthetic + frozen teacher), (c) the generator inversion step; each for our
optimised path and for a plain eager baseline (fp32, contiguous, no compile), through the same
functions the pipeline trains with.
"""

from __future__ import annotations

import copy
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations import config as config_mod
from dfcil_core.method.augment import DeviceAugment
from dfcil_core.method.learners import make_learner
from dfcil_core.method.models import Generator, new_classifier
from dfcil_core.method.runtime import compile_features, configure, device_name, prepare_model
from dfcil_core.method.synthesis import BNStatisticsHooks, inversion_step, new_generator, prior_kernel
from dfcil_core.method.training import make_batch, make_optimizer, train_step
from dfcil_core.run.artifacts import Layout


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def _rate(seconds_per_step: float, images: int) -> dict[str, float]:
    return {"seconds_per_step": seconds_per_step, "images_per_s": images / seconds_per_step}


def time_run(cfg: config_mod.Config, out: Path) -> dict[str, Any]:
    """`run(cfg, out)`: its metrics, wall seconds and seconds per stage kind (from the stages' log
    records: split, synthesize, train, evaluate)."""
    from dfcil_core.run.sequence import run

    t0 = time.perf_counter()
    metrics = run(cfg, out)
    wall = time.perf_counter() - t0
    stage_seconds: dict[str, float] = {}
    for log in sorted(Layout(out).logs_dir.glob("*.json")):
        record = atomic_io.read_json(log)
        kind = record["stage"].split("_")[0]
        stage_seconds[kind] = stage_seconds.get(kind, 0.0) + record.get("seconds", 0.0)
    return {"wall_seconds": wall, "stage_seconds": stage_seconds, "metrics": metrics}


def frozen_teacher(cfg: config_mod.Config, past: int, new: int, device: torch.device) -> torch.nn.Module:
    """A seeded θ over `past` classes (head rows for `past + new`), frozen, in eval mode."""
    torch.manual_seed(0)
    teacher = prepare_model(new_classifier(cfg, past, head_size=past + new), device, cfg.runtime).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def grown_student(teacher: torch.nn.Module, new: int, rt: config_mod.RuntimeConfig, device: torch.device) -> torch.nn.Module:
    """The teacher grown by `new` classes, trainable, in train mode, compiled where `rt` asks."""
    student = copy.deepcopy(teacher)
    student.grow(new)
    for p in student.parameters():
        p.requires_grad_(True)
    return compile_features(prepare_model(student, device, rt).train(), rt, device)


def random_batch(cfg: config_mod.Config, labels: tuple[int, int],
                  device: torch.device) -> tuple[torch.Generator, torch.Tensor, torch.Tensor]:
    """A benchmark's batch: the augmentation's seeded generator, `train.batch_size` random uint8
    images and labels drawn from [labels[0], labels[1]) (the global RNG, as the caller has seeded it)."""
    bs, size = cfg.train.batch_size, cfg.data.image_size
    gen = torch.Generator(device=device).manual_seed(0)
    x_u8 = torch.randint(0, 256, (bs, 3, size, size), dtype=torch.uint8, device=device)
    return gen, x_u8, torch.randint(*labels, (bs,), device=device)


def shaped_config(shape: dict[str, Any], batch_size: int, runtime: dict[str, Any]) -> dict[str, Any]:
    """A benchmark's config sections: `shape`'s dataset, network and generator (`preset_shape`; {} for
    CIFAR-100's ResNet-32) at `batch_size` for training and replay, under `runtime`."""
    return {**{k: v for k, v in shape.items() if k != "synthesis"}, "train": {"batch_size": batch_size},
            "synthesis": {**shape.get("synthesis", {}), "batch_size": batch_size, "replay_batch_size": batch_size},
            "runtime": runtime}


def measure(cfg: config_mod.Config, steps: int = 10, warmup: int = 3, past: int = 10,
            new: int = 10) -> dict[str, Any]:
    """Seconds per step and images/s for (a), (b), (c) under `cfg.runtime`."""
    device = configure(cfg.runtime)
    rt, bs = cfg.runtime, cfg.train.batch_size
    teacher = frozen_teacher(cfg, past, new, device)
    student = grown_student(teacher, new, rt, device)
    generator = prepare_model(Generator(cfg.synthesis.z_dim, cfg.data.image_size), device, rt).eval()
    augment = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device, cfg.data.color_jitter)
    gen, x_u8, y = random_batch(cfg, (past, past + new), device)
    opt, _ = make_optimizer(student, cfg, 1, device)
    ce, abd = make_learner("base", cfg), make_learner("abd", cfg)

    def ce_step() -> None:
        train_step(student, ce, make_batch(x_u8, y, augment, gen, cfg, 0, past + new, None, None), opt, device, rt.amp)

    def abd_step() -> None:
        b = make_batch(x_u8, y, augment, gen, cfg, past, past + new, teacher, generator)
        train_step(student, abd, b, opt, device, rt.amp)

    gen_train, gopt = new_generator(cfg, device)
    gen_train.train()
    kernel = prior_kernel(cfg.synthesis).to(device)

    out: dict[str, Any] = {}
    for name, fn, images in (("ce_step", ce_step, bs), ("abd_step", abd_step, bs + cfg.synthesis.replay_batch_size)):
        out[name] = _rate(time_call(fn, steps, warmup, device), images)
    hooks = BNStatisticsHooks(teacher)  # on the teacher only while the generator trains, as in synthesis
    try:
        sec = time_call(lambda: inversion_step(gen_train, gopt, teacher, hooks, past, cfg.synthesis, kernel, rt.amp),
                    steps, warmup, device)
    finally:
        hooks.remove()
    out["generator_step"] = _rate(sec, cfg.synthesis.batch_size)
    return out


REPLAY_METHODS = ("rehearsal", "lwf_coreset", "e2e", "bic", "dgr")


def replay_steps(cfg: config_mod.Config, steps: int = 10, warmup: int = 3, past: int = 10,
                 new: int = 10, methods: tuple[str, ...] = REPLAY_METHODS, rounds: int = 3) -> dict[str, Any]:
    """Seconds per step of the replay comparisons beside Base's CE step, on the same batch of
    `train.batch_size` real images (coreset images are real images: the coreset methods' steps see
    no more of them than Base's), and each one's ratio to Base: Naive Rehearsal's is Base's step;
    LwF + coreset, E2E (phase A) and BiC (stage 1) add the frozen teacher's forward; DGR's joins as
    many VAE-decoded images and steps the VAE on both.

    A shared machine drifts by 10-20 % within a minute, so each method is timed in `rounds` pairs
    right after Base, and its ratio is the median over its pairs (`ratio_rounds`: every pair's)."""
    from dfcil_core.method.models import VariationalAutoencoder

    device = configure(cfg.runtime)
    rt, bs = cfg.runtime, cfg.train.batch_size
    teacher = frozen_teacher(cfg, past, new, device)
    gen, x_u8, y = random_batch(cfg, (0, past + new), device)
    step_of = {}
    for method in ("base", *methods):
        student = grown_student(teacher, new, rt, device)
        learner = make_learner(method, cfg)
        learner.blocks = [(0, past)]
        augment = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device, cfg.data.color_jitter,
                                unit_range=learner.spec.inputs == "unit")
        replayer = None
        if method == "dgr":
            learner.attach_vae(VariationalAutoencoder(cfg.dgr.z_dim, cfg.data.image_size).to(device))
            learner.start_vae(1)
            replayer = copy.deepcopy(learner.vae).eval()
        opt, _ = make_optimizer(student, cfg, 1, device)

        def step(learner=learner, student=student, opt=opt, replayer=replayer, augment=augment) -> None:
            b = make_batch(x_u8, y, augment, gen, cfg, past, past + new, teacher, replayer, bs)
            train_step(student, learner, b, opt, device, rt.amp)
            learner.after_step(student, b, gen)

        step_of[method] = step
    seconds: dict[str, list[float]] = {m: [] for m in step_of}
    ratios: dict[str, list[float]] = {m: [] for m in methods}
    for method in methods:
        for _ in range(rounds):
            base = time_call(step_of["base"], steps, warmup, device)
            mine = time_call(step_of[method], steps, warmup, device)
            seconds["base"].append(base)
            seconds[method].append(mine)
            ratios[method].append(mine / base)
    out: dict[str, Any] = {f"{m}_step": _rate(statistics.median(v), bs) for m, v in seconds.items()}
    out["ratio_to_base"] = {m: statistics.median(v) for m, v in ratios.items()}
    out["ratio_rounds"] = ratios
    return out


def teacher_forward_costs(cfg: config_mod.Config, steps: int = 10, warmup: int = 3, past: int = 10,
                          new: int = 10) -> dict[str, Any]:
    """What the frozen teacher's forward adds to a step, side by side: Base's CE step on a batch of
    `train.batch_size`, the teacher's forward on that batch as training runs it (float32, eval mode)
    and, for comparison only, under bfloat16 autocast, with the largest deviation of those logits
    from the float32 ones (relative to their largest magnitude). `kd_ratio_*`: (CE step + forward) /
    CE step, the floor of a distilling step."""
    device = configure(cfg.runtime)
    rt = cfg.runtime
    teacher = frozen_teacher(cfg, past, new, device)
    student = grown_student(teacher, new, rt, device)
    gen, x_u8, y = random_batch(cfg, (0, past + new), device)
    augment = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device, cfg.data.color_jitter)
    x = augment(x_u8, gen)
    opt, _ = make_optimizer(student, cfg, 1, device)
    ce = make_learner("base", cfg)

    def forward(low: bool = False) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=low):
            return teacher.forward_with_features(x)[0].float()

    out: dict[str, Any] = {"ce_step": time_call(lambda: train_step(student, ce, make_batch(
        x_u8, y, augment, gen, cfg, 0, past + new, None, None), opt, device, rt.amp), steps, warmup, device)}
    for name, fn in (("teacher", forward), ("teacher_bf16", lambda: forward(low=True))):
        out[name] = time_call(fn, steps, warmup, device)
        out[f"kd_ratio{name.removeprefix('teacher')}"] = (out["ce_step"] + out[name]) / out["ce_step"]
    ref = forward()
    out["bf16_max_rel_dev"] = float((forward(low=True) - ref).abs().max()) / float(ref.abs().max())
    return out


def preset_shape(preset: str) -> tuple[dict[str, Any], int]:
    """What a preset's steps are made of (dataset, image size, network; its batch size): the config
    sections `run_benchmark(shape=...)` takes and `train.batch_size`."""
    cfg = config_mod.load(preset=preset)
    return ({"data": {"dataset": cfg.data.dataset, "image_size": cfg.data.image_size,
                      "color_jitter": cfg.data.color_jitter},
             "model": {"arch": cfg.model.arch}, "synthesis": {"z_dim": cfg.synthesis.z_dim}},
            cfg.train.batch_size)


def run_benchmark(steps: int = 10, warmup: int = 3, batch_size: int = 128, device: str = "auto",
                  compile_model: bool = False, runtime: dict[str, Any] | None = None,
                  shape: dict[str, Any] | None = None) -> dict[str, Any]:
    """Eager baseline vs our runtime defaults, with `compile_model` / `runtime` overrides for ours;
    `shape` (from `preset_shape`): another dataset's images and network than CIFAR-100's ResNet-32."""
    shape = shape or {}
    base = shaped_config(shape, batch_size, {"device": device, "progress": False})
    ours_rt = {**base["runtime"], "compile": compile_model, **(runtime or {})}
    ours = config_mod.from_dict({**base, "runtime": ours_rt})
    eager = config_mod.from_dict({**base, "runtime": {**base["runtime"], "amp": False, "channels_last": False}})
    dev = configure(ours.runtime)
    result = {
        "device": device_name(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "python": platform.python_version(), "batch_size": batch_size, "steps": steps, "shape": shape,
        "runtime": ours.runtime.model_dump(),
        "eager_baseline": measure(eager, steps, warmup),
        "optimised": measure(ours, steps, warmup),
    }
    result["speedup"] = {k: result["eager_baseline"][k]["seconds_per_step"] / result["optimised"][k]["seconds_per_step"]
                         for k in result["optimised"]}
    return result
