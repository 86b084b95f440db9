"""What a task trains on, and how: its images (uint8 on the device) with their references into the
split, and the phases of its training. Below the learners and the training loop, which both use it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from dfcil_core.foundations.registry import Method
from dfcil_core.method.coreset import Coreset, draws

if TYPE_CHECKING:
    from dfcil_core.method.models import IncrementalClassifier


@dataclass
class TaskData:
    x: torch.Tensor  # uint8 (N, C, H, W) on the device
    y: torch.Tensor  # int64 (N,) on the device

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, index: torch.Tensor | np.ndarray) -> TaskData:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long, device=self.y.device)
        return TaskData(self.x[index], self.y[index])

    @staticmethod
    def cat(*parts: TaskData) -> TaskData:
        return TaskData(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))


def to_device(x: np.ndarray, y: np.ndarray, device: torch.device) -> TaskData:
    return TaskData(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))


@dataclass
class TaskInputs:
    """What one task trains on: its new images and, for a coreset method, the coreset kept after the
    task before (its images gathered from the split, in the coreset's order), each image with its
    reference (task, row) into the split; `seed` and `task` fix the coreset's draws."""

    new: TaskData
    new_refs: Coreset | None = None
    coreset: TaskData | None = None
    coreset_refs: Coreset | None = None
    seed: int = 0
    task: int = 1
    blocks: list[tuple[int, int]] | None = None  # the class range [start, end) of each task 1..t
    # uint8 images -> the model's input without augmentation (the test transform); set by the loop
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None

    def past_blocks(self) -> list[tuple[int, int]]:
        """The class ranges of the tasks before this one."""
        if self.blocks is None:
            raise ValueError("the task inputs name no class ranges (blocks)")
        return self.blocks[: self.task - 1]

    def images_of(self, refs: Coreset) -> TaskData:
        """The images of entries of the new data or of the coreset (e.g. a newly selected coreset)."""
        pool = [(self.new, self.new_refs)] + ([(self.coreset, self.coreset_refs)] if self.coreset is not None else [])
        where = {}
        for part, (_, known) in enumerate(pool):
            for i, (t, r) in enumerate(known.refs.tolist()):
                where.setdefault((t, r), (part, i))
        picks = [where[(t, r)] for t, r in refs.refs.tolist()]
        xs = [pool[part][0].x[i] for part, i in picks]
        x = torch.stack(xs) if xs else self.new.x[:0]
        return TaskData(x, torch.as_tensor(refs.labels, dtype=torch.long, device=self.new.y.device))


@dataclass
class Phase:
    """One phase of a task's training (most methods have one; E2E's balanced fine-tuning and BiC's
    bias correction are a second): its data (or a function that makes it when the phase starts, after
    the phase before), a fresh SGD optimizer and schedule over its parameters (None: the model's and
    the learner's), and the BatchNorm mode of the trunk ("frozen": its running statistics stay)."""

    name: str
    data: TaskData | Callable[[], TaskData]
    epochs: int
    parameters: Callable[[IncrementalClassifier], list[torch.nn.Parameter]] | None = None
    lr_scale: float = 1.0
    weight_decay: float | None = None  # None: train.weight_decay
    bn: Literal["train", "frozen"] = "train"
    # The authors' loaders drop the last incomplete batch, so a set smaller than one batch gives no
    # step; ours shrink the batch to the set instead unless the phase keeps their rule.
    drop_small: bool = False


def training_set(spec: Method, inputs: TaskInputs) -> TaskData:
    """A task's training set as the method's registry entry mixes the coreset in: none; `len(new)`
    draws with replacement ("resampled"); or the whole coreset once ("whole")."""
    if spec.coreset is None or inputs.coreset is None or len(inputs.coreset) == 0:
        return inputs.new
    if spec.coreset.mix == "whole":
        return TaskData.cat(inputs.new, inputs.coreset)
    picks = draws(len(inputs.coreset), len(inputs.new), inputs.seed, inputs.task)
    return TaskData.cat(inputs.new, inputs.coreset.take(picks))
