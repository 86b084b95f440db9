"""The replay methods' coreset of real images, kept as the authors' code keeps it.

A coreset is a list of references (task, row) into the split's training arrays, with each entry's
class (its position in the class order), in the authors' order: classes ascending, each class's
entries in the order they were selected. Nothing here touches images or a model: the random draws
are pure functions of the seed and the task, and the ranked selections take precomputed features.

The authors' rules (their loader's coreset functions), which every selection here follows:
- after each task the coreset holds `size` images over the seen classes: `size // seen` each, the
  remainder one more each for the classes visited first, from the last class down, that have more
  candidates than that; a class with fewer candidates keeps them all;
- a task's training set takes the coreset either as `len(new data)` draws with replacement
  ("resampled", Naive Rehearsal and LwF + coreset) or whole ("whole", E2E and BiC);
- the candidates of a new class are its images of the new task; those of an old class are its
  coreset entries in the training set: the draws (so a random coreset fills with duplicates) or
  the entries themselves;
- a random selection draws without replacement per class under a seed of its own; a ranked one
  (E2E: distance to the class mean; BiC: herding) ranks a class once, when it is new, and keeps a
  prefix of that ranking afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Coreset:
    """Entries (task, row) into the split's training arrays and their classes, in the authors' order."""

    refs: np.ndarray  # (n, 2) int64
    labels: np.ndarray  # (n,) int64

    def __post_init__(self) -> None:
        if self.refs.shape != (len(self.labels), 2):
            raise ValueError(f"coreset refs of shape {self.refs.shape} for {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls) -> Coreset:
        return cls(np.zeros((0, 2), np.int64), np.zeros(0, np.int64))

    @classmethod
    def of_classes(cls, chosen: dict[int, np.ndarray]) -> Coreset:
        """From each class's chosen references, classes ascending."""
        classes = sorted(chosen)
        refs = [np.asarray(chosen[k], np.int64).reshape(-1, 2) for k in classes]
        labels = [np.full(len(r), k, np.int64) for k, r in zip(classes, refs, strict=True)]
        if not refs:
            return cls.empty()
        return cls(np.concatenate(refs), np.concatenate(labels))

    def take(self, index: np.ndarray) -> Coreset:
        return Coreset(self.refs[index], self.labels[index])

    def to_json(self) -> dict:
        return {"refs": self.refs.tolist(), "labels": self.labels.tolist()}

    @classmethod
    def from_json(cls, doc: dict) -> Coreset:
        return cls(np.asarray(doc["refs"], np.int64).reshape(-1, 2), np.asarray(doc["labels"], np.int64))


def task_entries(labels: np.ndarray, task: int) -> Coreset:
    """Every training image of task `task` as an entry (task, row), with its class."""
    rows = np.arange(len(labels), dtype=np.int64)
    return Coreset(np.stack([np.full_like(rows, task), rows], axis=1), np.asarray(labels, np.int64))


def class_quota(size: int, counts: dict[int, int]) -> dict[int, int]:
    """How many images each seen class keeps: `size // seen`, and one more for the first classes,
    from the last down, that have more candidates than that, while the remainder lasts."""
    if not counts:
        return {}
    per, remainder = divmod(size, len(counts))
    quota = {}
    for k in sorted(counts, reverse=True):
        if remainder > 0 and counts[k] > per:
            quota[k] = per + 1
            remainder -= 1
        else:
            quota[k] = min(counts[k], per)
    return quota


def draw_seed(seed: int, task: int) -> int:
    """The seed of the draws that resample the coreset into task `task`'s training set: the authors'
    per-task seed (seed * 100 + the 0-based task index), seeded just before it."""
    return seed * 100 + task - 1


def selection_seed(seed: int, task: int) -> int:
    """The seed of the random selection after task `task` (the authors' seed * 10000 + 0-based task)."""
    return seed * 10_000 + task - 1


def draws(n_coreset: int, n_new: int, seed: int, task: int) -> np.ndarray:
    """`n_new` indices into a coreset of `n_coreset`, drawn with replacement: the entries a "resampled"
    method's training set for task `task` appends to the new data (duplicates kept, in draw order)."""
    if n_coreset == 0:
        return np.zeros(0, np.int64)
    return np.random.RandomState(draw_seed(seed, task)).choice(n_coreset, n_new)


def resampled(coreset: Coreset, n_new: int, seed: int, task: int) -> Coreset:
    """The coreset entries of `draws`."""
    return coreset.take(draws(len(coreset), n_new, seed, task))


def candidates(new: Coreset, replayed: Coreset) -> dict[int, np.ndarray]:
    """Each seen class's candidates in the training set's order: the new task's images, then what it
    replayed (the resampled draws or the coreset itself)."""
    out: dict[int, list[np.ndarray]] = {}
    for part in (new, replayed):
        for k in np.unique(part.labels):
            out.setdefault(int(k), []).append(part.refs[part.labels == k])
    return {k: np.concatenate(v) for k, v in out.items()}


def select_random(cands: dict[int, np.ndarray], size: int, seed: int, task: int) -> Coreset:
    """Per class, a draw without replacement of its quota under the task's selection seed, classes
    visited from the last down (as the authors' draws go)."""
    quota = class_quota(size, {k: len(v) for k, v in cands.items()})
    rng = np.random.RandomState(selection_seed(seed, task))
    chosen = {}
    for k in sorted(cands, reverse=True):
        chosen[k] = cands[k][rng.choice(len(cands[k]), quota[k], replace=False)]
    return Coreset.of_classes(chosen)


def mean_distance_order(features: np.ndarray, n: int) -> np.ndarray:
    """E2E's ranking: the `n` images closest to their class mean, nearest first (ties: first seen)."""
    distance = np.linalg.norm(features.mean(axis=0) - features, axis=1)
    return np.argsort(distance, kind="stable")[:n]


def herding_order(features: np.ndarray, n: int) -> np.ndarray:
    """iCaRL's herding (BiC's ranking): each step takes the image that brings the mean of the chosen
    closest to the class mean, computed as the authors' loop computes it (so that float64 ties and
    roundings fall the same way)."""
    mean = np.mean(features, axis=0)
    left = np.arange(len(features))
    remaining = np.copy(features)
    chosen: list[int] = []
    for _ in range(min(n, len(features))):
        if len(left) == 1:
            pick = 0
        else:
            chosen_sum = np.sum(features[chosen], axis=0)
            mean_if_added = (remaining + chosen_sum) / (len(chosen) + 1)
            pick = int(np.argmin(np.linalg.norm(mean - mean_if_added, axis=1)))
        chosen.append(int(left[pick]))
        left = np.delete(left, pick, axis=0)
        remaining = np.delete(remaining, pick, axis=0)
    return np.asarray(chosen, np.int64)


RANKINGS = {"mean_distance": mean_distance_order, "herding": herding_order}


def select_ranked(cands: dict[int, np.ndarray], previous: Coreset, size: int, selection: str,
                  features_of: Callable[[np.ndarray], np.ndarray]) -> Coreset:
    """A ranked coreset: a class new since `previous` is ranked by `selection` on
    `features_of(refs)` (float64, one row per candidate) and keeps its quota's prefix; an old class
    keeps the prefix of its entries in `previous` (ranked when it was new)."""
    rank = RANKINGS[selection]
    quota = class_quota(size, {k: len(v) for k, v in cands.items()})
    old = set(int(k) for k in previous.labels)
    chosen = {}
    for k in sorted(cands, reverse=True):
        if k in old:
            chosen[k] = cands[k][: quota[k]]
        else:
            chosen[k] = cands[k][rank(np.asarray(features_of(cands[k]), np.float64), quota[k])]
    return Coreset.of_classes(chosen)


@dataclass(frozen=True)
class Holdout:
    """BiC's split of a task's data: what stage 1 trains on and what the bias layer is fitted on."""

    new_train: np.ndarray  # indices into the new task's entries
    new_held: np.ndarray
    coreset_train: np.ndarray  # indices into the coreset's entries
    coreset_held: np.ndarray


def bic_holdout(new_labels: np.ndarray, coreset_labels: np.ndarray, fraction: float, past: int) -> Holdout:
    """`int(fraction * |coreset|)` held-out images split evenly over the past classes (`k` each, rounded
    down): the first `k` images of each new class and the first `k` coreset entries of each old one."""
    k = int(int(fraction * len(coreset_labels)) / past) if past else 0

    def first_k(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen: dict[int, int] = {}
        held = np.zeros(len(labels), bool)
        for i, c in enumerate(labels.tolist()):
            held[i] = seen.get(c, 0) < k
            seen[c] = seen.get(c, 0) + 1
        return np.flatnonzero(~held), np.flatnonzero(held)

    new_train, new_held = first_k(new_labels)
    core_train, core_held = first_k(coreset_labels)
    return Holdout(new_train, new_held, core_train, core_held)
