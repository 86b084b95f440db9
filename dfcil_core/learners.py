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
        self.terms: dict[str, torch.Tensor] = {}

    def record(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """Keep a weighted term of the last step's loss (detached, on the device: the loop averages
        the terms per epoch for the loss curves); returns `value` so a loss reads as its formula."""
        self.terms[name] = value.detach()
        return value

    def prepare(self, model: IncrementalClassifier, replay: bool) -> None:
        """Called once before a task's training steps (`replay`: synthetic replay is on)."""

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        """Trainable parameters of the learner itself (trained with the model, dropped after the task)."""
        return []

    def begin_epoch(self, model: IncrementalClassifier, optimizer: torch.optim.Optimizer, epoch: int,
                    epochs: int) -> None:
        """Called at the start of every epoch, after the schedule's lr is set (phases, freezing)."""

    def state_dict(self) -> dict:
        """The learner's own state, saved in in-task checkpoints."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        logits = model(b.x_real)
        return self.record("ce", losses.weighted_ce(logits[:, : b.seen], b.y_real))


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
        return (self.record("ce", losses.weighted_ce(logits, b.y_real))
                + self.record("kd", self.cfg.train.lwf_mu * losses.softmax_kd(
                    logits, t_logits, self.cfg.train.kd_temperature, pad_to_student=False)))


class LwFMC(Learner):
    """iCaRL's sigmoid distillation without exemplars (trains its own task 1)."""

    name = "lwf_mc"
    shares_first_task = False

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        logits = model(b.x_real)
        t_logits = None
        if b.teacher is not None:
            t_logits, _ = _teacher_forward(b.teacher, b.x_real, b.past)
        return self.record("bce", losses.lwf_mc_loss(logits, b.y_real, b.past, t_logits,
                                                     saturating=self.cfg.train.lwf_mc_bce == "reference"))


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
        return (self.record("ce", losses.weighted_ce(logits[:n], b.y_real))
                + self.record("kd", self.cfg.train.deepinversion_mu * kd))


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
        return (self.record("ce", losses.weighted_ce(logits[:n], b.y_real))
                + self.record("kd", self.cfg.train.lwf_syn_mu * kd))


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
                teacher.append(_teacher_forward(b.teacher, b.x_real, b.past)[1])
            if a.kd_synthetic:
                student.append(feats[n:])
                teacher.append(b.teacher_feats_syn)
            w_old = b.teacher.head.weight[: b.past]
            total = total + self.record("feature_kd", a.lambda_kd * losses.importance_weighted_feature_kd(
                torch.cat(student), torch.cat(teacher), w_old))
        return total


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
    uses_replay = True

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
            teacher_feats = _teacher_forward(b.teacher, b.x_real, b.past)[1]
            total = total + self.record("rkd", r.lambda_rkd * alpha * beta
                                        * losses.rkd_angle(self.projector(feats), teacher_feats))
        return total


LEARNERS: dict[str, type[Learner]] = {
    "base": Learner, "upper_bound": UpperBound, "lwf": LwF, "lwf_mc": LwFMC,
    "lwf_syn": LwFSynthetic, "deepinversion": DeepInversion, "abd": AlwaysBeDreaming, "rdfcil": RelationGuided,
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
