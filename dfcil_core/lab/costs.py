"""What a table of the paper costs: steps of each kind per run (from the config, counting shared
θ(1), generators and coresets once, as the pipeline does), times measured seconds per step, summed
over seeds, splits and ablations; wall time on N GPUs packs whole runs onto the GPUs.

Step kinds, each at `train.batch_size`: "ce" (the classifier on real images), "kd" (the same with a
frozen teacher's forward: LwF, LwF.MC and the coreset methods' distillation), "replay" (real +
synthetic images and the teacher: the data-free replay methods), "generator" (one inversion step)
and "dgr" (the classifier on real + VAE-replayed images, then a VAE step). Coreset selections are a
forward pass over a task's images: not counted."""

from __future__ import annotations

from dataclasses import dataclass

from dfcil_core.foundations import config as config_mod
from dfcil_core.foundations import registry
from dfcil_core.foundations.registry import lineage

KINDS = ("ce", "kd", "replay", "generator", "dgr")
TEACHER_STEP = ("lwf", "lwf_mc", "lwf_coreset", "e2e", "bic")  # their steps also run the frozen teacher


@dataclass(frozen=True)
class StepSeconds:
    ce: float  # one classifier step on real data only (batch 128)
    replay: float  # one step with 128 real + 128 synthetic images and the frozen teacher
    generator: float  # one inversion step (batch 128)
    device: str
    kd: float | None = None  # a real-data step with the frozen teacher's forward (None: priced as ce)
    dgr: float | None = None  # DGR's step: 128 real + 128 VAE images, then a VAE step (None: not priced)


@dataclass(frozen=True)
class RunSteps:
    ce: int
    replay: int
    generator: int
    kd: int = 0
    dgr: int = 0

    def seconds(self, s: StepSeconds) -> float:
        if self.dgr and s.dgr is None:
            raise ValueError(f"no seconds per DGR step for {s.device}: price it first")
        return (self.ce * s.ce + self.kd * (s.ce if s.kd is None else s.kd) + self.replay * s.replay
                + self.generator * s.generator + self.dgr * (s.dgr or 0.0))


def _steps(images: int, batch: int, epochs: int, drop_small: bool = False) -> int:
    """Steps of `epochs` over `images` (the last incomplete batch dropped; a set smaller than one
    batch takes one smaller batch, unless the phase keeps the authors' rule)."""
    per_epoch = images // batch if (drop_small or images >= batch) else (1 if images else 0)
    return per_epoch * epochs


def _stage_steps(cfg: config_mod.Config, method: str, t: int, per_class: int) -> dict[str, int]:
    spec, sizes, bs = registry.method(method), cfg.task_sizes(), cfg.train.batch_size
    epochs = cfg.train.epochs_for(t)
    new = (sum(sizes[:t]) if spec.cumulative_data else sizes[t - 1]) * per_class
    if spec.replay == "generative":
        return {"dgr": _steps(new, bs, epochs)}
    if registry.replays_inverted(method, t):
        return {"replay": _steps(new, bs, epochs)}
    kind = "kd" if t >= 2 and method in TEACHER_STEP else "ce"
    if not registry.uses_coreset(method, t):
        return {kind: _steps(new, bs, epochs)}
    core = min(cfg.coreset.size, sum(sizes[:t - 1]) * per_class)
    if spec.coreset.mix == "resampled":  # the new data and as many draws
        return {kind: _steps(2 * new, bs, epochs)}
    if method == "e2e":
        phase_b = cfg.e2e.phase_b_epochs if cfg.e2e.phase_b_epochs is not None else epochs
        return {kind: _steps(new + core, bs, epochs) + _steps(core, bs, phase_b, drop_small=True)}
    held = int(int(cfg.bic.holdout * core) / sum(sizes[:t - 1])) * sizes[t - 1] \
        + int(int(cfg.bic.holdout * core) / sum(sizes[:t - 1])) * sum(sizes[:t - 1])
    stage2 = cfg.bic.stage2_epochs if cfg.bic.stage2_epochs is not None else epochs
    return {kind: _steps(new + core - held, bs, epochs), "ce": _steps(held, bs, stage2, drop_small=True)}


def run_steps(cfg: config_mod.Config, methods: list[str] | None = None) -> RunSteps:
    """Training and inversion steps of one `dfcil run` of `cfg` (of `methods`, default all), with
    shared θ(1) and generators counted once, as the pipeline runs them."""
    per_class = cfg.data.train_per_class or config_mod.DATASETS[cfg.data.dataset].train_per_class
    count = dict.fromkeys(KINDS, 0)
    done: set[tuple[str, str, int]] = set()
    for method in methods or cfg.methods:
        for t in range(1, cfg.data.n_tasks + 1):
            if registry.replays_inverted(method, t) and ("gen", lineage(method, t - 1), t) not in done:
                done.add(("gen", lineage(method, t - 1), t))
                count["generator"] += cfg.synthesis.steps
            if ("model", lineage(method, t), t) not in done:
                done.add(("model", lineage(method, t), t))
                for kind, steps in _stage_steps(cfg, method, t, per_class).items():
                    count[kind] += steps
    return RunSteps(count["ce"], count["replay"], count["generator"], count["kd"], count["dgr"])


def table_cost(runs: list[config_mod.Config], seeds: int, s: StepSeconds, gpus: list[int]) -> dict:
    """GPU-hours of `runs` x `seeds`, and wall hours on each GPU count. On Kubeflow the methods of
    a run are parallel chains of one-GPU steps, so the wall time is at least the longest chain
    (one method's tasks in order, shared θ(1) included) and at least the work over the GPUs."""
    total = seeds * sum(run_steps(c).seconds(s) for c in runs)
    longest = max(run_steps(c, methods=[m]).seconds(s) for c in runs for m in c.methods)
    return {"runs": seeds * len(runs), "gpu_hours": total / 3600, "longest_chain_hours": longest / 3600,
            "wall_hours": {n: max(longest, total / n) / 3600 for n in gpus}}
