"""Seconds per step of each kind the cost sheet prices (ce, kd, replay, generator, and dgr where the
dataset's tables have DGR), for each paper preset's images, network and batch size, measured side by
side on this machine with our runtime defaults. On a CPU these are the ratios between datasets that
the cost sheet uses to project the GPU figures of Tiny-ImageNet and ImageNet-50 from CIFAR-100's.

    python benchmarks/step_seconds.py --max-batch 128 --out benchmarks/step-seconds-cpu.json   # ~15 min, 2 cores
"""

from __future__ import annotations

import argparse
import datetime
import platform
import resource
import sys
from typing import Any

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations.presets import PRESETS as PRESET_TABLE
from dfcil_core.lab.throughput import measure, preset_shape, replay_steps, shaped_config
from dfcil_core.method.runtime import configure, device_name

PRESETS = ("paper-cifar100-10", "paper-tinyimagenet-20", "paper-imagenet50-5")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "CPU")
    return f"{name} ({'AVX-512' if 'avx512f' in info else 'AVX2'})"


def _tables_have_dgr(dataset: str) -> bool:
    """Whether a paper preset of `dataset` runs DGR (only CIFAR-100's Table 1 does)."""
    cfgs = (config_mod.load(preset=q) for q in PRESET_TABLE if q.startswith("paper-"))
    return any(c.data.dataset == dataset and "dgr" in c.methods for c in cfgs)


def measure_preset(preset: str, steps: int, warmup: int, device: str, max_batch: int | None = None) -> dict[str, Any]:
    """One preset's step seconds at its batch size, or, where that exceeds `max_batch` (ImageNet's
    256 images of 224 px need about 16 GB for a plain step on a CPU, twice that with replay), at
    `max_batch` scaled by the ratio of the batch sizes (a CPU's step time grows with the images)."""
    shape, full = preset_shape(preset)
    bs = full if max_batch is None else min(full, max_batch)
    cfg = config_mod.from_dict(shaped_config(shape, bs, {"device": device, "progress": False}))
    with_dgr = _tables_have_dgr(cfg.data.dataset)
    steps_ = measure(cfg, steps, warmup)
    replay = replay_steps(cfg, steps, warmup, methods=("lwf_coreset", "dgr") if with_dgr else ("lwf_coreset",), rounds=1)
    scale = full / bs
    out = {"preset": preset, "batch_size": full, "measured_batch_size": bs, "image_size": cfg.data.image_size,
           "arch": cfg.model.arch, "ce": scale * steps_["ce_step"]["seconds_per_step"],
           "replay": scale * steps_["abd_step"]["seconds_per_step"],
           "generator": scale * steps_["generator_step"]["seconds_per_step"],
           "kd": scale * replay["lwf_coreset_step"]["seconds_per_step"]}
    if with_dgr:
        out["dgr"] = scale * replay["dgr_step"]["seconds_per_step"]
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # so far in this process
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="outputs/bench/step-seconds.json")
    p.add_argument("--max-batch", type=int, help="measure bigger batches at this size and scale (a small machine)")
    a = p.parse_args()
    dev = configure(config_mod.from_dict({"runtime": {"device": a.device}}).runtime)
    doc: dict[str, Any] = {
        "device": device_name(dev) if dev.type != "cpu" else f"{_cpu_model()}, {device_name(dev)}",
        "date": datetime.date.today().isoformat(), "steps": a.steps, "warmup": a.warmup,
        "command": "python benchmarks/step_seconds.py " + " ".join(sys.argv[1:]), "datasets": {}}
    for preset in a.presets:
        row = measure_preset(preset, a.steps, a.warmup, a.device, a.max_batch)
        doc["datasets"][config_mod.load(preset=preset).data.dataset] = row
        atomic_io.write_json(a.out, doc)  # after each preset: a killed run keeps what it measured
        scaled = "" if row["measured_batch_size"] == row["batch_size"] else f" (measured at {row['measured_batch_size']})"
        print(f"{preset}: batch {row['batch_size']}{scaled}, " + ", ".join(
            f"{k} {row[k]:.3f} s" for k in ("ce", "kd", "replay", "generator", "dgr") if k in row), flush=True)
    print(f"written: {a.out} ({doc['device']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
