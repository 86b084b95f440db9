"""Wall time (and A_N) of a whole `dfcil run`, optionally from a CIFAR-100 subset file.

A GPU machine may not see the shared data folder and can only receive a small working tree, so
`--make-subset` writes the first K train / L test images of each class (in dataset order) to one
.npz. Because `select_task` keeps the first `train_per_class` images of each class in dataset
order, a run from that subset with train_per_class=K, test_per_class=L sees exactly the images a
run from the full data with the same settings sees.

    python benchmarks/profile_run.py --make-subset .devdata/c100.npz --train-per-class 100 --test-per-class 20
    python benchmarks/profile_run.py --subset .devdata/c100.npz --preset paper-cifar100-10 \\
        --set methods='[abd]' --set train.epochs=30 --out outputs/bench/profile.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from dfcil_core.foundations import atomic_io, config
from dfcil_core.lab.throughput import time_run
from dfcil_core.method import datasets as data
from dfcil_core.method.runtime import device_name, resolve_device


def make_subset(path: Path, train_per_class: int, test_per_class: int) -> None:
    train, test = data.load_dataset("cifar100", None, False, 32)
    arrays = {}
    for name, split, k in (("train", train, train_per_class), ("test", test, test_per_class)):
        idx = np.concatenate([np.flatnonzero(split.y == c)[:k] for c in range(100)])
        idx.sort()  # keep dataset order, so "first K of each class" is unchanged
        arrays[f"{name}_x"], arrays[f"{name}_y"] = split.x[idx], split.y[idx]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(f"written: {path} ({path.stat().st_size / 2**20:.1f} MiB)")


def use_subset(path: Path) -> None:
    """Serve CIFAR-100 from the subset file instead of the torchvision folder."""
    z = np.load(path)
    train = data.ImageArrays(z["train_x"], z["train_y"])
    test = data.ImageArrays(z["test_x"], z["test_y"])
    data._load_cifar = lambda name, root, download: (train, test)  # noqa: SLF001 (benchmark harness)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-subset", type=Path)
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--test-per-class", type=int, default=20)
    p.add_argument("--subset", type=Path)
    p.add_argument("--preset", default="paper-cifar100-10")
    p.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    p.add_argument("--out", default="outputs/bench/profile.json")
    a = p.parse_args(argv)
    if a.make_subset:
        make_subset(a.make_subset, a.train_per_class, a.test_per_class)
        return 0
    if a.subset:
        use_subset(a.subset)
    cfg = config.load(preset=a.preset, overrides=["runtime.progress=false", *a.set])
    device = resolve_device(cfg.runtime.device)
    with tempfile.TemporaryDirectory() as tmp:
        timing = time_run(cfg, Path(tmp))
    wall, stage_seconds, metrics = timing["wall_seconds"], timing["stage_seconds"], timing["metrics"]
    result = {"device": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "preset": a.preset, "overrides": a.set, **timing, "config": cfg.model_dump(mode="json")}
    atomic_io.write_json(a.out, result)
    print(f"device: {result['device']} | torch {result['torch']} | {a.preset} {' '.join(a.set)}")
    print(f"wall: {wall:.1f} s | " + " | ".join(f"{k} {v:.1f} s" for k, v in stage_seconds.items()))
    for m, v in metrics["methods"].items():
        print(f"{m}: A_N {v['a_n']:.2f}")
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
