"""What a table of the paper costs: steps of each kind per run (from the config, counting shared
θ(1) and generators once, as the pipeline does), times measured seconds per step, summed over
seeds, splits and ablations; wall time on N GPUs packs whole runs onto the GPUs."""

from __future__ import annotations

from dataclasses import dataclass

from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations import registry
from dfcil_core.foundations.registry import lineage


@dataclass(frozen=True)
class StepSeconds:
    ce: float  # one classifier step on real data only (batch 128)
    replay: float  # one step with 128 real + 128 synthetic images and the frozen teacher
    generator: float  # one inversion step (batch 128)
    device: str


@dataclass(frozen=True)
class RunSteps:
    ce: int
    replay: int
    generator: int

    def seconds(self, s: StepSeconds) -> float:
        return self.ce * s.ce + self.replay * s.replay + self.generator * s.generator


def _stage_steps(cfg: config_mod.Config, method: str, t: int, per_class: int) -> tuple[str, int]:
    spec, sizes = registry.method(method), cfg.task_sizes()
    classes = sum(sizes[:t]) if spec.cumulative_data else sizes[t - 1]
    steps = (classes * per_class // cfg.train.batch_size) * cfg.train.epochs_for(t)
    return ("replay" if registry.replays_inverted(method, t) else "ce"), steps


def run_steps(cfg: config_mod.Config, images_per_class: int = 500,
              methods: list[str] | None = None) -> RunSteps:
    """Training and inversion steps of one `dfcil run` of `cfg` (of `methods`, default all), with
    shared θ(1) and generators counted once, as the pipeline runs them."""
    per_class = cfg.data.train_per_class or images_per_class
    count = {"ce": 0, "replay": 0, "generator": 0}
    done: set[tuple[str, str, int]] = set()
    for method in methods or cfg.methods:
        for t in range(1, cfg.data.n_tasks + 1):
            if registry.replays_inverted(method, t) and ("gen", lineage(method, t - 1), t) not in done:
                done.add(("gen", lineage(method, t - 1), t))
                count["generator"] += cfg.synthesis.steps
            if ("model", lineage(method, t), t) not in done:
                done.add(("model", lineage(method, t), t))
                kind, steps = _stage_steps(cfg, method, t, per_class)
                count[kind] += steps
    return RunSteps(count["ce"], count["replay"], count["generator"])


def table_cost(runs: list[config_mod.Config], seeds: int, s: StepSeconds, gpus: list[int]) -> dict:
    """GPU-hours of `runs` x `seeds`, and wall hours on each GPU count. On Kubeflow the methods of
    a run are parallel chains of one-GPU steps, so the wall time is at least the longest chain
    (one method's tasks in order, shared θ(1) included) and at least the work over the GPUs."""
    total = seeds * sum(run_steps(c).seconds(s) for c in runs)
    longest = max(run_steps(c, methods=[m]).seconds(s) for c in runs for m in c.methods)
    return {"runs": seeds * len(runs), "gpu_hours": total / 3600, "longest_chain_hours": longest / 3600,
            "wall_hours": {n: max(longest, total / n) / 3600 for n in gpus}}
