"""Generative replay with a model trained beside the classifier: DGR (Shin et al., NeurIPS 2017), as
the authors' `Generative_Replay` learner runs it for the paper's Table 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dfcil_core.foundations.config import Config
from dfcil_core.method import losses
from dfcil_core.method.learners.base import Learner, StepBatch
from dfcil_core.method.models import IncrementalClassifier, VariationalAutoencoder
from dfcil_core.method.runtime import fused_if_supported
from dfcil_core.method.task_inputs import Phase, TaskInputs


def vae_loss(vae: VariationalAutoencoder, x: torch.Tensor, weights: torch.Tensor,
             eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction, KL) of the authors' VAE objective: per image the mean pixel BCE of its
    reconstruction, weighted and averaged over the batch; the KL of q(z|x) to N(0, I) averaged over
    the batch and divided by the number of pixels (so both are per-element scales), unweighted."""
    recon, mean, logvar = vae(x, eps)
    bce = F.binary_cross_entropy(recon.flatten(1), x.flatten(1), reduction="none").mean(dim=1)
    kl = (-0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(dim=1)).mean() / vae.pixels
    return (bce * weights).mean(), kl


class GenerativeReplay(Learner):
    """DGR: images in [0, 1]; from task 2 on each real batch is joined by as many images decoded
    from the previous task's frozen VAE, labelled by the previous classifier's argmax over the past
    classes. The classifier's loss over the joined batch is the class-weighted CE (past classes
    weigh past / seen, new ones 1 - past / seen) + mu x softmax KD toward the previous classifier on
    the replayed half; then the live VAE, which carries on from task to task with a fresh optimizer
    (the solver's SGD settings, `dgr.weight_decay`), takes one step on the same joined batch and
    weights. DGR trains its own θ(1) (its VAE learns from task 1, and both see [0, 1] inputs)."""

    name = "dgr"

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.d = cfg.dgr
        self.vae: VariationalAutoencoder | None = None
        self.vae_opt: torch.optim.Optimizer | None = None
        self.vae_sched = None
        self._vae_batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def attach_vae(self, vae: VariationalAutoencoder) -> None:
        """The live VAE of this task (new at task 1, the previous task's after it)."""
        self.vae = vae

    def start_vae(self, epochs: int) -> None:
        """A fresh optimizer and schedule for the live VAE (the authors reset both every task)."""
        if self.vae is None:
            raise ValueError("DGR trains with a VAE: attach one first")
        t = self.cfg.train
        device = next(self.vae.parameters()).device
        self.vae_opt = torch.optim.SGD(self.vae.parameters(), lr=t.lr, momentum=t.momentum,
                                       weight_decay=self.d.weight_decay, **fused_if_supported(device))
        self.vae_sched = torch.optim.lr_scheduler.MultiStepLR(
            self.vae_opt, milestones=[m for m in t.milestones if m < epochs], gamma=t.gamma)

    def phases(self, inputs: TaskInputs, epochs: int) -> list[Phase]:
        self.start_vae(epochs)
        return [Phase("main", inputs.new, epochs, weight_decay=self.d.weight_decay)]

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        n = b.x_real.shape[0]
        replay = b.x_syn is not None and b.teacher is not None
        x = torch.cat([b.x_real, b.x_syn]) if replay else b.x_real
        y = torch.cat([b.y_real, b.y_syn]) if replay else b.y_real
        logits = model(x)[:, : b.seen]
        share = b.past / b.seen
        weights = torch.where(y < b.past, share, 1.0 - share).to(logits.dtype)
        self._vae_batch = (x.detach(), weights.detach())
        total = self.record("ce", losses.weighted_ce(logits, y, weights))
        if replay:
            kd = losses.softmax_kd(logits[n:, : b.past], b.teacher_logits_syn, self.cfg.train.kd_temperature,
                                   pad_to_student=False)
            total = total + self.record("kd", self.d.mu * kd)
        return total

    def after_step(self, model: IncrementalClassifier, batch: StepBatch, gen: torch.Generator) -> None:
        x, weights = self._vae_batch
        self.vae.train()
        mean_shape = (x.shape[0], self.vae.z_dim)
        eps = torch.randn(mean_shape, device=x.device, dtype=x.dtype, generator=gen)
        recon, kl = vae_loss(self.vae, x.contiguous(), weights, eps)
        self.vae_opt.zero_grad(set_to_none=True)
        (recon + kl).backward()
        self.vae_opt.step()

    def end_epoch(self) -> None:
        self.vae_sched.step()

    def state_dict(self) -> dict:
        return {"vae": self.vae.state_dict(), "vae_opt": self.vae_opt.state_dict(),
                "vae_sched": self.vae_sched.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "vae" in state:
            self.vae.load_state_dict(state["vae"])
            self.vae_opt.load_state_dict(state["vae_opt"])
            self.vae_sched.load_state_dict(state["vae_sched"])

