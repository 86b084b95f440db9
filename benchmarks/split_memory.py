"""Time and peak memory of the split stage (JPEGs decoded once into uint8 arrays) on a full-sized
dataset folder: the real one where you have it (--root), else one of generated JPEGs in the release's
layout written first (Tiny-ImageNet: 200 classes x 500 + 50 images of 64 px, ~0.4 GB of files).

    python benchmarks/split_memory.py --preset paper-tinyimagenet-20
    python benchmarks/split_memory.py --preset paper-imagenet50-5 --per-class 260   # 1/5 of ImageNet's images
    python benchmarks/split_memory.py --preset paper-imagenet50-5 --root /data      # a real ILSVRC folder

The split runs in a child process (`dfcil split`), so the peak is its own (ru_maxrss of the child).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dfcil_core.foundations import config as config_mod
from dfcil_core.method.datasets import class_order


def write_layout(cfg: config_mod.Config, root: Path, per_class: int | None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.dataset_layouts import made_up_wnids, write_imagenet, write_tiny_imagenet

    spec = config_mod.DATASETS[cfg.data.dataset]
    wnids = made_up_wnids(spec.classes)  # increasing: sorted order is index order
    n = per_class or spec.train_per_class
    if cfg.data.dataset == "tinyimagenet":
        write_tiny_imagenet(root, n, spec.test_per_class, wnids)
        return
    # ImageNet: every class folder exists (the order shuffles all 1,000), only the run's 50 are full
    run = {wnids[c] for c in class_order(spec.classes, cfg.seed, spec.fixed_order_seed)[:cfg.total_classes]}
    write_imagenet(root, n, spec.test_per_class, sorted(run))
    for w in sorted(set(wnids) - run):
        write_imagenet(root, 1, 1, [w])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper-tinyimagenet-20")
    p.add_argument("--root", help="a data root holding the real dataset (default: write a generated one)")
    p.add_argument("--per-class", type=int, help="training images per class of the generated folder")
    p.add_argument("--work", default=None, help="where the generated folder and the split go (default: a temp dir)")
    a = p.parse_args()
    cfg = config_mod.load(preset=a.preset)
    with tempfile.TemporaryDirectory(dir=a.work) as tmp:
        root = Path(a.root) if a.root else Path(tmp) / "data"
        if not a.root:
            t0 = time.perf_counter()
            write_layout(cfg, root, a.per_class)
            print(f"generated {cfg.data.dataset} layout in {time.perf_counter() - t0:.0f} s", flush=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dfcil_core", "split", "--preset", a.preset, "-S", f"data.root={root}",
                        "-S", "runtime.progress=false", "--out", str(Path(tmp) / "out")], check=True)
        wall = time.perf_counter() - t0
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
        arrays = sum(f.stat().st_size for f in (Path(tmp) / "out" / "split").glob("*.npz")) / 1e9
    print(f"{a.preset}: split {wall:.0f} s, peak RSS {peak_gb:.2f} GB, arrays on disk {arrays:.2f} GB "
          f"(expected {cfg.split_gigabytes:.2f} GB at the release's image counts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
