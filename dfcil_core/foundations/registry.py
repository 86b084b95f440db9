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

# What a method replays of the past from task 2 on: nothing, images inverted from θ(t-1), a coreset of
# real images, or images of a generative model trained beside the classifier (DGR's VAE).
Replay = Literal["none", "inverted", "coreset", "generative"]
Selection = Literal["random", "mean_distance", "herding"]

# The lineage of the task-1 model that every method starting with plain CE over the seen classes
# shares (and of the generator inverted from it).
SHARED_CE = "ce"


@dataclass(frozen=True)
class Coreset:
    """How a replay method keeps its coreset of real images (`coreset.size` of them, after each task)."""

    selection: Selection  # random per class; E2E's distance to the class mean; BiC's (iCaRL's) herding
    # A task's training set takes the coreset as `len(new data)` draws with replacement ("resampled",
    # Naive Rehearsal and LwF + coreset) or each entry once ("whole", E2E and BiC), as the authors do.
    mix: Literal["resampled", "whole"]
    lineage: str  # whose coreset it is: the random one depends on the data alone and is shared
    # Selected between the two phases of the training stage (E2E: the phase-A model ranks the new
    # classes, and phase B trains on the result) instead of by a coreset stage of its own.
    selected_in_training: bool = False


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
    coreset: Coreset | None = None  # replay == "coreset": how its coreset is kept
    inputs: Literal["normalized", "unit"] = "normalized"  # "unit": images in [0, 1] (DGR's VAE decodes to it)
    fresh_model_each_task: bool = False  # θ(t) starts from a new network, not from θ(t-1)
    # replay == "inverted": the generator of task t >= 3 carries on from task t-1's, with its Adam
    # state (ABD's code keeps one generator per learner); False: a new generator and optimiser per
    # task (R-DFCIL's code builds a new inversion module before each task).
    carries_generator: bool = True
    cumulative_data: bool = False  # trains on the real data of tasks 1..t
    keys: tuple[str, ...] = ()  # config keys of its own, from task 2 on
    first_task_keys: tuple[str, ...] = ()  # config keys of its own at task 1 (own θ(1) only)
    eval_keys: tuple[str, ...] = ()  # config keys that change only how it is evaluated
    unused_keys: tuple[str, ...] = ()  # training keys its own settings replace (DGR: its weight decay)
    # The ABD paper's tables with a row for it ("1": data-free, Tables 1 / A; "2": with a coreset,
    # Tables 2 / B); none: a method after the paper.
    tables: tuple[str, ...] = ("1",)
    # Bumped when a fix changes what the method trains under the same config keys: it enters the
    # hash of every model of its own lineage, so checkpoints of the earlier code are refused, not
    # silently reused (0 enters nothing, keeping the other methods' hashes).
    revision: int = 0

    def __post_init__(self) -> None:
        if self.shares_first_task and self.first_task_keys:
            raise ValueError(f"{self.key}: a shared θ(1) cannot depend on keys of one method")
        if (self.replay == "coreset") != (self.coreset is not None):
            raise ValueError(f"{self.key}: a coreset method says how it keeps its coreset, and only it")


KD = ("train.kd_temperature",)
RANDOM_CORESET = Coreset("random", "resampled", "random")

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
           "head-only balanced phase", "rdfcil.*", replay="inverted", carries_generator=False, keys=("rdfcil",),
           # 1: its authors' code's class-count weights, two projections and L1 in RKD-Angle, a new
           # generator per task (0 carried ABD's generator and assumed balanced replay)
           tables=(), revision=1),
    Method("rehearsal", "Naive Rehearsal", "CE over the seen classes on new data + as many coreset draws",
           "coreset.size", replay="coreset", coreset=RANDOM_CORESET, tables=("2",)),
    Method("lwf_coreset", "LwF + coreset", "CE + softmax KD over the past classes on new data + coreset draws",
           "train.lwf_coreset_mu, coreset.size", replay="coreset", coreset=RANDOM_CORESET,
           keys=(*KD, "train.lwf_coreset_mu"), tables=("2",)),
    Method("e2e", "E2E", "Castro et al., ECCV 2018: CE + KD per past task on new data + coreset; then the head "
           "alone on the coreset (balanced fine-tuning)", "e2e.*, coreset.size", replay="coreset",
           coreset=Coreset("mean_distance", "whole", "e2e", selected_in_training=True), keys=(*KD, "e2e"),
           tables=("2",)),
    Method("bic", "BiC", "Wu et al., CVPR 2019: (1-μ) CE + μ KD (μ = past/seen) on new data + coreset; then a "
           "bias layer per task on a held-out set", "bic.*, coreset.size", replay="coreset",
           coreset=Coreset("herding", "whole", "bic"),
           keys=(*KD, "bic.holdout", "bic.stage2_lr_scale", "bic.stage2_epochs", "bic.stage2_bn"),
           eval_keys=("bic.apply_at_eval",), tables=("2",)),
    Method("dgr", "DGR", "Shin et al., NeurIPS 2017: class-weighted CE on real + VAE-replayed images, KD on "
           "the replay; a VAE trained beside", "dgr.*", shares_first_task=False, replay="generative",
           inputs="unit", keys=(*KD, "dgr"), first_task_keys=("dgr.z_dim", "dgr.weight_decay"),
           unused_keys=("train.weight_decay",)),
)}

METHOD_KEYS: tuple[str, ...] = tuple(METHODS)
# Table 1's methods (data-free, and DGR): the default `methods`; Table 2's keep a coreset.
PAPER_METHOD_KEYS: tuple[str, ...] = tuple(k for k, m in METHODS.items() if "1" in m.tables)
CORESET_METHOD_KEYS: tuple[str, ...] = tuple(k for k, m in METHODS.items() if "2" in m.tables)

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


def continues_generator(key: str, task: int) -> bool:
    """The generator replayed in `task` starts from the one of task-1 and its optimiser state."""
    return task >= 3 and replays_inverted(key, task) and method(key).carries_generator


def uses_coreset(key: str, task: int) -> bool:
    """Trains task `task` on new data and the coreset kept after task `task`-1."""
    return task >= 2 and method(key).coreset is not None


def coreset_lineage(key: str) -> str:
    """Whose coreset `key` replays (the random coreset is shared by the methods that keep one)."""
    c = method(key).coreset
    if c is None:
        raise KeyError(f"method {key!r} keeps no coreset")
    return c.lineage


def keeps_coreset(key: str, task: int, n_tasks: int) -> bool:
    """A coreset is kept after task `task` (a later task replays it)."""
    return method(key).coreset is not None and task < n_tasks


def coreset_selected_in_training(key: str, task: int) -> bool:
    """The training stage of θ(task) writes the coreset of `task` (E2E: between its phases); otherwise
    the coreset stage does, after it."""
    c = method(key).coreset
    return c is not None and c.selected_in_training and task >= 2


def replays_generative(key: str, task: int) -> bool:
    """Trains task `task` on images of the generative model trained up to task-1 (DGR)."""
    return task >= 2 and method(key).replay == "generative"


def starts_from_previous(key: str, task: int) -> bool:
    """θ(task) starts from θ(task-1) (which is then also the frozen teacher)."""
    return task >= 2 and not method(key).fresh_model_each_task


def model_keys(key: str, task: int) -> list[str]:
    """The config keys that enter θ(task)'s checkpoint hash (and its DVC stage's params): the
    training keys, this task's epochs and, for a model of the method's own lineage, its own keys."""
    m = method(key)
    keys = [k for k in TRAIN_KEYS if lineage(key, task) == SHARED_CE or k not in m.unused_keys]
    keys.append(f"train.task_epochs.{task}")
    if lineage(key, task) != SHARED_CE:
        keys += m.first_task_keys if task == 1 else m.keys
    if replays_inverted(key, task):
        keys.append("synthesis.replay_batch_size")
    if uses_coreset(key, task):
        keys.append("coreset.size")
    return keys


def coreset_keys(key: str, task: int) -> list[str]:
    """The config keys that enter the hash of the coreset kept after `task` by a coreset stage (and
    its DVC stage's params): its size, and for a random one the training seed that draws it."""
    c = method(key).coreset
    if c is None:
        raise KeyError(f"method {key!r} keeps no coreset")
    return ["coreset.size", "train_seed"] if c.selection == "random" else ["coreset.size"]


def inversion_keys() -> list[str]:
    """The config keys that enter a generator's checkpoint hash (and its DVC stage's params)."""
    return list(INVERSION_KEYS)


def split_keys() -> list[str]:
    return list(SPLIT_KEYS)
