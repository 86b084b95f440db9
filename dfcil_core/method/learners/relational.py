"""Relation-guided distillation on synthetic replay: R-DFCIL."""

from __future__ import annotations

import torch

from dfcil_core.foundations.config import Config
from dfcil_core.method import losses
from dfcil_core.method.learners.base import Learner, StepBatch, teacher_forward
from dfcil_core.method.models import IncrementalClassifier


class RelationGuided(Learner):
    """R-DFCIL (Gao et al., ECCV 2022), as its authors' code trains it. Task 1 is plain CE (it shares
    θ(1) and the task-2 generator with the other CE methods); from task 2 on a new generator is
    inverted before each task (the registry's `carries_generator`). A main phase trains the whole model with
      local CE on real new-task data over the new heads           x lambda_ce (1 + 1/alpha) / beta
      L1 between the old heads' logits of student and frozen old
        model on synthetic replay (hard-label-free distillation)   x lambda_hkd alpha beta
      RKD-Angle (L1) between the student's penultimate features of
        the real batch and the old model's, each through a learned
        projection of its own                                     x lambda_rkd alpha beta
    with alpha = log2(C_new/2 + 1), beta = sqrt(C_old/C_new); real and synthetic batches pass the
    student separately (their own BN batch statistics). Then a head-only phase (the last
    `finetune_epochs`, lr `finetune_lr`, trunk and projections frozen, trunk in eval mode) trains the
    head with class-balanced CE over all seen classes on real + synthetic data, plus the same L1 term.
    The balancing weights are 1 / (how often each class was a target so far in the task: real labels
    and the old model's labels of the replay), renewed after every epoch as in its authors' code: a
    replay that draws some old classes rarely weights them up.
    """

    name = "rdfcil"

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.r = cfg.rdfcil
        self.projections: torch.nn.ModuleDict | None = None  # "student", "teacher"
        self.class_counts: torch.Tensor | None = None
        self.class_weights: torch.Tensor | None = None
        self.finetuning = False

    def prepare(self, model: IncrementalClassifier, replay: bool) -> None:
        self.finetuning = False
        self.projections = self.class_counts = self.class_weights = None
        if replay:
            w = model.head.weight
            dim = model.features.out_dim
            self.projections = torch.nn.ModuleDict({
                side: torch.nn.Linear(dim, self.r.projector_dim) for side in ("student", "teacher")
            }).to(w.device, w.dtype)
            self.class_counts = torch.zeros(w.shape[0], device=w.device, dtype=torch.float64)
            self.class_weights = torch.ones(w.shape[0], device=w.device, dtype=torch.float64)

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.projections.parameters()) if self.projections is not None else []

    def begin_epoch(self, model: IncrementalClassifier, optimizer: torch.optim.Optimizer, epoch: int,
                    epochs: int) -> None:
        if self.projections is None or epoch < epochs - self.r.finetune_epochs:
            return
        self.finetuning = True
        for p in [*model.features.parameters(), *self.projections.parameters()]:
            p.requires_grad_(False)
        model.features.eval()  # frozen trunk: no BN statistics move either
        for group in optimizer.param_groups:
            group["lr"] = self.r.finetune_lr

    def end_epoch(self) -> None:
        if self.class_counts is not None:
            self.class_weights = self.class_counts.sum() / self.class_counts.clamp(min=1)

    def state_dict(self) -> dict:
        if self.projections is None:
            return {}
        return {"projections": self.projections.state_dict(), "class_counts": self.class_counts,
                "class_weights": self.class_weights}

    def load_state_dict(self, state: dict) -> None:
        if self.projections is None:
            return
        # An in-task checkpoint of the earlier R-DFCIL (one projection, no counts) raises KeyError here,
        # which the loop reports as a checkpoint that does not fit.
        self.projections.load_state_dict(state["projections"])
        self.class_counts = state["class_counts"].to(self.class_counts.device)
        self.class_weights = state["class_weights"].to(self.class_weights.device)

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None or b.x_syn is None:
            return super().loss(model, b)
        r, n = self.r, b.x_real.shape[0]
        alpha, beta = losses.rdfcil_weights(b.past, b.seen)
        y = torch.cat([b.y_real, b.y_syn])
        self.class_counts.index_add_(0, y, torch.ones_like(y, dtype=self.class_counts.dtype))
        if self.finetuning:
            with torch.no_grad():
                feats = model.features(torch.cat([b.x_real, b.x_syn]))
            logits = model.head(feats)[:, : b.seen]
            ce = losses.class_weighted_ce(logits, y, self.class_weights[: b.seen])
            hkd = torch.nn.functional.l1_loss(logits[n:, : b.past], b.teacher_logits_syn)
            return self.record("balanced_ce", r.lambda_ce * ce) + self.record("hkd", r.lambda_hkd * alpha * beta * hkd)
        logits, feats = model.forward_with_features(b.x_real)
        ce = losses.weighted_ce(logits[:, b.past:b.seen], b.y_real - b.past)
        hkd = torch.nn.functional.l1_loss(model(b.x_syn)[:, : b.past], b.teacher_logits_syn)
        total = (self.record("local_ce", r.lambda_ce * (1 + 1 / alpha) / beta * ce)
                 + self.record("hkd", r.lambda_hkd * alpha * beta * hkd))
        if r.lambda_rkd > 0:
            # a copy outside inference mode: the teacher's projection needs its input for backward
            teacher_feats = teacher_forward(b.teacher, b.x_real, b.past)[1].clone()
            total = total + self.record("rkd", r.lambda_rkd * alpha * beta * losses.rkd_angle(
                self.projections["student"](feats), self.projections["teacher"](teacher_feats)))
        return total
