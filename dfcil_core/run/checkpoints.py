"""Checked loads of models and generators: the hash, the architecture and the class count a
checkpoint must have for the run that loads it, each refused with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dfcil_core.foundations.config import Config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.method.models import Generator, IncrementalClassifier, new_classifier
from dfcil_core.method.runtime import prepare_model
from dfcil_core.method.synthesis import build_generator
from dfcil_core.run.artifacts import generator_hash, load_checked, model_hash


def refuse_non_finite(state_dict: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """A checkpoint with a NaN or infinite weight is no result (its run diverged): one line."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise DfcilError(f"{path} ({what}) has non-finite weights ({bad[0]}{more}): the run that wrote it "
                         "diverged; re-train it")


def model_from_checkpoint(ckpt: dict[str, Any], path: Path, cfg: Config, what: str, device: torch.device,
                          seen: int | None = None) -> IncrementalClassifier:
    if ckpt["arch"] != cfg.model.arch:
        raise DfcilError(f"{path} ({what}) is a {ckpt['arch']} checkpoint, the config says {cfg.model.arch}")
    if seen is not None and ckpt["num_classes"] != seen:
        raise DfcilError(f"{path} ({what}) has {ckpt['num_classes']} classes, expected {seen}")
    if ckpt["shortcut"] != cfg.model.shortcut:
        raise DfcilError(f"{path} ({what}) has option-{ckpt['shortcut']} shortcuts, the config says {cfg.model.shortcut}")
    refuse_non_finite(ckpt["state_dict"], path, what)
    m = new_classifier(cfg, ckpt["num_classes"], head_size=ckpt["state_dict"]["head.weight"].shape[0])
    m.load_state_dict(ckpt["state_dict"])
    return prepare_model(m, device, cfg.runtime)


def load_model(cfg: Config, path: Path, method: str, task: int, device: torch.device,
               seen: int | None = None) -> IncrementalClassifier:
    """θ(task) of `method` from `path`, checked against the hash this config expects."""
    what = f"θ({task}) of {method}"
    return model_from_checkpoint(load_checked(path, model_hash(cfg, method, task), what), path, cfg, what,
                                 device, seen)


def load_generator(cfg: Config, path: Path, method: str, task: int, device: torch.device) -> Generator:
    """The generator `method` replays in task `task`, for sampling (no optimiser)."""
    ckpt = load_checked(path, generator_hash(cfg, method, task), f"generator of task {task}")
    refuse_non_finite(ckpt["state_dict"], path, f"generator of task {task}")
    generator = build_generator(cfg, device)
    generator.load_state_dict(ckpt["state_dict"])
    return generator
