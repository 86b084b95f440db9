"""Relation-guided distillation on synthetic replay: R-DFCIL."""

from __future__ import annotations

import torch

from dfcil_core.foundations.config import Config
from dfcil_core.method import losses
from dfcil_core.method.learners.base import Learner, StepBatch, teacher_forward
from dfcil_core.method.models import IncrementalClassifier


class RelationGuided(Learner):
    """R-DFCIL (Gao et al., ECCV 2022). Task 1 is plain CE (it shares θ(1) and the task-2 generator
    with the other CE methods). From task 2 on, a main phase trains the whole model with
      local CE on real new-task data over the new heads           x lambda_ce (1 + 1/alpha) / beta
      L1 between the old heads' logits of student and frozen old
        model on synthetic replay (hard-label-free distillation)   x lambda_hkd alpha beta
      RKD-Angle between the student's penultimate features of the
        real batch, through a learned projector, and the old model's x lambda_rkd alpha beta
    with alpha = log2(C_new/2 + 1), beta = sqrt(C_old/C_new); real and synthetic batches pass the
    student separately (their own BN batch statistics). Then a head-only phase (the last
    `finetune_epochs`, lr `finetune_lr`, trunk frozen in eval mode) trains the head with
    class-balanced CE over all seen classes on real + synthetic data, plus the same L1 term.
    """

    name = "rdfcil"

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.r = cfg.rdfcil
        self.projector: torch.nn.Linear | None = None
        self.finetuning = False

    def prepare(self, model: IncrementalClassifier, replay: bool) -> None:
        self.finetuning = False
        self.projector = None
        if replay:
            w = model.head.weight
            self.projector = torch.nn.Linear(model.features.out_dim, self.r.projector_dim).to(w.device, w.dtype)

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.projector.parameters()) if self.projector is not None else []

    def begin_epoch(self, model: IncrementalClassifier, optimizer: torch.optim.Optimizer, epoch: int,
                    epochs: int) -> None:
        if self.projector is None or epoch < epochs - self.r.finetune_epochs:
            return
        self.finetuning = True
        for p in [*model.features.parameters(), *self.projector.parameters()]:
            p.requires_grad_(False)
        model.features.eval()  # frozen trunk: no BN statistics move either
        for group in optimizer.param_groups:
            group["lr"] = self.r.finetune_lr

    def state_dict(self) -> dict:
        return {"projector": self.projector.state_dict()} if self.projector is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.projector is not None and "projector" in state:
            self.projector.load_state_dict(state["projector"])

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None or b.x_syn is None:
            return super().loss(model, b)
        r, n = self.r, b.x_real.shape[0]
        alpha, beta = losses.rdfcil_weights(b.past, b.seen)
        if self.finetuning:
            with torch.no_grad():
                feats = model.features(torch.cat([b.x_real, b.x_syn]))
            logits = model.head(feats)[:, : b.seen]
            y = torch.cat([b.y_real, b.y_syn])
            new = b.seen - b.past  # class-balanced: weights inverse to each class's share of a step
            w = torch.full((b.seen,), new / min(new, b.past), device=logits.device, dtype=logits.dtype)
            w[: b.past] = b.past / min(new, b.past)
            ce = losses.weighted_ce(logits, y, w[y])
            hkd = torch.nn.functional.l1_loss(logits[n:, : b.past], b.teacher_logits_syn)
            return self.record("balanced_ce", r.lambda_ce * ce) + self.record("hkd", r.lambda_hkd * alpha * beta * hkd)
        logits, feats = model.forward_with_features(b.x_real)
        ce = losses.weighted_ce(logits[:, b.past:b.seen], b.y_real - b.past)
        hkd = torch.nn.functional.l1_loss(model(b.x_syn)[:, : b.past], b.teacher_logits_syn)
        total = (self.record("local_ce", r.lambda_ce * (1 + 1 / alpha) / beta * ce)
                 + self.record("hkd", r.lambda_hkd * alpha * beta * hkd))
        if r.lambda_rkd > 0:
            teacher_feats = teacher_forward(b.teacher, b.x_real, b.past)[1]
            total = total + self.record("rkd", r.lambda_rkd * alpha * beta
                                        * losses.rkd_angle(self.projector(feats), teacher_feats))
        return total
