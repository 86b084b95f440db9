"""Ways to run the frozen teacher's forward, timed side by side with Base's CE step on one batch.

A distilling step (LwF, E2E, BiC, ABD) is Base's CE step plus one forward of the frozen previous model,
so (CE step + forward) / CE step is the floor of its ratio to Base. This times, interleaved over
`--rounds` rounds (this machine drifts 10-20 % within a minute): the CE step; the teacher's forward as
training runs it (eager, float32, channels-last, inference mode); the same forward compiled by inductor
with its weights frozen into the graph (BatchNorm folded, weights prepacked); TorchScript's frozen and
`optimize_for_inference` graph; and eager under bfloat16 autocast. Each variant's logits are compared with
the eager ones (largest deviation relative to their largest magnitude).

    python benchmarks/teacher_forward.py --out outputs/bench/teacher_forward.json   # ~2 min, 2 cores
"""

from __future__ import annotations

import argparse
import copy
import datetime
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations import config as config_mod
from dfcil_core.lab.throughput import frozen_teacher, grown_student, random_batch, shaped_config, time_call
from dfcil_core.method.augment import DeviceAugment
from dfcil_core.method.learners import make_learner
from dfcil_core.method.models import IncrementalClassifier
from dfcil_core.method.runtime import configure, device_fingerprint
from dfcil_core.method.training import make_batch, make_optimizer, train_step


class _Logits(torch.nn.Module):
    """The teacher's logits as a module's forward (what tracing and compiling take)."""

    def __init__(self, model: IncrementalClassifier):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_with_features(x)[0]


def measure(batch: int, rounds: int, steps: int, warmup: int, past: int = 10, new: int = 10) -> dict[str, Any]:
    cfg = config_mod.from_dict(shaped_config({}, batch, {"device": "cpu", "progress": False}))
    device = configure(cfg.runtime)
    teacher = frozen_teacher(cfg, past, new, device)
    student = grown_student(teacher, new, cfg.runtime, device)
    gen, x_u8, y = random_batch(cfg, (0, past + new), device)
    augment = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device, cfg.data.color_jitter)
    x = augment(x_u8, gen)
    opt, _ = make_optimizer(student, cfg, 1, device)
    ce = make_learner("base", cfg)

    def ce_step() -> None:
        train_step(student, ce, make_batch(x_u8, y, augment, gen, cfg, 0, past + new, None, None), opt, device, False)

    logits = _Logits(teacher).eval()
    t0 = time.perf_counter()
    inductor = torch.compile(_Logits(copy.deepcopy(teacher)).eval(), options={"freezing": True}, dynamic=False)
    with torch.inference_mode():
        inductor(x)
    compile_s = time.perf_counter() - t0
    with torch.no_grad():
        script = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(_Logits(copy.deepcopy(teacher)).eval(), x)))

    def run(fn: Callable[[torch.Tensor], torch.Tensor], bf16: bool = False) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                return fn(x).float()
        return call

    variants = {"ce_step": ce_step, "eager": run(logits), "inductor_frozen": run(inductor),
                "torchscript_frozen": run(script), "eager_bf16": run(logits, bf16=True)}
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            seconds[name].append(time_call(fn, steps, warmup, device))
    ref = variants["eager"]().double()
    out: dict[str, Any] = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                           **device_fingerprint(device), "batch": batch, "rounds": rounds, "steps": steps,
                           "inductor_compile_s": compile_s, "seconds": seconds,
                           "median_s": {k: statistics.median(v) for k, v in seconds.items()}}
    ce_s = out["median_s"]["ce_step"]
    out["floor"] = {k: 1 + v / ce_s for k, v in out["median_s"].items() if k != "ce_step"}
    out["max_rel_dev"] = {k: float((variants[k]().double() - ref).abs().max() / ref.abs().max())
                          for k in variants if k not in ("ce_step", "eager")}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="outputs/bench/teacher_forward.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = measure(args.batch, args.rounds, args.steps, args.warmup)
    print(f"{out['date']} | {out['device_class']} | batch {args.batch}, median of {args.rounds} interleaved rounds")
    print(f"{'variant':<20}{'s':>8}{'floor':>8}{'max rel dev':>13}")
    for name, s in out["median_s"].items():
        floor = f"{out['floor'][name]:.3f}" if name in out["floor"] else "-"
        dev = f"{out['max_rel_dev'][name]:.1e}" if name in out["max_rel_dev"] else "-"
        print(f"{name:<20}{s:>8.4f}{floor:>8}{dev:>13}")
    print(f"inductor compile (first call): {out['inductor_compile_s']:.1f} s")
    atomic_io.write_json(args.out, out)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
