"""The learners, one module per family of methods, and the one way to make one by its registry key.

Families: the interface with Base and Upper bound (`base`), distillation without replay
(`distillation`), data-free replay of inverted images (`data_free`), relational distillation
(`relational`), replay of a coreset of real images (`rehearsal`) and of a generative model trained
beside the classifier (`generative_replay`).
"""

from __future__ import annotations

from dfcil_core.foundations.config import Config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.registry import METHOD_KEYS
from dfcil_core.method.learners.base import Learner, StepBatch, UpperBound
from dfcil_core.method.learners.data_free import AlwaysBeDreaming, DeepInversion, LwFSynthetic
from dfcil_core.method.learners.distillation import LwF, LwFMC
from dfcil_core.method.learners.generative_replay import GenerativeReplay
from dfcil_core.method.learners.rehearsal import BiasCorrection, EndToEnd, LwFCoreset, Rehearsal
from dfcil_core.method.learners.relational import RelationGuided

LEARNERS: dict[str, type[Learner]] = {cls.name: cls for cls in (
    Learner, UpperBound, LwF, LwFMC, LwFSynthetic, DeepInversion, AlwaysBeDreaming, RelationGuided, Rehearsal,
    LwFCoreset, EndToEnd, BiasCorrection, GenerativeReplay)}
if set(LEARNERS) != set(METHOD_KEYS):  # the registry and the learners name the same methods
    raise ImportError(f"learners {sorted(LEARNERS)} != registry {sorted(METHOD_KEYS)}")

__all__ = ["LEARNERS", "Learner", "StepBatch", "make_learner"]


def make_learner(method: str, cfg: Config) -> Learner:
    if method not in LEARNERS:
        raise DfcilError(f"unknown method {method!r} (known: {', '.join(METHOD_KEYS)})")
    return LEARNERS[method](cfg)
