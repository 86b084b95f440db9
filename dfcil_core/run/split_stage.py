"""Stage 1, split: the class order and the per-task uint8 train/test arrays."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations.config import DATASETS, Config, split_hash
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.method.datasets import class_count, class_order, load_dataset, select_task, task_class_blocks
from dfcil_core.run.artifacts import Layout, check_existing, write_stage_log

log = logging.getLogger("dfcil")


def split(cfg: Config, out: Path) -> Path:
    """Class order and per-task uint8 train/test arrays (labels = positions in the class order)."""
    lay = Layout(out)
    h = split_hash(cfg)
    sizes = cfg.task_sizes()
    if check_existing(lay.split_meta(), h) and all(lay.task_file(t).exists() for t in range(1, len(sizes) + 1)):
        log.info("split: up to date (%s)", lay.split_dir)
        return lay.split_dir
    t0 = time.perf_counter()
    d = cfg.data
    full = class_count(d.dataset, d.root)
    if cfg.total_classes > full:
        raise DfcilError(f"data.num_classes: {cfg.total_classes} > the {full} classes of {d.dataset}")
    order = class_order(full, cfg.seed, DATASETS[d.dataset].fixed_order_seed)
    # only the run's classes are decoded (ImageNet-50 takes 50 of ILSVRC's 1,000)
    train, test = load_dataset(d.dataset, d.root, d.download, d.image_size, only=set(order[: cfg.total_classes]))
    blocks = task_class_blocks(sizes)
    for t, positions in enumerate(blocks, start=1):
        tr = select_task(train, order, positions, d.train_per_class)
        te = select_task(test, order, positions, d.test_per_class)
        atomic_io.save_npz(lay.task_file(t), train_x=tr.x, train_y=tr.y, test_x=te.x, test_y=te.y)
    # meta last: its presence marks a complete split
    atomic_io.write_json(lay.split_meta(), atomic_io.metadata(
        h, cfg.seed, dataset=d.dataset, class_order=order[: cfg.total_classes],
        class_names=[train.classes[c] for c in order[: cfg.total_classes]] if train.classes else None,
        tasks=[[order[p] for p in b] for b in blocks], task_positions=blocks,
        inputs={"dataset": d.dataset}))
    write_stage_log(out, "split", seconds=time.perf_counter() - t0)
    log.info("split: %d tasks of %s classes -> %s", len(sizes), sizes, lay.split_dir)
    return lay.split_dir
