"""Softmax- and sigmoid-distillation baselines without replay: LwF and LwF.MC."""

from __future__ import annotations

import torch

from dfcil_core.method import losses
from dfcil_core.method.learners.base import Learner, StepBatch, teacher_forward
from dfcil_core.method.models import IncrementalClassifier


class LwF(Learner):
    """CE over all seen classes + mu x softmax KD (T=2) over the past classes only (the authors'
    LwF: no padding, mu = 1)."""

    name = "lwf"

    def kd_weight(self) -> float:
        return self.cfg.train.lwf_mu

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None:
            return super().loss(model, b)
        logits = model(b.x_real)
        t_logits, _ = teacher_forward(b.teacher, b.x_real, b.past)
        return (self.record("ce", losses.weighted_ce(logits, b.y_real))
                + self.record("kd", self.kd_weight() * losses.softmax_kd(
                    logits, t_logits, self.cfg.train.kd_temperature, pad_to_student=False)))


class LwFMC(Learner):
    """iCaRL's sigmoid distillation without exemplars (trains its own task 1)."""

    name = "lwf_mc"

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        logits = model(b.x_real)
        t_logits = None
        if b.teacher is not None:
            t_logits, _ = teacher_forward(b.teacher, b.x_real, b.past)
        return self.record("bce", losses.lwf_mc_loss(logits, b.y_real, b.past, t_logits,
                                                     saturating=self.cfg.train.lwf_mc_bce == "reference"))
