"""Access to the authors' implementation (../shared/reference/abd-dfcil, MIT) for equivalence tests.

Tests take it as the `ref` fixture (conftest.py), which calls `reference()`: it skips, with the
reason, where the folder is absent. How its state dicts map onto ours: `dfcil_core.lab.reference_weights`.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REFERENCE_DIR = Path(os.environ.get("DFCIL_REFERENCE",
                                    Path(__file__).resolve().parents[1].parent / "shared" / "reference"))


def reference() -> SimpleNamespace:
    """The reference's modules (after its `cpu.py`: `.cuda()` is a no-op)."""
    if not (REFERENCE_DIR / "cpu.py").is_file():
        pytest.skip(f"reference implementation not found at {REFERENCE_DIR} (set DFCIL_REFERENCE)")
    if str(REFERENCE_DIR) not in sys.path:
        sys.path.insert(0, str(REFERENCE_DIR))
    importlib.import_module("cpu")
    names = ["learners", "learners.default", "learners.kd", "learners.datafree", "learners.datafree_helper",
             "learners.dgr", "models.resnet", "models.generator", "models.autoencoder", "dataloaders",
             "dataloaders.utils", "dataloaders.loader", "trainer"]
    mods = {n: importlib.import_module(n) for n in names}
    return SimpleNamespace(
        default=mods["learners.default"], kd=mods["learners.kd"], datafree=mods["learners.datafree"],
        helper=mods["learners.datafree_helper"], resnet=mods["models.resnet"],
        generator=mods["models.generator"], dataloaders=mods["dataloaders"],
        transforms=mods["dataloaders.utils"], trainer=mods["trainer"], loader=mods["dataloaders.loader"],
        dgr=mods["learners.dgr"], autoencoder=mods["models.autoencoder"])


def learner_config(n_classes: int, batch_size: int, tasks: list[list[int]], **over) -> dict:
    """A learner config as the reference's Trainer builds it (CIFAR-100 ResNet-32, SGD)."""
    cfg = dict(num_classes=n_classes, lr=0.1, momentum=0.9, weight_decay=2e-4, schedule=[10],
               schedule_type="decay", model_type="resnet", model_name="resnet32", gen_model_type="generator",
               gen_model_name="CIFAR_GEN", optimizer="SGD", gpuid=[-1], memory=0, temp=2.0, out_dim=n_classes,
               overwrite=True, beta=1, mu=1.0, DW=False, batch_size=batch_size, power_iters=0,
               deep_inv_params=[1e-3, 5e1, 1e-3, 1e3, 1], tasks=tasks, top_k=1)
    cfg.update(over)
    return cfg
