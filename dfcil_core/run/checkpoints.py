"""Checked loads of models, generators, coresets and VAEs: the hash, the architecture and the class
count an output must have for the run that loads it, each refused with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations.config import Config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.method.coreset import Coreset
from dfcil_core.method.models import Generator, IncrementalClassifier, VariationalAutoencoder, new_classifier
from dfcil_core.method.runtime import prepare_model
from dfcil_core.method.synthesis import build_generator
from dfcil_core.run.artifacts import coreset_hash, generator_hash, load_checked, model_hash


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


def load_coreset(cfg: Config, path: Path, method: str, task: int) -> Coreset:
    """The coreset `method` keeps after task `task`, checked against the hash this config expects."""
    if not path.is_file():
        raise DfcilError(f"missing input: {path} (the coreset of task {task}; run its stage first)")
    doc = atomic_io.read_json(path)
    expected = coreset_hash(cfg, method, task)
    if doc.get("config_hash") != expected:
        raise DfcilError(f"{path} (coreset of task {task}) comes from another config "
                         f"(hash {doc.get('config_hash')}, expected {expected})")
    try:
        return Coreset.from_json(doc)
    except (KeyError, ValueError) as err:
        raise DfcilError(f"corrupt coreset {path}: {type(err).__name__}") from None


def new_vae(cfg: Config, device: torch.device) -> VariationalAutoencoder:
    return VariationalAutoencoder(cfg.dgr.z_dim, cfg.data.image_size).to(device)


def load_vae(cfg: Config, path: Path, method: str, task: int, device: torch.device) -> VariationalAutoencoder:
    """DGR's VAE after task `task` (its hash is θ(task)'s: one stage writes both)."""
    what = f"VAE of task {task}"
    ckpt = load_checked(path, model_hash(cfg, method, task), what)
    refuse_non_finite(ckpt["state_dict"], path, what)
    vae = new_vae(cfg, device)
    vae.load_state_dict(ckpt["state_dict"])
    return vae
