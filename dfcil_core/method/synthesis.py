"""Model inversion: train the generator F against the frozen previous model (Eq. 1-7).

No real image ever reaches this module. BN-statistics hooks are attached only while the
generator trains (cheaper than keeping them on the teacher for every forward pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dfcil_core.foundations.config import Config, SynthesisConfig
from dfcil_core.foundations.errors import Diverged, StopRequested
from dfcil_core.method import losses
from dfcil_core.method.models import Generator, IncrementalClassifier
from dfcil_core.method.runtime import SigtermFlag, autocast, fused_if_supported, prepare_model


class BNStatisticsHooks:
    """Forward hooks on every BatchNorm2d of a model: the Eq. 5 KL of each layer's input batch.

    Each hook only records the batch mean/variance (one `var_mean`); `pop_mean` evaluates the KL
    of all layers in one go over the concatenated channels (few kernels instead of ~10 per layer;
    the step is launch-bound on a GPU). The model is frozen while hooked, so its running
    statistics are read once.
    """

    def __init__(self, model: nn.Module):
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        self.stats: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.handles = [m.register_forward_hook(self._hook) for m in bns]
        if bns:
            self.running_mean = torch.cat([losses.upcast(m.running_mean) for m in bns])
            self.running_var = torch.cat([losses.upcast(m.running_var) for m in bns])
            # Mean over each layer's channels, then over layers, as one weighted sum.
            self.weights = torch.cat([torch.full((m.num_features,), 1.0 / (m.num_features * len(bns)),
                                                 device=m.running_mean.device,
                                                 dtype=self.running_mean.dtype) for m in bns])

    def _hook(self, module: nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        var, mean = torch.var_mean(losses.upcast(inputs[0]), dim=(0, 2, 3), unbiased=False)
        self.stats.append((mean, var))

    def pop_mean(self) -> torch.Tensor:
        """Mean KL over the BN layers of the last forward pass."""
        mean = torch.cat([m for m, _ in self.stats])
        var = torch.cat([v for _, v in self.stats])
        self.stats.clear()
        kl = losses.bn_stat_kl_per_channel(mean, var, self.running_mean, self.running_var)
        return (kl * self.weights).sum()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def inversion_loss(generator: Generator, teacher: IncrementalClassifier, hooks: BNStatisticsHooks,
                   past: int, cfg: SynthesisConfig, kernel: torch.Tensor,
                   batch: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Eq. 7 on one generated batch; returns every weighted term and the total."""
    x = generator.sample(cfg.batch_size) if batch is None else batch
    logits = teacher(x)[:, :past]
    terms = {
        "content": cfg.alpha_con * losses.content_loss(logits, cfg.alpha_temp),
        "diversity": cfg.alpha_div * losses.diversity_loss(logits),
        "stat": cfg.alpha_stat * hooks.pop_mean(),
        "prior": cfg.alpha_prior * losses.smoothness_prior(x, kernel),
    }
    terms["total"] = sum(terms.values())
    return terms


def inversion_step(generator: Generator, optimizer: torch.optim.Optimizer, teacher: IncrementalClassifier,
                   hooks: BNStatisticsHooks, past: int, cfg: SynthesisConfig, kernel: torch.Tensor,
                   amp: bool = False) -> dict[str, torch.Tensor]:
    """One Adam step of F on Eq. 7 (`hooks` must sit on `teacher`); returns the loss terms."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(kernel.device, amp):
        terms = inversion_loss(generator, teacher, hooks, past, cfg, kernel)
    terms["total"].backward()
    optimizer.step()
    return terms


def synthesize_generator(generator: Generator, optimizer: torch.optim.Optimizer,
                         teacher: IncrementalClassifier, past: int, cfg: SynthesisConfig,
                         steps: int | None = None, log_every: int = 50,
                         on_step: Callable[[int], None] | None = None, amp: bool = False) -> dict[str, list[float]]:
    """Train F for `steps` Adam steps by inverting the frozen `teacher` over its `past` classes.

    Generator in train mode, teacher in eval mode with frozen weights. Returns loss curves
    sampled every `log_every` steps. `amp`: bf16 autocast on CUDA (the BN-statistics KL is still
    computed in fp32). Raises `Diverged` at the first logged step by which a step's total loss was not
    finite or above `cfg.max_loss` (the largest is kept on the device: one host sync per logged step).
    """
    steps = cfg.steps if steps is None else steps
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    generator.train()
    hooks = BNStatisticsHooks(teacher)
    kernel = prior_kernel(cfg).to(next(generator.parameters()).device)
    curves: dict[str, list[float]] = {"step": [], "content": [], "diversity": [], "stat": [],
                                      "prior": [], "total": []}
    pending: list[tuple[int, dict[str, torch.Tensor]]] = []
    worst = torch.zeros((), device=kernel.device)
    try:
        for step in range(steps):
            if SigtermFlag.requested:  # nothing is written: re-running the stage redoes this synthesis
                raise StopRequested(f"stopped at generator step {step} of {steps}; re-run to synthesize again")
            terms = inversion_step(generator, optimizer, teacher, hooks, past, cfg, kernel, amp)
            worst = torch.maximum(worst, terms["total"].detach().float())
            if step % log_every == 0 or step == steps - 1:
                pending.append((step, {k: v.detach() for k, v in terms.items()}))
                worst_loss = float(worst)
                if not math.isfinite(worst_loss) or worst_loss > cfg.max_loss:
                    raise Diverged(f"the inversion loss diverged by step {step + 1} of {steps} (a step loss of "
                                   f"{worst_loss:.3g}; bound synthesis.max_loss {cfg.max_loss:g})")
            if on_step is not None:
                on_step(step)
    finally:
        hooks.remove()
    for step, terms in pending:  # one host transfer per logged step, after the loop
        curves["step"].append(step)
        for k, v in terms.items():
            curves[k].append(float(v))
    generator.eval()
    return curves


def prior_kernel(cfg: SynthesisConfig) -> torch.Tensor:
    """The 5x5 blur of the smoothness prior (Eq. 6), σ = 1 in the chosen form."""
    return losses.gaussian_kernel(5, 1.0, cfg.prior_kernel)


def build_generator(cfg: Config, device: torch.device) -> Generator:
    """A fresh generator F laid out as the runtime asks, to load a checkpoint into and sample from.
    No optimiser: building one imports torch._dynamo (about 2.5 s of a process's start on a CPU)."""
    return prepare_model(Generator(cfg.synthesis.z_dim, cfg.data.image_size), device, cfg.runtime)


def new_generator(cfg: Config, device: torch.device) -> tuple[Generator, torch.optim.Optimizer]:
    """A fresh generator F and its Adam optimiser, to train."""
    g = build_generator(cfg, device)
    return g, torch.optim.Adam(g.parameters(), lr=cfg.synthesis.lr, **fused_if_supported(device))


def sample_replay(generator: Generator, teacher: IncrementalClassifier, n: int, past: int,
                  gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """A synthetic batch from the eval-mode generator with the frozen teacher's view of it:
    logits over the past classes, replay labels (their argmax) and penultimate features."""
    with torch.no_grad():  # not inference_mode: the student trains on these images
        x = generator.sample(n, gen)
    with torch.inference_mode():
        logits, feats = teacher.forward_with_features(x)
    logits = logits[:, :past]
    return {"x": x, "logits": logits, "labels": logits.argmax(dim=1), "features": feats}


def replay_class_shares(generator: Generator, teacher: IncrementalClassifier, past: int,
                        blocks: list[tuple[int, int]], n: int = 1000, batch: int = 250,
                        gen: torch.Generator | None = None) -> dict[str, Any]:
    """What a replay draws: over `n` samples, the share labelled with each old task's classes
    (`blocks`: [start, end) per old task) and how many of the `past` classes appear at all. A
    generator that keeps drawing the first task's classes leaves the later old tasks unrehearsed."""
    counts = torch.zeros(past, dtype=torch.long)
    for i in range(0, n, batch):
        labels = sample_replay(generator, teacher, min(batch, n - i), past, gen)["labels"]
        counts += torch.bincount(labels.cpu(), minlength=past)
    return {"samples": n, "share_by_task": [round(int(counts[a:b].sum()) / n, 4) for a, b in blocks],
            "classes_drawn": int((counts > 0).sum()), "classes": past}
