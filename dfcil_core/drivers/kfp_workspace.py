"""Run a stage inside artifact directories (what the Kubeflow components call).

An orchestrator that passes artifacts (KFP) hands each step its inputs as separate directories.
A *workspace* artifact is an output-directory layout (`models/`, `generators/`, `coresets/`,
`vaes/`) for one method's
lineage; the split is its own artifact and is linked in. Each step copies its input workspace,
runs the very same stage function as `dfcil run` and `dvc repro`, and writes the new workspace.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations.registry import lineage

WORKSPACE_DIRS = ("models", "generators", "coresets", "vaes")


def config_from_yaml(text: str) -> config_mod.Config:
    return config_mod.from_dict(yaml.safe_load(text) or {})


def _copy_workspace(src: Path | None, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    if src is None:
        return
    for name in WORKSPACE_DIRS:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, dirs_exist_ok=True)


def _link_split(split_dir: str | Path, work: Path) -> None:
    link = work / "split"
    if link.is_symlink() or link.exists():
        if link.is_symlink():
            link.unlink()
        else:
            shutil.rmtree(link)
    os.symlink(Path(split_dir).resolve(), link, target_is_directory=True)


def _unlink_split(work: Path) -> None:
    link = work / "split"
    if link.is_symlink():
        link.unlink()


def split_step(config_yaml: str, split_out: str, workspace_out: str) -> None:
    """Split into `split_out` and create an empty workspace."""
    import tempfile

    from dfcil_core.run.split_stage import split

    cfg = config_from_yaml(config_yaml)
    with tempfile.TemporaryDirectory() as tmp:
        split(cfg, Path(tmp))
        if Path(split_out).exists():
            shutil.rmtree(split_out)
        shutil.move(str(Path(tmp) / "split"), split_out)
    Path(workspace_out).mkdir(parents=True, exist_ok=True)


def stage_step(stage: str, config_yaml: str, method: str, task: int, split_dir: str, workspace_in: str,
               workspace_out: str) -> None:
    """`synthesize`, `train` or `coreset` one task: copy the workspace, run the stage, keep what later
    steps need."""
    cfg = config_from_yaml(config_yaml)
    work = Path(workspace_out)
    _copy_workspace(Path(workspace_in), work)
    _link_split(split_dir, work)
    try:
        if stage == "synthesize":
            from dfcil_core.run.synthesize_stage import synthesize

            synthesize(cfg, method, task, work)
        elif stage == "train":
            from dfcil_core.run.train_stage import train

            train(cfg, method, task, work)
            _prune_generators(work, method, task)
        elif stage == "coreset":
            from dfcil_core.run.coreset_stage import select_coreset

            select_coreset(cfg, method, task, work)
        else:
            raise ValueError(f"unknown stage {stage!r}")
    finally:
        _unlink_split(work)


def _prune_generators(work: Path, method: str, task: int) -> None:
    """After training task t only the task-2 generator (diagnosis) and θ(t)'s successor matter:
    drop older generator checkpoints so workspaces stay small."""
    keep = {work / "generators" / lineage(method, 1) / "task_2.pt",
            work / "generators" / lineage(method, task - 1) / f"task_{task}.pt"}
    for path in (work / "generators").rglob("task_*.pt") if (work / "generators").is_dir() else []:
        if path not in keep:
            path.unlink()


def merge_step(workspace_a: str, workspace_b: str, workspace_out: str) -> None:
    """Union of two workspaces (shared files such as models/ce/task_1.pt are identical)."""
    out = Path(workspace_out)
    _copy_workspace(Path(workspace_a), out)
    _copy_workspace(Path(workspace_b), out)


def evaluate_step(config_yaml: str, split_dir: str, workspace_in: str, eval_out: str) -> dict:
    """Evaluate every method; `eval_out` gets metrics.json, results/ and eval/ (as `dvc repro` does)."""
    cfg = config_from_yaml(config_yaml)
    work = Path(eval_out)
    _copy_workspace(Path(workspace_in), work)
    _link_split(split_dir, work)
    from dfcil_core.run.evaluate_stage import evaluate

    try:
        doc = evaluate(cfg, work)
    finally:
        _unlink_split(work)
    for name in WORKSPACE_DIRS:  # the report artifact holds results only
        shutil.rmtree(work / name, ignore_errors=True)
    return doc


def html_report(eval_dir: str | Path) -> str:
    """The self-contained HTML page of an evaluated directory (`dfcil_core.run.report`)."""
    from dfcil_core.run import report

    return report.html_page(eval_dir)


def config_with_seed(config_yaml: str, seed: int) -> str:
    """The same config with another class-order seed, as one line of JSON (a fan-out branch)."""
    import json

    cfg = config_from_yaml(config_yaml)
    return json.dumps(config_mod.explicit_params(config_mod.from_dict({**cfg.dump(), "seed": int(seed)})))
