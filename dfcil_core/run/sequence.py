"""The whole sequence of one run, in-process, through the same stage functions DVC and KFP call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dfcil_core.foundations import registry
from dfcil_core.foundations.config import Config
from dfcil_core.run.coreset_stage import select_coreset
from dfcil_core.run.evaluate_stage import evaluate
from dfcil_core.run.split_stage import split
from dfcil_core.run.synthesize_stage import synthesize
from dfcil_core.run.train_stage import train


def run(cfg: Config, out: Path) -> dict[str, Any]:
    split(cfg, out)
    for task in range(1, cfg.data.n_tasks + 1):
        for method in cfg.methods:
            if registry.replays_inverted(method, task):
                synthesize(cfg, method, task, out)
            train(cfg, method, task, out)
            if registry.keeps_coreset(method, task, cfg.data.n_tasks) and \
                    not registry.coreset_selected_in_training(method, task):
                select_coreset(cfg, method, task, out)
    return evaluate(cfg, out)
