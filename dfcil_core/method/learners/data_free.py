"""Data-free replay of synthetic images inverted from the previous model: LwF + synthetic replay,
DeepInversion and Always Be Dreaming."""

from __future__ import annotations

import torch

from dfcil_core.foundations.config import AbdConfig, Config
from dfcil_core.method import losses
from dfcil_core.method.learners.base import Learner, StepBatch, teacher_forward
from dfcil_core.method.models import IncrementalClassifier

BN_MOMENTUM = 0.1  # torch's default, the authors' too


class LwFSynthetic(Learner):
    """LwF with synthetic replay (the authors' DeepInversionLWF): CE on real data + mu x KD over the
    past classes only (no padding), one mean over the real + synthetic batch; mu = 0.1."""

    name = "lwf_syn"

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None or b.x_syn is None:
            return super().loss(model, b)
        n = b.x_real.shape[0]
        logits = model(torch.cat([b.x_real, b.x_syn]))
        t_logits_real, _ = teacher_forward(b.teacher, b.x_real, b.past)
        t_logits = torch.cat([t_logits_real, b.teacher_logits_syn])
        kd = losses.softmax_kd(logits, t_logits, self.cfg.train.kd_temperature, pad_to_student=False)
        return (self.record("ce", losses.weighted_ce(logits[:n], b.y_real))
                + self.record("kd", self.cfg.train.lwf_syn_mu * kd))


class DeepInversion(Learner):
    """Eq. 8-9 as the authors' DeepInversion learner computes it: CE on real data over the seen
    classes + mu x (KD on real data over the past classes, unpadded + KD on synthetic data with the
    teacher zero-padded to the seen classes), each term a mean over its own images."""

    name = "deepinversion"

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None or b.x_syn is None:
            return super().loss(model, b)
        n, t = b.x_real.shape[0], self.cfg.train.kd_temperature
        logits = model(torch.cat([b.x_real, b.x_syn]))
        t_logits_real, _ = teacher_forward(b.teacher, b.x_real, b.past)
        kd = (losses.softmax_kd(logits[:n], t_logits_real, t, pad_to_student=False)
              + losses.softmax_kd(logits[n:], b.teacher_logits_syn, t, pad_to_student=True))
        return (self.record("ce", losses.weighted_ce(logits[:n], b.y_real))
                + self.record("kd", self.cfg.train.deepinversion_mu * kd))


class AlwaysBeDreaming(Learner):
    """Eq. 15: local CE (Eq. 11) + lambda_kd * importance-weighted feature KD (Eq. 13)
    + lambda_ft * head-only FT-CE (Eq. 14), with task-balancing class weights.

    As in the authors' code: task 1 is CE over every head row (not only the seen classes), so ABD
    has its own θ(1); FT-CE's softmax spans every head row too; and while replaying, the running BN
    statistics take each batch twice (the authors' FT-CE features come from a second train-mode
    forward pass), which equals one update with momentum 1 - (1 - m)^2.
    """

    name = "abd"

    def __init__(self, cfg: Config, abd: AbdConfig | None = None):
        super().__init__(cfg)
        self.abd = abd or cfg.abd

    def prepare(self, model: IncrementalClassifier, replay: bool) -> None:
        if replay and self.abd.double_bn_update:
            for m in model.modules():
                if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) and m.momentum is not None:
                    m.momentum = 1.0 - (1.0 - BN_MOMENTUM) ** 2

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None or b.x_syn is None:
            logits, _ = model.forward_with_features(b.x_real, all_heads=True)
            return self.record("ce", losses.weighted_ce(logits, b.y_real))
        a, n = self.abd, b.x_real.shape[0]
        weights = losses.balancing_weights(b.past, b.seen, a.task_balancing, b.x_real.device)
        x = torch.cat([b.x_real, b.x_syn])
        y = torch.cat([b.y_real, b.y_syn])
        logits, feats = model.forward_with_features(x)
        if a.local_ce:
            total = self.record("local_ce", losses.local_ce(logits[:n], b.y_real, b.past, weights))
        else:
            total = self.record("ce", losses.weighted_ce(logits[:n], b.y_real, weights[b.y_real]))
        if a.ft_ce and a.lambda_ft > 0:
            total = total + self.record("ft_ce", a.lambda_ft * losses.ft_ce(model.head, feats, y, None, weights))
        if a.lambda_kd > 0 and (a.kd_real or a.kd_synthetic):
            student, teacher = [], []
            if a.kd_real:
                student.append(feats[:n])
                teacher.append(teacher_forward(b.teacher, b.x_real, b.past)[1])
            if a.kd_synthetic:
                student.append(feats[n:])
                teacher.append(b.teacher_feats_syn)
            w_old = b.teacher.head.weight[: b.past]
            total = total + self.record("feature_kd", a.lambda_kd * losses.importance_weighted_feature_kd(
                torch.cat(student), torch.cat(teacher), w_old))
        return total
