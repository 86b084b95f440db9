"""Artefacts of a run: where each output lives, the hash of what it was made from, checked loads.

An output records the hash of everything it depends on (config slice, seeds, upstream hashes). An
existing output with the expected hash is reused; one with another hash is refused, never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfcil_core import io
from dfcil_core.config import Config, lineage_hash, stable_hash
from dfcil_core.errors import DfcilError
from dfcil_core.learners import LEARNERS, lineage

# ---------------------------------------------------------------------------------------------
# Output layout


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def split_dir(self) -> Path:
        return self.root / "split"

    def split_meta(self) -> Path:
        return self.split_dir / "meta.json"

    def task_file(self, task: int) -> Path:
        return self.split_dir / f"task_{task}.npz"

    def model(self, method: str, task: int) -> Path:
        return self.root / "models" / lineage(method, task) / f"task_{task}.pt"

    def generator(self, method: str, task: int) -> Path:
        """The generator replayed while training task `task` (inverted from θ(task-1))."""
        return self.root / "generators" / lineage(method, task - 1) / f"task_{task}.pt"

    def eval_dir(self) -> Path:
        return self.root / "eval"

    def metrics_file(self) -> Path:
        return self.root / "metrics.json"

    def method_metrics_file(self, method: str) -> Path:
        return self.root / "metrics" / f"{method}.json"


# ---------------------------------------------------------------------------------------------
# Dependency hashes (what each output was made from)


def _train_common(cfg: Config) -> dict[str, Any]:
    t = cfg.train
    parts = {"lr": t.lr, "momentum": t.momentum, "wd": t.weight_decay, "bs": t.batch_size,
             "milestones": t.milestones, "gamma": t.gamma, "train_seed": cfg.training_seed,
             "color_jitter": cfg.data.color_jitter, "shortcut": cfg.model.shortcut}
    # Spare head rows only when there are any: models made with a head over the run's classes
    # (before `model.head_size` existed) keep their hashes, and stay valid under head_size = classes.
    if cfg.head_rows != cfg.total_classes:
        parts["head_rows"] = cfg.head_rows
    return parts


def generator_hash(cfg: Config, method: str, task: int) -> str:
    prev = generator_hash(cfg, method, task - 1) if task >= 3 else None
    return stable_hash({"model": model_hash(cfg, method, task - 1), "prev_gen": prev, "seed": cfg.training_seed,
                        "synthesis": cfg.synthesis.model_dump(exclude={"replay_batch_size"})})


def model_hash(cfg: Config, method: str, task: int) -> str:
    learner = LEARNERS[method]
    family = lineage(method, task)
    parts: dict[str, Any] = {"lineage": lineage_hash(cfg), "train": _train_common(cfg),
                             "epochs": cfg.train.epochs_for(task), "family": family, "task": task}
    if family != "ce":
        if not learner.fresh_model_each_task and task > 1:
            parts["prev"] = model_hash(cfg, method, task - 1)
        if method in ("lwf", "lwf_syn", "deepinversion"):
            parts["kd_temperature"] = cfg.train.kd_temperature
            parts["mu"] = getattr(cfg.train, f"{method}_mu")
        if method == "lwf_mc" and cfg.train.lwf_mc_bce != "stable":  # "stable" hashes as before the key existed
            parts["bce"] = cfg.train.lwf_mc_bce
        if method == "abd" and task > 1:  # ABD's task 1 is plain CE over every head row
            parts["abd"] = cfg.abd.model_dump()
        if method == "rdfcil" and task > 1:
            parts["rdfcil"] = cfg.rdfcil.model_dump()
        if learner.uses_replay and task > 1:
            parts["generator"] = generator_hash(cfg, method, task)
            parts["replay_bs"] = cfg.synthesis.replay_batch_size
    return stable_hash(parts)


def check_existing(path: Path, expected: str) -> bool:
    """True if `path` exists and was made from the same inputs; refuse if it was not."""
    if not path.exists():
        return False
    meta = io.load_torch(path)["meta"] if path.suffix == ".pt" else io.read_json(path)
    if meta.get("config_hash") != expected:
        raise DfcilError(
            f"{path} was made under another config (hash {meta.get('config_hash')}, expected {expected}); "
            "use another output directory or remove it"
        )
    return True


def load_checked(path: Path, expected: str, what: str) -> dict[str, Any]:
    if not path.exists():
        raise DfcilError(f"missing input: {path} ({what}; run its stage first)")
    ckpt = io.load_torch(path)
    got = ckpt.get("meta", {}).get("config_hash")
    if got != expected:
        raise DfcilError(f"{path} ({what}) comes from another config (hash {got}, expected {expected})")
    return ckpt
