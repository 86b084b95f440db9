"""The method registry: one torch-free table of what each method is.

Per method: its name in the paper's tables and its equations, whose θ(1) it trains from (its
lineage), what it replays, and which config keys of its own enter its checkpoint hash. Config
validation, the learners, the checkpoint hashes, the DVC stage params, the KFP graph, the cost sheet
and the tables all read this table; nothing restates it.

The keys that enter a checkpoint's hash are also, one for one, the params of its DVC stage
(`model_keys`, `inversion_keys`, `split_keys`): a key that changes a checkpoint re-runs its stage, and
a key that re-runs a stage changes its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Replay = Literal["none", "inverted"]

# The lineage of the task-1 model that every method starting with plain CE over the seen classes
# shares (and of the generator inverted from it).
SHARED_CE = "ce"


@dataclass(frozen=True)
class Method:
    key: str
    name: str  # as the paper's tables name it
    equations: str  # the paper's equations (or the source) of its loss
    switches: str = ""  # the config keys that vary it
    # Task 1 is plain CE over the seen classes, shared with the other methods that say so (lineage
    # "ce"); False: the method trains a θ(1) of its own.
    shares_first_task: bool = True
    replay: Replay = "none"  # "inverted": replays the generator inverted from θ(t-1) from task 2 on
    fresh_model_each_task: bool = False  # θ(t) starts from a new network, not from θ(t-1)
    cumulative_data: bool = False  # trains on the real data of tasks 1..t
    keys: tuple[str, ...] = ()  # config keys of its own, from task 2 on
    first_task_keys: tuple[str, ...] = ()  # config keys of its own at task 1 (own θ(1) only)
    in_abd_paper: bool = True  # a row of the ABD paper's tables

    def __post_init__(self) -> None:
        if self.shares_first_task and self.first_task_keys:
            raise ValueError(f"{self.key}: a shared θ(1) cannot depend on keys of one method")


KD = ("train.kd_temperature",)

METHODS: dict[str, Method] = {m.key: m for m in (
    Method("upper_bound", "Upper Bound", "CE on all data of tasks 1..t (offline)", fresh_model_each_task=True,
           cumulative_data=True),
    Method("base", "Base", "CE over the seen classes (fine-tuning)"),
    Method("lwf", "LwF", "CE + softmax KD on real data over the past classes", "train.lwf_mu, train.kd_temperature",
           keys=(*KD, "train.lwf_mu")),
    Method("lwf_mc", "LwF.MC", "sigmoid BCE, old model's sigmoids as targets (iCaRL without exemplars)",
           "train.lwf_mc_bce", shares_first_task=False, keys=("train.lwf_mc_bce",),
           first_task_keys=("train.lwf_mc_bce",)),
    Method("lwf_syn", "LwF + synthetic", "CE + softmax KD on real + synthetic data (Table 1, replay: synthetic)",
           "train.lwf_syn_mu", replay="inverted", keys=(*KD, "train.lwf_syn_mu")),
    Method("deepinversion", "DeepInversion", "Eq. 8-9: CE + KD on real data + padded KD on synthetic data",
           "train.deepinversion_mu", replay="inverted", keys=(*KD, "train.deepinversion_mu")),
    Method("abd", "ABD", "Eq. 11-15: local CE, importance-weighted feature KD, FT-CE, task balancing",
           "abd.* (Table 3 ablations)", shares_first_task=False, replay="inverted", keys=("abd",)),
    Method("rdfcil", "R-DFCIL", "Gao et al., ECCV 2022: local CE, L1 logit KD on replay, RKD-Angle, "
           "head-only balanced phase", "rdfcil.*", replay="inverted", keys=("rdfcil",), in_abd_paper=False),
)}

METHOD_KEYS: tuple[str, ...] = tuple(METHODS)
PAPER_METHOD_KEYS: tuple[str, ...] = tuple(k for k, m in METHODS.items() if m.in_abd_paper)

# Config keys that shape every trained model, and every generator; then the split's.
TRAIN_KEYS = ("train.lr", "train.momentum", "train.weight_decay", "train.batch_size", "train.milestones",
              "train.gamma", "train_seed", "data.color_jitter", "model", "runtime.amp", "runtime.channels_last")
# Every synthesis key but the replay batch size (which only the training stages read) and the
# divergence bound (a guard: it changes no output it lets through). A test keeps this equal to
# SynthesisConfig's fields.
INVERSION_KEYS = ("synthesis.steps", "synthesis.lr", "synthesis.batch_size", "synthesis.z_dim",
                  "synthesis.alpha_con", "synthesis.alpha_div", "synthesis.alpha_stat", "synthesis.alpha_prior",
                  "synthesis.alpha_temp", "synthesis.prior_kernel", "train_seed", "runtime.amp",
                  "runtime.channels_last")
SPLIT_KEYS = ("seed", "data.dataset", "data.image_size", "data.n_tasks", "data.num_classes",
              "data.first_task_classes", "data.train_per_class", "data.test_per_class")


def method(key: str) -> Method:
    try:
        return METHODS[key]
    except KeyError:
        raise KeyError(f"unknown method {key!r} (known: {', '.join(METHODS)})") from None


def lineage(key: str, task: int) -> str:
    """Whose model θ(task) is: the methods that share plain CE at task 1 share θ(1) ("ce"), and the
    generator inverted from it; every other model is the method's own."""
    return SHARED_CE if task == 1 and method(key).shares_first_task else key


def replays_inverted(key: str, task: int) -> bool:
    """Trains task `task` on synthetic replay from a generator inverted from θ(task-1)."""
    return task >= 2 and method(key).replay == "inverted"


def starts_from_previous(key: str, task: int) -> bool:
    """θ(task) starts from θ(task-1) (which is then also the frozen teacher)."""
    return task >= 2 and not method(key).fresh_model_each_task


def model_keys(key: str, task: int) -> list[str]:
    """The config keys that enter θ(task)'s checkpoint hash (and its DVC stage's params): the
    training keys, this task's epochs and, for a model of the method's own lineage, its own keys."""
    m = method(key)
    keys = [*TRAIN_KEYS, f"train.task_epochs.{task}"]
    if lineage(key, task) != SHARED_CE:
        keys += m.first_task_keys if task == 1 else m.keys
    if replays_inverted(key, task):
        keys.append("synthesis.replay_batch_size")
    return keys


def inversion_keys() -> list[str]:
    """The config keys that enter a generator's checkpoint hash (and its DVC stage's params)."""
    return list(INVERSION_KEYS)


def split_keys() -> list[str]:
    return list(SPLIT_KEYS)
