"""Access to the authors' implementation (../shared/reference/abd-dfcil, MIT) for equivalence tests.

The one place that knows how its state dicts map onto ours. Tests that need it call
`reference()`, which skips (with the reason) when the folder is absent.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

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
             "models.resnet", "models.generator", "dataloaders", "dataloaders.utils", "trainer"]
    mods = {n: importlib.import_module(n) for n in names}
    return SimpleNamespace(
        default=mods["learners.default"], kd=mods["learners.kd"], datafree=mods["learners.datafree"],
        helper=mods["learners.datafree_helper"], resnet=mods["models.resnet"],
        generator=mods["models.generator"], dataloaders=mods["dataloaders"],
        transforms=mods["dataloaders.utils"], trainer=mods["trainer"])


def learner_config(n_classes: int, batch_size: int, tasks: list[list[int]], **over) -> dict:
    """A learner config as the reference's Trainer builds it (CIFAR-100 ResNet-32, SGD)."""
    cfg = dict(num_classes=n_classes, lr=0.1, momentum=0.9, weight_decay=2e-4, schedule=[10],
               schedule_type="decay", model_type="resnet", model_name="resnet32", gen_model_type="generator",
               gen_model_name="CIFAR_GEN", optimizer="SGD", gpuid=[-1], memory=0, temp=2.0, out_dim=n_classes,
               overwrite=True, beta=1, mu=1.0, DW=False, batch_size=batch_size, power_iters=0,
               deep_inv_params=[1e-3, 5e1, 1e-3, 1e3, 1], tasks=tasks, top_k=1)
    cfg.update(over)
    return cfg


def _resnet_key(key: str) -> str:
    """conv1/bn1 -> features.stem.{0,1}; layer{s}.{b} -> features.layers.{5(s-1)+b}; last -> head."""
    head, _, rest = key.partition(".")
    if head == "conv1":
        return f"features.stem.0.{rest}"
    if head == "bn1":
        return f"features.stem.1.{rest}"
    if head == "last":
        return f"head.{rest}"
    if head.startswith("layer"):
        stage = int(head[len("layer"):])
        block, _, param = rest.partition(".")
        return f"features.layers.{5 * (stage - 1) + int(block)}.{param}"
    raise KeyError(key)


def resnet32_state(ref_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's ResNet-32 state dict under our IncrementalClassifier's names."""
    return {_resnet_key(k): v.clone() for k, v in ref_state.items()}


# Reference generator (l1, conv_blocks0..2) -> our Generator (fc, net.*); net indices count the
# parameter-free Upsample / LeakyReLU / Tanh modules in between.
_GENERATOR_KEYS = {"l1.0": "fc", "conv_blocks0.0": "net.0", "conv_blocks1.0": "net.2", "conv_blocks1.1": "net.3",
                   "conv_blocks2.0": "net.6", "conv_blocks2.1": "net.7", "conv_blocks2.3": "net.9",
                   "conv_blocks2.5": "net.11"}


def generator_state(ref_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in ref_state.items():
        module, param = k.rsplit(".", 1)
        out[f"{_GENERATOR_KEYS[module]}.{param}"] = v.clone()
    return out
