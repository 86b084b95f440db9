"""The single, validated configuration (params.yaml), its presets and its hashes.

Every field has the paper's value as its default; small profiles change numbers only.
Unknown keys, wrong types and out-of-range values are rejected by name (`DfcilError`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.registry import METHOD_KEYS, PAPER_METHOD_KEYS, split_keys


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is, as the authors' code loads it (their loader and trainer)."""

    classes: int | None  # every class of the release (and the head's rows); None: known from the files only
    image_size: int | None  # the model's input side; None: any (`data.image_size`)
    run_classes: int | None = None  # the classes a run takes unless `data.num_classes` says (None: all)
    top_k: int = 1  # accuracy is top-k (ImageNet: top-5)
    # The class order is the trial seed's shuffle of the class ids, or, for ImageNet, the seed-1993
    # shuffle of prior work (iCaRL, BiC) whatever the trial.
    fixed_order_seed: int | None = None
    # images per class of the release (ImageNet: at most; 732-1,300) and the side they are kept at in
    # the split stage's uint8 arrays: what sizes the stages' memory
    train_per_class: int = 500
    test_per_class: int = 100
    stored_size: int | None = None  # None: image_size

    def split_bytes(self, classes: int, image_size: int) -> int:
        """Bytes of the split stage's uint8 train + test arrays for `classes` classes."""
        side = self.stored_size or image_size
        return classes * (self.train_per_class + self.test_per_class) * side * side * 3


DATASETS: dict[str, DatasetSpec] = {
    "cifar100": DatasetSpec(100, 32),
    "cifar10": DatasetSpec(10, 32, train_per_class=5000, test_per_class=1000),
    # 200 classes of 500 train / 50 val (test) images, 64 px (the standard tiny-imagenet-200 release)
    "tinyimagenet": DatasetSpec(200, 64, test_per_class=50),
    # ILSVRC's 1,000 classes, of which a run takes 50 (the first of the seed-1993 order: ImageNet-50),
    # 224 px crops of images kept at 256 x 256
    "imagenet50": DatasetSpec(1000, 224, run_classes=50, top_k=5, fixed_order_seed=1993,
                              train_per_class=1300, test_per_class=50, stored_size=256),
    "imagefolder": DatasetSpec(None, None),
}
DATASET_CLASSES = {k: d.classes for k, d in DATASETS.items() if d.classes is not None}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class DataConfig(_Strict):
    dataset: Literal["cifar100", "cifar10", "tinyimagenet", "imagenet50", "imagefolder"] = "cifar100"
    root: str | None = None  # None: $DFCIL_DATA_ROOT, else ./data
    download: bool = True
    image_size: int = Field(32, ge=8)
    n_tasks: int = Field(10, ge=1)
    num_classes: int | None = Field(None, ge=1)  # use the first C classes of the shuffled order
    first_task_classes: int | None = Field(None, ge=1)  # optional larger first task
    train_per_class: int | None = Field(None, ge=1)  # None: all
    test_per_class: int | None = Field(None, ge=1)
    # The authors' training augmentation starts with ColorJitter(brightness=63/255, contrast=0.8).
    color_jitter: bool = True


class ModelConfig(_Strict):
    # "resnet18_authors": what the authors' code calls resnet18 (its CIFAR ResNet with [2, 2, 2] blocks of
    # widths 16/32/64 and a stride-1 3x3 stem: 14 layers), on which their ImageNet numbers rest;
    # "resnet18": He et al.'s ResNet-18 (four stages 64-512, an ImageNet stem at >= 128 px).
    arch: Literal["resnet32", "resnet18_authors", "resnet18"] = "resnet32"
    # Downsampling shortcut: "A" parameter-free (the authors' ResNet-32), "B" 1x1 conv + BN.
    shortcut: Literal["A", "B"] = "A"
    # Head rows. null: one row per class of the dataset (CIFAR-100: 100), as the authors' code,
    # also when a run learns fewer (a 2-task proxy); rows of unseen classes exist from the start.
    # An int (>= the run's classes) sizes it yourself, e.g. the run's class count.
    head_size: int | None = Field(None, ge=1)


class TrainConfig(_Strict):
    epochs: int = Field(250, ge=1)
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(2e-4, ge=0)
    batch_size: int = Field(128, ge=1)
    milestones: list[int] = [100, 150, 200]
    gamma: float = Field(0.1, gt=0, le=1)
    kd_temperature: float = Field(2.0, gt=0)
    # KD weight mu per softmax-KD method, as the authors' scripts run them (experiments/cifar100-*.sh).
    lwf_mu: float = Field(1.0, ge=0)
    lwf_syn_mu: float = Field(0.1, ge=0)
    deepinversion_mu: float = Field(1.0, ge=0)
    lwf_coreset_mu: float = Field(1.0, ge=0)
    # LwF.MC's BCE: "reference" on the sigmoid's float32 outputs as the authors' nn.BCELoss (the
    # gradient vanishes where the sigmoid saturates: units pushed there at lr 0.1 stay), "stable" on
    # the logits. On the fidelity proxy only "reference" reproduces the authors' LwF.MC (docs/fidelity.md).
    lwf_mc_bce: Literal["reference", "stable"] = "reference"
    # Per-task epoch overrides, e.g. {3: 50}: changing one re-runs only task >= 3 downstream.
    task_epochs: dict[int, int] = {}
    checkpoint_every: int = Field(10, ge=1)  # in-task checkpoint period (epochs)
    # Divergence guard: a step loss above this (or not finite) stops the stage at the end of its epoch,
    # and nothing of the task is written. No loss of a sane run comes near it (LwF.MC's BCE summed over
    # 100 classes starts near 70); lr 1e5 reaches 1e25. Not in any hash: it changes no output it passes.
    max_loss: float = Field(1e6, gt=0)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if any(m < 1 for m in self.milestones) or sorted(self.milestones) != self.milestones:
            raise ValueError("train.milestones must be increasing positive epochs")
        for t, e in self.task_epochs.items():
            if t < 1 or e < 1:
                raise ValueError("train.task_epochs needs task >= 1 and epochs >= 1")
        return self

    def epochs_for(self, task: int) -> int:
        return self.task_epochs.get(task, self.epochs)


class SynthesisConfig(_Strict):
    steps: int = Field(10000, ge=0)  # the authors' scripts; the paper's text says 5,000
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(128, ge=2)
    z_dim: int = Field(1000, ge=1)
    alpha_con: float = Field(1.0, ge=0)
    alpha_div: float = Field(1.0, ge=0)
    alpha_stat: float = Field(5e1, ge=0)
    alpha_prior: float = Field(1e-3, ge=0)
    alpha_temp: float = Field(1e3, gt=0)
    replay_batch_size: int = Field(128, ge=1)  # synthetic images per training step
    # Smoothness-prior blur: "reference" = the authors' exp(-(d/2σ)^2) (σ_eff = √2), "paper" = exp(-d²/2σ²).
    prior_kernel: Literal["reference", "paper"] = "reference"
    # Divergence guard of the inversion, as train.max_loss (checked every `log_every` steps).
    max_loss: float = Field(1e6, gt=0)


class AbdConfig(_Strict):
    lambda_kd: float = Field(0.1, ge=0)
    lambda_ft: float = Field(1.0, ge=0)
    # Table 3 ablations: each False removes one component.
    task_balancing: bool = True
    local_ce: bool = True  # False: standard CE over all heads instead of Eq. 11
    kd_real: bool = True
    kd_synthetic: bool = True
    ft_ce: bool = True
    # The authors' FT-CE features come from a second train-mode forward pass, so BN running
    # statistics take each replay batch twice; False: once (no effect on losses or gradients).
    double_bn_update: bool = True

    ABLATIONS: ClassVar[tuple[str, ...]] = ("task_balancing", "local_ce", "kd_real", "kd_synthetic", "ft_ce")

    @property
    def ablation(self) -> str:
        """Table 3's row: the switches turned off, joined by '+', or 'none' for the full method."""
        off = [k for k in self.ABLATIONS if not getattr(self, k)]
        return "+".join(off) if off else "none"


class RdfcilConfig(_Strict):
    """R-DFCIL (Gao et al., ECCV 2022), its authors' CIFAR-100 settings: loss scales, the head-only
    class-balanced fine-tuning phase (the last `finetune_epochs` of each task >= 2 at a constant
    `finetune_lr`), and the width of the two learned projections in front of RKD-Angle."""

    lambda_ce: float = Field(0.5, ge=0)
    lambda_hkd: float = Field(0.15, ge=0)
    lambda_rkd: float = Field(0.5, ge=0)
    finetune_epochs: int = Field(40, ge=0)
    finetune_lr: float = Field(0.005, gt=0)
    projector_dim: int = Field(128, ge=1)


class CoresetConfig(_Strict):
    """The replay methods' memory of real images (Naive Rehearsal, LwF + coreset, E2E, BiC): this many
    after each task, split over the seen classes as the authors do (2,000 in the paper; the presets
    of smaller protocols keep 20 per class)."""

    size: int = Field(2000, ge=1)


class E2EConfig(_Strict):
    """E2E (Castro et al.): KD weight, and the balanced fine-tuning of the head on the coreset that
    follows each task >= 2 (the authors': lr / 100, the task's epochs, BN statistics moving; its
    KD of the new classes reads the old teacher's first columns, `phase_b_teacher: reference`)."""

    mu: float = Field(1.0, ge=0)
    phase_b_lr_scale: float = Field(0.01, gt=0)
    phase_b_epochs: int | None = Field(None, ge=0)  # None: the task's epochs
    # "reference": new-class logits distilled toward θ(t-1)'s first n_new columns (the authors' code);
    # "paper": toward the phase-A model's new-class logits (what E2E intends).
    phase_b_teacher: Literal["reference", "paper"] = "reference"
    phase_b_bn: Literal["train", "frozen"] = "train"  # BN statistics move (the authors') or stay


class BiCConfig(_Strict):
    """BiC (Wu et al.): the held-out share of the coreset, the bias layers' training (stage 2: lr / 100,
    the task's epochs, BN statistics moving as in the authors' code), and whether evaluation applies
    them (the authors' evaluation does not)."""

    holdout: float = Field(0.1, gt=0, lt=1)
    stage2_lr_scale: float = Field(0.01, gt=0)
    stage2_epochs: int | None = Field(None, ge=0)  # None: the task's epochs
    stage2_bn: Literal["train", "frozen"] = "train"
    apply_at_eval: bool = False


class DGRConfig(_Strict):
    """DGR (Shin et al.): the VAE's latent size, the weight decay of solver and VAE (0 in the authors'
    runs), and the KD weight on the replay."""

    z_dim: int = Field(1024, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    mu: float = Field(1.0, ge=0)


class RuntimeConfig(_Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # bf16 autocast, CUDA only. Off by default: ResNet-32 at batch 128 is launch-bound on an H200,
    # where the casts made every step slower (docs/performance.md).
    amp: bool = False
    channels_last: bool = True
    compile: bool = False  # torch.compile the feature trunks (CUDA)
    # "reduce-overhead" adds CUDA graphs: the ResNet-32 step is launch-bound on a large GPU.
    compile_mode: Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs"] = "default"
    threads: int | None = Field(None, ge=1)
    progress: bool = True


class Config(_Strict):
    name: str = "default"
    seed: int = Field(0, ge=0)  # the class order (trial r of the paper) and, by default, training
    # Training RNG only (init, augmentation, sampling), not the class order; None: `seed`.
    train_seed: int | None = Field(None, ge=0)
    methods: list[str] = list(PAPER_METHOD_KEYS)  # the ABD paper's Table 1; Table 2's and R-DFCIL opt in
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    synthesis: SynthesisConfig = SynthesisConfig()
    abd: AbdConfig = AbdConfig()
    rdfcil: RdfcilConfig = RdfcilConfig()
    coreset: CoresetConfig = CoresetConfig()
    e2e: E2EConfig = E2EConfig()
    bic: BiCConfig = BiCConfig()
    dgr: DGRConfig = DGRConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    @model_validator(mode="after")
    def _check(self) -> Config:
        for m in self.methods:
            if m not in METHOD_KEYS:
                raise ValueError(f"methods: unknown method {m!r} (known: {', '.join(METHOD_KEYS)})")
        if not self.methods:
            raise ValueError("methods: give at least one method")
        if "rdfcil" in self.methods:
            for t in range(2, self.data.n_tasks + 1):
                if self.train.epochs_for(t) <= self.rdfcil.finetune_epochs:
                    raise ValueError(f"rdfcil.finetune_epochs: {self.rdfcil.finetune_epochs} leaves no main-phase "
                                     f"epoch in task {t} ({self.train.epochs_for(t)} epochs)")
        return self

    # --- derived -------------------------------------------------------------------------
    @property
    def training_seed(self) -> int:
        return self.seed if self.train_seed is None else self.train_seed

    @property
    def total_classes(self) -> int:
        spec = DATASETS[self.data.dataset]
        if self.data.num_classes is not None:
            return self.data.num_classes
        if spec.run_classes is not None:
            return spec.run_classes
        if spec.classes is None:
            raise DfcilError("data.num_classes: required for the imagefolder dataset")
        return spec.classes

    @property
    def top_k(self) -> int:
        """Accuracy counts a prediction right when the label is among its `top_k` best classes."""
        return DATASETS[self.data.dataset].top_k

    @property
    def split_gigabytes(self) -> float:
        """The split stage's image arrays for this run's classes, in GB (what sizes the stages' memory;
        imagefolder counted as CIFAR-sized images per class)."""
        spec = DATASETS[self.data.dataset]
        return spec.split_bytes(self.total_classes, self.data.image_size) / 1e9

    @property
    def head_rows(self) -> int:
        """Rows of the classifier head: `model.head_size`, else the dataset's class count (the run's
        for imagefolder, whose dataset size is known only from its files)."""
        if self.model.head_size is not None:
            return self.model.head_size
        return DATASET_CLASSES.get(self.data.dataset, self.total_classes)

    def task_sizes(self) -> list[int]:
        """Classes per task: equal tasks, optionally after a larger first task."""
        c, n, first = self.total_classes, self.data.n_tasks, self.data.first_task_classes
        if first is None:
            if c % n:
                raise DfcilError(f"data.n_tasks: {n} tasks do not divide {c} classes")
            return [c // n] * n
        if n == 1:
            if first != c:
                raise DfcilError("data.first_task_classes: a single task must hold all classes")
            return [c]
        rest = c - first
        if rest <= 0 or rest % (n - 1):
            raise DfcilError(
                f"data.n_tasks: {n - 1} tasks do not divide the {rest} classes after the first task"
            )
        return [first] + [rest // (n - 1)] * (n - 1)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        named = msg.split(":")[0].split()[0] if msg else ""  # the key a validator's message starts with
        return msg if not loc or named == loc or named.startswith(f"{loc}.") or named in loc else f"{loc}: {msg}"
    return f"{loc}: {msg}" if loc else msg


def _override_for(loc: str, overrides: list[str]) -> str | None:
    """The last override that set `loc` or a section around or inside it."""
    for item in reversed(overrides):
        key = item.split("=", 1)[0].strip()
        if key == loc or loc.startswith(f"{key}.") or key.startswith(f"{loc}."):
            return item
    return None


def from_dict(raw: dict[str, Any], overrides: list[str] | None = None) -> Config:
    """Validate a whole config; an error that an override caused names that override."""
    try:
        cfg = Config.model_validate(raw)
        cfg.task_sizes()  # raises if the tasks do not divide the classes
        native = DATASETS[cfg.data.dataset].image_size
        if native is not None and cfg.data.image_size != native:
            raise DfcilError(f"data.image_size: {cfg.data.dataset} images are {native} px, not {cfg.data.image_size}")
        full = DATASET_CLASSES.get(cfg.data.dataset)
        if full is not None and cfg.total_classes > full:
            raise DfcilError(f"data.num_classes: {cfg.total_classes} > the {full} classes of {cfg.data.dataset}")
        if cfg.head_rows < cfg.total_classes:
            raise DfcilError(f"model.head_size: {cfg.head_rows} rows cannot hold the run's {cfg.total_classes} classes")
        return cfg
    except ValidationError as err:
        text, prefix = _format_error(err), "invalid config: "
    except DfcilError as err:
        text, prefix = str(err), ""
    # "key: what is wrong" or "key must ..." (validators and the checks above start with their key)
    item = _override_for(text.split(":")[0].split()[0], overrides or []) if text.strip() else None
    raise DfcilError(f"override {item!r}: {text}" if item is not None else f"{prefix}{text}") from None


def _parse_value(item: str, text: str) -> Any:
    """A YAML-typed override value, or one line naming the override and what YAML objects to."""
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise DfcilError(f"override {item!r}: the value {text!r} is not valid YAML ({problem}); "
                         "quote a string value, e.g. -S 'name=\"a b\"'") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides (YAML-typed values), like `dvc exp run -S`."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise DfcilError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            raise DfcilError(f"override {item!r}: empty key" if not key.strip() else
                             f"override {item!r}: empty part in the key {key.strip()!r}")
        node = out
        for depth, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise DfcilError(f"override {item!r}: {'.'.join(parts[:depth + 1])} is not a section")
        node[parts[-1]] = _parse_value(item, value)
    return out


def load(path: str | Path | None = None, preset: str | None = None,
         overrides: list[str] | None = None) -> Config:
    """Load params.yaml (or a preset) and apply overrides; validate everything."""
    raw: dict[str, Any] = {}
    if preset is not None:
        from dfcil_core.foundations.presets import preset_dict

        raw = preset_dict(preset)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DfcilError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise DfcilError(f"config file {p} is not valid YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise DfcilError(f"config file {p}: expected a mapping at the top level")
        raw = _deep_merge(raw, loaded)
    raw = apply_overrides(raw, overrides or [])
    return from_dict(raw, overrides)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def explicit_params(cfg: Config) -> dict[str, Any]:
    """The config as params.yaml: per-task epochs spelled out, so that each task's stage (and
    checkpoint hash) depends on its own `train.task_epochs.<t>`."""
    d = cfg.dump()
    d["train"]["task_epochs"] = {str(t): cfg.train.epochs_for(t) for t in range(1, cfg.data.n_tasks + 1)}
    return d


def config_value(params: dict[str, Any], key: str) -> Any:
    """The value of a dotted key (`train.lr`, `model`, `train.task_epochs.2`) in explicit params."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"config key {key!r} not found")
        node = node[part]
    return node


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def keys_hash(cfg: Config, keys: list[str], **extra: Any) -> str:
    """The hash of the named config keys' values (and of `extra`: upstream hashes, the task)."""
    params = explicit_params(cfg)
    return stable_hash({"params": {k: config_value(params, k) for k in keys}, **extra})


def split_hash(cfg: Config) -> str:
    """What fixes the class order and the task data: a split made under another is refused."""
    return keys_hash(cfg, split_keys())
