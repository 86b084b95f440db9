"""Throughput benchmark: (a) ResNet-32 CE step on real-sized data, (b) the full ABD step
(128 real + 128 synthetic + frozen teacher), (c) the generator inversion step; each for our
optimised path and for a plain eager baseline (fp32, contiguous, no compile), through the same
functions the pipeline trains with.
"""

from __future__ import annotations

import copy
import platform
import time
from typing import Any

import torch

from dfcil_core import config as config_mod
from dfcil_core.data import DeviceAugment
from dfcil_core.learners import make_learner
from dfcil_core.losses import gaussian_kernel
from dfcil_core.models import Generator, IncrementalClassifier
from dfcil_core.runtime import autocast, compile_features, configure, device_name, fused_if_supported, prepare_model
from dfcil_core.synthesis import BNStatisticsHooks, inversion_loss
from dfcil_core.training import make_batch, make_optimizer, train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def measure(cfg: config_mod.Config, steps: int = 10, warmup: int = 3, past: int = 10,
            new: int = 10) -> dict[str, Any]:
    """Seconds per step and images/s for (a), (b), (c) under `cfg.runtime`."""
    device = configure(cfg.runtime)
    rt, bs = cfg.runtime, cfg.train.batch_size
    torch.manual_seed(0)
    teacher = prepare_model(IncrementalClassifier(cfg.model.arch, cfg.data.image_size, past), device, rt).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = copy.deepcopy(teacher)
    student.grow(new)
    for p in student.parameters():
        p.requires_grad_(True)
    student = compile_features(prepare_model(student, device, rt).train(), rt, device)
    generator = prepare_model(Generator(cfg.synthesis.z_dim, cfg.data.image_size), device, rt).eval()
    augment = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device)
    gen = torch.Generator(device=device).manual_seed(0)
    x_u8 = torch.randint(0, 256, (bs, 3, cfg.data.image_size, cfg.data.image_size), dtype=torch.uint8, device=device)
    y = torch.randint(past, past + new, (bs,), device=device)
    opt, _ = make_optimizer(student, cfg, 1, device)
    ce, abd = make_learner("base", cfg), make_learner("abd", cfg)

    def ce_step() -> None:
        train_step(student, ce, make_batch(x_u8, y, augment, gen, cfg, 0, past + new, None, None), opt, device, rt.amp)

    def abd_step() -> None:
        b = make_batch(x_u8, y, augment, gen, cfg, past, past + new, teacher, generator)
        train_step(student, abd, b, opt, device, rt.amp)

    gen_train = prepare_model(Generator(cfg.synthesis.z_dim, cfg.data.image_size), device, rt).train()
    gopt = torch.optim.Adam(gen_train.parameters(), lr=cfg.synthesis.lr, **fused_if_supported(device))
    kernel = gaussian_kernel().to(device)
    hooked: dict[str, BNStatisticsHooks] = {}

    def generator_step() -> None:
        gopt.zero_grad(set_to_none=True)
        with autocast(device, rt.amp):
            loss = inversion_loss(gen_train, teacher, hooked["teacher"], past, cfg.synthesis, kernel)["total"]
        loss.backward()
        gopt.step()

    out: dict[str, Any] = {}
    for name, fn, images in (("ce_step", ce_step, bs), ("abd_step", abd_step, bs + cfg.synthesis.replay_batch_size),
                             ("generator_step", generator_step, cfg.synthesis.batch_size)):
        # BN-statistics hooks sit on the teacher only while the generator trains, as in synthesis.
        if name == "generator_step":
            hooked["teacher"] = BNStatisticsHooks(teacher)
        try:
            sec = _time(fn, steps, warmup, device)
        finally:
            if "teacher" in hooked:
                hooked.pop("teacher").remove()
        out[name] = {"seconds_per_step": sec, "images_per_s": images / sec}
    return out


def run_benchmark(steps: int = 10, warmup: int = 3, batch_size: int = 128, device: str = "auto",
                  compile_model: bool = False, runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """Eager baseline vs our runtime defaults, with `compile_model` / `runtime` overrides for ours."""
    base = {"train": {"batch_size": batch_size},
            "synthesis": {"batch_size": batch_size, "replay_batch_size": batch_size},
            "runtime": {"device": device, "progress": False}}
    ours_rt = {**base["runtime"], "compile": compile_model, **(runtime or {})}
    ours = config_mod.from_dict({**base, "runtime": ours_rt})
    eager = config_mod.from_dict({**base, "runtime": {**base["runtime"], "amp": False, "channels_last": False}})
    dev = configure(ours.runtime)
    result = {
        "device": device_name(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "python": platform.python_version(), "batch_size": batch_size, "steps": steps,
        "runtime": ours.runtime.model_dump(),
        "eager_baseline": measure(eager, steps, warmup),
        "optimised": measure(ours, steps, warmup),
    }
    result["speedup"] = {k: result["eager_baseline"][k]["seconds_per_step"] / result["optimised"][k]["seconds_per_step"]
                         for k in result["optimised"]}
    return result
