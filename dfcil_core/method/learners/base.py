"""The learner interface: one training-step loss per method, behind the one training loop.

A learner says how the loss is made from what a step sees (real data, synthetic replay, the frozen
previous model); what data it gets, and whose model it starts from, the method registry says.
Base (fine-tuning) and the offline Upper bound are this interface's plain CE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dfcil_core.foundations.config import Config
from dfcil_core.foundations.registry import Method, method
from dfcil_core.method import losses
from dfcil_core.method.models import IncrementalClassifier
from dfcil_core.method.task_inputs import Phase, TaskInputs, training_set


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


def teacher_forward(teacher: IncrementalClassifier, x: torch.Tensor,
                     past: int) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():  # the frozen teacher never needs a graph
        logits, feats = teacher.forward_with_features(x)
    return logits[:, :past], feats


class Learner:
    """Base: CE over the seen classes. `name` is the method's registry key."""

    name = "base"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.terms: dict[str, torch.Tensor] = {}

    @property
    def spec(self) -> Method:
        """The method's registry entry: its lineage, what it replays, its data."""
        return method(self.name)

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

    def phases(self, inputs: TaskInputs, epochs: int) -> list[Phase]:
        """The task's phases: one over the task's training set (the new data, and the coreset as the
        method's registry entry mixes it in)."""
        return [Phase("main", training_set(self.spec, inputs), epochs)]

    def begin_phase(self, model: IncrementalClassifier, index: int, inputs: TaskInputs) -> None:
        """Called when phase `index` starts (not again when an in-task checkpoint resumes inside it):
        what only the phase before can give (E2E's coreset, BiC's new bias layer)."""

    def begin_epoch(self, model: IncrementalClassifier, optimizer: torch.optim.Optimizer, epoch: int,
                    epochs: int) -> None:
        """Called at the start of every epoch of a phase, after the schedule's lr is set (freezing)."""

    def after_step(self, model: IncrementalClassifier, batch: StepBatch, gen: torch.Generator) -> None:
        """Called after each optimizer step (DGR steps its VAE on the same batch here)."""

    def end_epoch(self) -> None:
        """Called after each epoch's schedule step (DGR steps its VAE's schedule here)."""

    def carry(self) -> dict:
        """What the next task's learner needs of this one, beyond the weights (BiC's bias layers):
        kept in θ(t)'s checkpoint."""
        return {}

    def take_carry(self, carried: dict) -> None:
        """Take what θ(t-1)'s checkpoint carried (see `carry`) before the task's training."""

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
