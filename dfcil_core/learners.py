"""Learners: each method is one training-step loss behind one interface.

The training loop (training.py) is shared; a learner only says which data it needs (real,
synthetic replay, the frozen previous model) and how the loss is made from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dfcil_core import losses
from dfcil_core.config import METHODS, AbdConfig, Config
from dfcil_core.errors import DfcilError
from dfcil_core.models import IncrementalClassifier

BN_MOMENTUM = 0.1  # torch's default, the authors' too


@dataclass
class StepBatch:
    """What one training step sees. Synthetic fields are None when there is no replay."""

    x_real: torch.Tensor
    y_real: torch.Tensor
    past: int
    seen: int
    teacher: IncrementalClassifier | None = None
    x_syn: torch.Tensor | None = None
    y_syn: torch.Tensor | None = None
    teacher_logits_syn: torch.Tensor | None = None
    teacher_feats_syn: torch.Tensor | None = None


def _teacher_forward(teacher: IncrementalClassifier, x: torch.Tensor,
                     past: int) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():  # the frozen teacher never needs a graph
        logits, feats = teacher.forward_with_features(x)
    return logits[:, :past], feats


class Learner:
    name = "base"
    uses_replay = False  # needs the generator from task 2 on
    shares_first_task = True  # task 1 is plain CE, shared with the other CE methods
    cumulative_data = False  # trains on all data of tasks 1..t (upper bound)
    fresh_model_each_task = False

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def prepare(self, model: IncrementalClassifier, replay: bool) -> None:
        """Called once before a task's training steps (`replay`: synthetic replay is on)."""

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        logits = model(b.x_real)
        return losses.weighted_ce(logits[:, : b.seen], b.y_real)


class UpperBound(Learner):
    """Offline oracle: at task t, a fresh model trained on all data of tasks 1..t."""

    name = "upper_bound"
    cumulative_data = True
    fresh_model_each_task = True


class LwF(Learner):
    """CE over all seen classes + mu x softmax KD (T=2) over the past classes only (the authors'
    LwF: no padding, mu = 1)."""

    name = "lwf"

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None:
            return super().loss(model, b)
        logits = model(b.x_real)
        t_logits, _ = _teacher_forward(b.teacher, b.x_real, b.past)
        return (losses.weighted_ce(logits, b.y_real)
                + self.cfg.train.lwf_mu * losses.softmax_kd(logits, t_logits, self.cfg.train.kd_temperature,
                                                            pad_to_student=False))


class LwFMC(Learner):
    """iCaRL's sigmoid distillation without exemplars (trains its own task 1)."""

    name = "lwf_mc"
    shares_first_task = False

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        logits = model(b.x_real)
        t_logits = None
        if b.teacher is not None:
            t_logits, _ = _teacher_forward(b.teacher, b.x_real, b.past)
        return losses.lwf_mc_loss(logits, b.y_real, b.past, t_logits)


class DeepInversion(Learner):
    """Eq. 8-9 as the authors' DeepInversion learner computes it: CE on real data over the seen
    classes + mu x (KD on real data over the past classes, unpadded + KD on synthetic data with the
    teacher zero-padded to the seen classes), each term a mean over its own images."""

    name = "deepinversion"
    uses_replay = True

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None or b.x_syn is None:
            return super().loss(model, b)
        n, t = b.x_real.shape[0], self.cfg.train.kd_temperature
        logits = model(torch.cat([b.x_real, b.x_syn]))
        t_logits_real, _ = _teacher_forward(b.teacher, b.x_real, b.past)
        kd = (losses.softmax_kd(logits[:n], t_logits_real, t, pad_to_student=False)
              + losses.softmax_kd(logits[n:], b.teacher_logits_syn, t, pad_to_student=True))
        return losses.weighted_ce(logits[:n], b.y_real) + self.cfg.train.deepinversion_mu * kd


class LwFSynthetic(Learner):
    """LwF with synthetic replay (the authors' DeepInversionLWF): CE on real data + mu x KD over the
    past classes only (no padding), one mean over the real + synthetic batch; mu = 0.1."""

    name = "lwf_syn"
    uses_replay = True

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None or b.x_syn is None:
            return super().loss(model, b)
        n = b.x_real.shape[0]
        logits = model(torch.cat([b.x_real, b.x_syn]))
        t_logits_real, _ = _teacher_forward(b.teacher, b.x_real, b.past)
        t_logits = torch.cat([t_logits_real, b.teacher_logits_syn])
        kd = losses.softmax_kd(logits, t_logits, self.cfg.train.kd_temperature, pad_to_student=False)
        return losses.weighted_ce(logits[:n], b.y_real) + self.cfg.train.lwf_syn_mu * kd


class AlwaysBeDreaming(Learner):
    """Eq. 15: local CE (Eq. 11) + lambda_kd * importance-weighted feature KD (Eq. 13)
    + lambda_ft * head-only FT-CE (Eq. 14), with task-balancing class weights.

    As in the authors' code: task 1 is CE over every head row (not only the seen classes), so ABD
    has its own θ(1); FT-CE's softmax spans every head row too; and while replaying, the running BN
    statistics take each batch twice (the authors' FT-CE features come from a second train-mode
    forward pass), which equals one update with momentum 1 - (1 - m)^2.
    """

    name = "abd"
    uses_replay = True
    shares_first_task = False

    def __init__(self, cfg: Config, abd: AbdConfig | None = None):
        super().__init__(cfg)
        self.abd = abd or cfg.abd

    def prepare(self, model: IncrementalClassifier, replay: bool) -> None:
        if replay and self.abd.double_bn_update:
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.momentum is not None:
                    m.momentum = 1.0 - (1.0 - BN_MOMENTUM) ** 2

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None or b.x_syn is None:
            logits, _ = model.forward_with_features(b.x_real, all_heads=True)
            return losses.weighted_ce(logits, b.y_real)
        a, n = self.abd, b.x_real.shape[0]
        weights = losses.balancing_weights(b.past, b.seen, a.task_balancing, b.x_real.device)
        x = torch.cat([b.x_real, b.x_syn])
        y = torch.cat([b.y_real, b.y_syn])
        logits, feats = model.forward_with_features(x)
        if a.local_ce:
            total = losses.local_ce(logits[:n], b.y_real, b.past, weights)
        else:
            total = losses.weighted_ce(logits[:n], b.y_real, weights[b.y_real])
        if a.ft_ce and a.lambda_ft > 0:
            total = total + a.lambda_ft * losses.ft_ce(model.head, feats, y, None, weights)
        if a.lambda_kd > 0 and (a.kd_real or a.kd_synthetic):
            student, teacher = [], []
            if a.kd_real:
                student.append(feats[:n])
                teacher.append(_teacher_forward(b.teacher, b.x_real, b.past)[1])
            if a.kd_synthetic:
                student.append(feats[n:])
                teacher.append(b.teacher_feats_syn)
            w_old = b.teacher.head.weight[: b.past]
            total = total + a.lambda_kd * losses.importance_weighted_feature_kd(
                torch.cat(student), torch.cat(teacher), w_old)
        return total


LEARNERS: dict[str, type[Learner]] = {
    "base": Learner, "upper_bound": UpperBound, "lwf": LwF, "lwf_mc": LwFMC,
    "lwf_syn": LwFSynthetic, "deepinversion": DeepInversion, "abd": AlwaysBeDreaming,
}
assert set(LEARNERS) == set(METHODS)


def make_learner(method: str, cfg: Config) -> Learner:
    if method not in LEARNERS:
        raise DfcilError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    return LEARNERS[method](cfg)


def lineage(method: str, task: int) -> str:
    """Whose model θ(task) is: CE methods share θ(1) (and the generator built from it)."""
    if task == 1 and LEARNERS[method].shares_first_task:
        return "ce"
    return method
