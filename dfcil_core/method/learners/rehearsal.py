"""Replay of stored real images (a coreset, not data-free): Naive Rehearsal, LwF + coreset, E2E and
BiC, as the authors' code runs them for the paper's Tables 2 / B (their `NormalNN`, `LWF`, `ETE`
and `BIC` learners with `--memory`). What each task's training set takes of the coreset, and how the
coreset is kept, the method registry says (`dfcil_core.method.coreset`)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from dfcil_core.foundations.config import Config
from dfcil_core.method import coreset, losses
from dfcil_core.method.learners.base import Learner, StepBatch, teacher_forward
from dfcil_core.method.learners.distillation import LwF
from dfcil_core.method.models import IncrementalClassifier, LogitBias, penultimate_features
from dfcil_core.method.task_inputs import Phase, TaskData, TaskInputs, training_set


class Rehearsal(Learner):
    """Naive Rehearsal: CE over the seen classes on the new data and as many coreset draws."""

    name = "rehearsal"


class LwFCoreset(LwF):
    """LwF on the new data and as many coreset draws: CE + mu x softmax KD over the past classes on
    every image of the batch, coreset images included (mu = 1)."""

    name = "lwf_coreset"

    def kd_weight(self) -> float:
        return self.cfg.train.lwf_coreset_mu


def per_task_kd(logits: torch.Tensor, teacher_logits: torch.Tensor, task_blocks: list[tuple[int, int]],
                temperature: float, denominator: int) -> torch.Tensor:
    """E2E's distillation: one softmax KD per past task over its own classes, each weighted by its
    share of the classes (`|T_l| / denominator`)."""
    total = logits.new_zeros(())
    for a, b in task_blocks:
        total = total + (b - a) / denominator * losses.softmax_kd(
            logits[:, a:b], teacher_logits[:, a:b], temperature, pad_to_student=False)
    return total


class EndToEnd(Learner):
    """E2E (Castro et al., ECCV 2018), as the authors' `ETE` learner: phase A trains everything on the
    new data + the whole coreset with CE over the seen classes + mu x per-task KD of the past tasks
    (weights |T_l| / past); between the phases the phase-A model ranks the new classes by distance
    to their mean (the coreset kept after this task); phase B, the balanced fine-tuning, steps the
    head alone on that coreset at lr x `phase_b_lr_scale` with CE + mu x per-task KD (weights
    |T_l| / seen) + mu x (new / seen) x KD of the new classes' logits.

    The authors' phase B distils the new classes toward the old teacher's first `new` columns
    (`e2e.phase_b_teacher: reference`); `paper` distils them toward the phase-A model's new-class
    logits. BatchNorm statistics move in phase B as in the authors' code (`e2e.phase_b_bn: train`)."""

    name = "e2e"

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.e = cfg.e2e
        self.phase = 0
        self.blocks: list[tuple[int, int]] = []
        self.selected: coreset.Coreset | None = None
        self.phase_a_state: dict | None = None  # the phase-A model's weights (`phase_b_teacher: paper`)
        self.phase_a_model: IncrementalClassifier | None = None

    def phases(self, inputs: TaskInputs, epochs: int) -> list[Phase]:
        if inputs.coreset is None:  # task 1: plain CE (the shared θ(1))
            return super().phases(inputs, epochs)
        self.blocks = inputs.past_blocks()
        return [Phase("A", training_set(self.spec, inputs), epochs),
                Phase("B", lambda: inputs.images_of(self.selected),
                      epochs if self.e.phase_b_epochs is None else self.e.phase_b_epochs,
                      parameters=lambda m: list(m.head.parameters()), lr_scale=self.e.phase_b_lr_scale,
                      bn="train" if self.e.phase_b_bn == "train" else "frozen", drop_small=True)]

    def begin_phase(self, model: IncrementalClassifier, index: int, inputs: TaskInputs) -> None:
        self.phase = index
        if index != 1:
            return
        if self.e.phase_b_teacher == "paper":
            self.phase_a_state = copy.deepcopy(model.state_dict())
        # the coreset this task keeps, ranked by the phase-A model (it is also phase B's data)
        pool = TaskData.cat(inputs.new, inputs.coreset)
        refs = np.concatenate([inputs.new_refs.refs, inputs.coreset_refs.refs])
        index_of = {tuple(r): i for i, r in enumerate(refs.tolist())}

        def features_of(cands: np.ndarray) -> np.ndarray:
            return penultimate_features(model, pool.take([index_of[tuple(r)] for r in cands.tolist()]).x, inputs.normalize)

        cands = coreset.candidates(inputs.new_refs, inputs.coreset_refs)
        self.selected = coreset.select_ranked(cands, inputs.coreset_refs, self.cfg.coreset.size, "mean_distance",
                                              features_of)

    def state_dict(self) -> dict:
        state: dict = {"phase": self.phase}
        if self.selected is not None:
            state["selected"] = self.selected.to_json()
        if self.phase_a_state is not None:
            state["phase_a_model"] = self.phase_a_state
        return state

    def load_state_dict(self, state: dict) -> None:
        self.phase = state.get("phase", 0)
        if "selected" in state:
            self.selected = coreset.Coreset.from_json(state["selected"])
        self.phase_a_state = state.get("phase_a_model")

    def _phase_a(self, model: IncrementalClassifier) -> IncrementalClassifier:
        if self.phase_a_model is None:
            self.phase_a_model = copy.deepcopy(model).eval()
            self.phase_a_model.load_state_dict(self.phase_a_state)
            for p in self.phase_a_model.parameters():
                p.requires_grad_(False)
        return self.phase_a_model

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None:
            return super().loss(model, b)
        t, mu = self.cfg.train.kd_temperature, self.e.mu
        logits = model(b.x_real)
        t_logits, _ = teacher_forward(b.teacher, b.x_real, b.past)
        ce = self.record("ce", losses.weighted_ce(logits, b.y_real))
        if self.phase == 0:
            return ce + self.record("kd", mu * per_task_kd(logits, t_logits, self.blocks, t, b.past))
        new = b.seen - b.past
        if self.e.phase_b_teacher == "reference":
            target_new = t_logits[:, :new]  # the authors' code: the old teacher's first `new` columns
        else:
            with torch.inference_mode():
                target_new = self._phase_a(model)(b.x_real)[:, b.past:b.seen]
        kd_new = losses.softmax_kd(logits[:, b.past:b.seen], target_new, t, pad_to_student=False)
        return (ce + self.record("kd", mu * per_task_kd(logits, t_logits, self.blocks, t, b.seen))
                + self.record("kd_new", mu * new / b.seen * kd_new))


class BiasCorrection(Learner):
    """BiC (Wu et al., CVPR 2019), as the authors' `BIC` learner: the new data and the coreset, each
    with a held-out share (`bic.holdout` of the coreset, split evenly over the past classes, from
    both the new classes and the old); stage 1 trains everything on the rest with
    (1 - mu) CE + mu x softmax KD over the past classes, mu = past / seen, through the bias layers of
    the earlier tasks (frozen), against the old model with its own; stage 2 fits a new layer
    (alpha, beta) on the new classes' logits to the held-out set, CE over the seen classes, at lr x
    `stage2_lr_scale`, BatchNorm statistics moving as in the authors' code (`bic.stage2_bn`). A
    held-out set smaller than one batch gives stage 2 no step, as the authors' loader does.

    The authors evaluate the raw logits, without the bias layers (`bic.apply_at_eval: false`)."""

    name = "bic"

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.b = cfg.bic
        self.phase = 0
        self.bias = LogitBias()
        self.teacher_bias = LogitBias()

    def take_carry(self, carried: dict) -> None:
        layers = carried.get("logit_bias", [])
        self.bias = LogitBias.from_list(layers)
        self.teacher_bias = LogitBias.from_list(layers)  # θ(t-1) with its own layers
        for p in [*self.bias.parameters(), *self.teacher_bias.parameters()]:
            p.requires_grad_(False)

    def carry(self) -> dict:
        return {"logit_bias": self.bias.to_list()} if len(self.bias.ranges) else {}

    def phases(self, inputs: TaskInputs, epochs: int) -> list[Phase]:
        if inputs.coreset is None:
            return super().phases(inputs, epochs)
        past = inputs.past_blocks()[-1][1]
        h = coreset.bic_holdout(inputs.new_refs.labels, inputs.coreset_refs.labels, self.b.holdout, past)
        stage1 = TaskData.cat(inputs.new.take(h.new_train), inputs.coreset.take(h.coreset_train))
        held = TaskData.cat(inputs.new.take(h.new_held), inputs.coreset.take(h.coreset_held))
        return [Phase("stage 1", stage1, epochs),
                Phase("stage 2", held, epochs if self.b.stage2_epochs is None else self.b.stage2_epochs,
                      parameters=lambda m: [self.bias.alphas[-1], self.bias.betas[-1]],
                      lr_scale=self.b.stage2_lr_scale, bn="train" if self.b.stage2_bn == "train" else "frozen",
                      drop_small=True)]

    def begin_phase(self, model: IncrementalClassifier, index: int, inputs: TaskInputs) -> None:
        self.phase = index
        if index == 1:
            self.bias.add(inputs.past_blocks()[-1][1], model.num_classes, like=model.head.weight)

    def state_dict(self) -> dict:
        return {"phase": self.phase, "logit_bias": self.bias.to_list()}

    def load_state_dict(self, state: dict) -> None:
        self.phase = state.get("phase", 0)
        if "logit_bias" in state:
            self.bias = LogitBias.from_list(state["logit_bias"])
            for p in self.bias.parameters():
                p.requires_grad_(False)
            if self.phase == 1 and len(self.bias.alphas):
                self.bias.alphas[-1].requires_grad_(True)
                self.bias.betas[-1].requires_grad_(True)

    def loss(self, model: IncrementalClassifier, b: StepBatch) -> torch.Tensor:
        if b.teacher is None:
            return super().loss(model, b)
        if self.phase == 1:  # stage 2: only the new bias layer learns; the trunk's BN may still move
            with torch.no_grad():
                raw = model(b.x_real)
            return self.record("ce_bias", losses.weighted_ce(self.bias(raw), b.y_real))
        logits = self.bias(model(b.x_real))
        t_logits, _ = teacher_forward(b.teacher, b.x_real, b.past)
        with torch.no_grad():  # the old model with its own bias layers: a fixed target
            t_logits = self.teacher_bias(t_logits)
        mu = b.past / b.seen
        return (self.record("ce", (1 - mu) * losses.weighted_ce(logits, b.y_real))
                + self.record("kd", mu * losses.softmax_kd(logits[:, : b.past], t_logits,
                                                           self.cfg.train.kd_temperature, pad_to_student=False)))
