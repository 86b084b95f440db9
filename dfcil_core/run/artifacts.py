"""Artefacts of a run: where each output lives, the hash of what it was made from, checked loads.

An output records the hash of everything it depends on (the config keys the method registry names
for it, upstream hashes, the task). An existing output with the expected hash is reused; one with
another hash is refused, never overwritten. Outputs hold nothing that differs between two runs of
the same inputs on the same machine: times, hosts and the commit go to the stage's log record
(`logs/<stage>.json`, not a DVC output), so a re-run writes byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dfcil_core.foundations import atomic_io, registry
from dfcil_core.foundations.config import Config, keys_hash, split_hash
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.provenance import code_version
from dfcil_core.foundations.registry import lineage

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

    def coreset(self, method: str, task: int) -> Path:
        """The coreset `method` keeps after task `task` (its lineage's: the random one is shared)."""
        return self.root / "coresets" / registry.coreset_lineage(method) / f"task_{task}.json"

    def vae(self, method: str, task: int) -> Path:
        """DGR's VAE after task `task` (written with θ(task) by the same training stage)."""
        return self.root / "vaes" / lineage(method, task) / f"task_{task}.pt"

    def eval_dir(self) -> Path:
        return self.root / "eval"

    def metrics_file(self) -> Path:
        return self.root / "metrics.json"

    def method_metrics_file(self, method: str) -> Path:
        return self.root / "metrics" / f"{method}.json"

    def results_dir(self) -> Path:
        return self.root / "results"

    @property
    def logs_dir(self) -> Path:
        """The stages' log records (`train_ce_t1.json`, ...): not outputs, never hashed."""
        return self.root / "logs"

    def stage_log(self, stage: str) -> Path:
        return self.logs_dir / f"{stage}.json"


def stage_name(stage: str, method: str, task: int) -> str:
    """The DVC stage name of a synthesize, train or coreset stage (`synthesize_ce_t2`, `train_abd_t2`,
    `coreset_random_t1`)."""
    if stage == "synthesize":
        owner = lineage(method, task - 1)
    elif stage == "coreset":
        owner = registry.coreset_lineage(method)
    else:
        owner = lineage(method, task)
    return f"{stage}_{owner}_t{task}"


# ---------------------------------------------------------------------------------------------
# Dependency hashes (what each output was made from)


def generator_hash(cfg: Config, method: str, task: int) -> str:
    """The generator replayed in task `task`: inverted from θ(task-1), continuing the generator of
    task-1 from task 3 on where the method carries it."""
    prev = generator_hash(cfg, method, task - 1) if registry.continues_generator(method, task) else None
    return keys_hash(cfg, registry.inversion_keys(), model=model_hash(cfg, method, task - 1), prev_gen=prev)


def model_hash(cfg: Config, method: str, task: int) -> str:
    """θ(task) of `method`: the split, its config keys (the registry's `model_keys`, also its DVC
    stage's params), and the hashes of the models and generators it starts from."""
    upstream: dict[str, Any] = {"split": split_hash(cfg), "lineage": lineage(method, task), "task": task}
    revision = registry.method(method).revision
    if revision and lineage(method, task) == method:  # not the shared θ(1)
        upstream["revision"] = revision
    if registry.starts_from_previous(method, task):
        upstream["prev"] = model_hash(cfg, method, task - 1)
    if registry.replays_inverted(method, task):
        upstream["generator"] = generator_hash(cfg, method, task)
    if registry.uses_coreset(method, task):
        upstream["coreset"] = coreset_hash(cfg, method, task - 1)
    return keys_hash(cfg, registry.model_keys(method, task), **upstream)


def coreset_hash(cfg: Config, method: str, task: int) -> str:
    """The coreset `method` keeps after task `task`: written with θ(task) by its training stage (E2E:
    then θ(task)'s hash decides), or by a coreset stage from the split, the coreset before it and,
    for a ranked one, θ(task) (the registry's `coreset_keys` are its config keys)."""
    if registry.coreset_selected_in_training(method, task):
        return keys_hash(cfg, [], model=model_hash(cfg, method, task), kept="coreset")
    spec = registry.method(method).coreset
    upstream: dict[str, Any] = {"split": split_hash(cfg), "task": task, "lineage": spec.lineage,
                                "selection": spec.selection}
    if task >= 2:
        upstream["prev"] = coreset_hash(cfg, method, task - 1)
    if spec.selection != "random":
        upstream["model"] = model_hash(cfg, method, task)
    return keys_hash(cfg, registry.coreset_keys(method, task), **upstream)


# ---------------------------------------------------------------------------------------------
# Checked loads


def check_existing(path: Path, expected: str) -> bool:
    """True if `path` exists and was made from the same inputs; refuse if it was not."""
    if not path.exists():
        return False
    meta = atomic_io.load_torch(path)["meta"] if path.suffix == ".pt" else atomic_io.read_json(path)
    if meta.get("config_hash") != expected:
        raise DfcilError(
            f"{path} was made under another config (hash {meta.get('config_hash')}, expected {expected}); "
            "use another output directory or remove it"
        )
    return True


def load_checked(path: Path, expected: str, what: str) -> dict[str, Any]:
    if not path.exists():
        raise DfcilError(f"missing input: {path} ({what}; run its stage first)")
    ckpt = atomic_io.load_torch(path)
    got = ckpt.get("meta", {}).get("config_hash")
    if got != expected:
        raise DfcilError(f"{path} ({what}) comes from another config (hash {got}, expected {expected})")
    return ckpt


def read_split(cfg: Config, lay: Layout) -> dict[str, Any]:
    """The split's meta.json, refused when it was made under another config."""
    meta = atomic_io.read_json(lay.split_meta())
    if meta.get("config_hash") != split_hash(cfg):
        raise DfcilError(f"{lay.split_meta()} was made under another config; re-run the split stage")
    return meta


def task_arrays(lay: Layout, task: int) -> dict[str, np.ndarray]:
    return atomic_io.load_npz(lay.task_file(task))


def class_blocks(meta: dict[str, Any], task: int) -> list[tuple[int, int]]:
    """The class range [start, end) of each task 1..`task`, from the split."""
    blocks, start = [], 0
    for positions in meta["task_positions"][:task]:
        blocks.append((start, start + len(positions)))
        start += len(positions)
    return blocks


def seen_classes(meta: dict[str, Any], task: int) -> tuple[int, int]:
    """(past, seen): classes of tasks 1..task-1 and of tasks 1..task (task `task`'s class range)."""
    return class_blocks(meta, task)[task - 1]


def check_task(cfg: Config, task: int) -> None:
    if not 1 <= task <= cfg.data.n_tasks:
        raise DfcilError(f"task: {task} is outside 1..{cfg.data.n_tasks}")


def input_hashes(out: Path, paths: list[Path]) -> dict[str, str]:
    """{path relative to the output directory: sha256} of a stage's input files."""
    return {str(p.relative_to(out)): atomic_io.file_sha256(p) for p in paths}


# ---------------------------------------------------------------------------------------------
# Log records: what differs between runs of the same inputs


def write_stage_log(out: Path, stage: str, **record: Any) -> None:
    """Record when, where and how fast a stage ran (beside the outputs, never inside them)."""
    atomic_io.write_json(Layout(out).stage_log(stage), {
        "stage": stage, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version(), **record})


def read_stage_log(out: Path, stage: str) -> dict[str, Any]:
    """A stage's log record, or {} where none was written (outputs fetched from a DVC remote)."""
    path = Layout(out).stage_log(stage)
    return atomic_io.read_json(path) if path.is_file() else {}
