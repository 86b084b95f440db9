"""The one training loop (every method), evaluation, and in-task checkpoints.

Data stay on the device as uint8; each step crops/flips/normalises on the device, draws a fresh
synthetic batch on the device (data-free methods) and never synchronises with the host; losses are
gathered as device tensors and read once per epoch.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations.config import Config
from dfcil_core.foundations.errors import DfcilError, Diverged, StopRequested
from dfcil_core.method.augment import DeviceAugment
from dfcil_core.method.learners import Learner, StepBatch
from dfcil_core.method.models import Generator, IncrementalClassifier, LogitBias
from dfcil_core.method.runtime import SigtermFlag, autocast, fused_if_supported, step_begin
from dfcil_core.method.synthesis import sample_replay
from dfcil_core.method.task_inputs import TaskData, TaskInputs

log = logging.getLogger("dfcil")


def make_optimizer(model: torch.nn.Module, cfg: Config, epochs: int, device: torch.device,
                   extra: list[torch.nn.Parameter] | None = None, *,
                   params: list[torch.nn.Parameter] | None = None, lr_scale: float = 1.0,
                   weight_decay: float | None = None):
    """SGD with the configured momentum (over `params`, default the model's and `extra`) and the
    step schedule cut to `epochs`."""
    t = cfg.train
    params = [*model.parameters(), *(extra or [])] if params is None else params
    opt = torch.optim.SGD(params, lr=t.lr * lr_scale if lr_scale != 1.0 else t.lr, momentum=t.momentum,
                          weight_decay=t.weight_decay if weight_decay is None else weight_decay,
                          **fused_if_supported(device))
    milestones = [m for m in t.milestones if m < epochs]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=t.gamma)
    return opt, sched


def make_batch(x_u8: torch.Tensor, y: torch.Tensor, augment: DeviceAugment, gen: torch.Generator, cfg: Config,
               past: int, seen: int, teacher: IncrementalClassifier | None,
               generator: Generator | None, replay_size: int | None = None) -> StepBatch:
    """One step's inputs, all on the device: augmented real images and, with a generator,
    a fresh synthetic batch (`replay_size`, default `synthesis.replay_batch_size`) with the
    teacher's logits, labels and features."""
    batch = StepBatch(x_real=augment(x_u8, gen), y_real=y, past=past, seen=seen, teacher=teacher)
    if cfg.runtime.channels_last:
        batch.x_real = batch.x_real.contiguous(memory_format=torch.channels_last)
    if generator is not None and teacher is not None:
        n = cfg.synthesis.replay_batch_size if replay_size is None else replay_size
        with autocast(x_u8.device, cfg.runtime.amp):
            r = sample_replay(generator, teacher, n, past, gen)
        batch.x_syn, batch.y_syn = r["x"], r["labels"]
        batch.teacher_logits_syn, batch.teacher_feats_syn = r["logits"], r["features"]
    return batch


def train_step(model: IncrementalClassifier, learner: Learner, batch: StepBatch, opt: torch.optim.Optimizer,
               device: torch.device, amp: bool) -> torch.Tensor:
    """One SGD step of `learner`'s loss; returns the detached loss (no host sync)."""
    step_begin(learner.cfg.runtime)
    learner.terms = {}
    with autocast(device, amp):
        loss = learner.loss(model, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def fit_task(model: IncrementalClassifier, learner: Learner, data: TaskData | TaskInputs, cfg: Config,
             device: torch.device, past: int, seen: int, epochs: int, seed: int,
             teacher: IncrementalClassifier | None = None, generator: torch.nn.Module | None = None,
             resume_path: Path | None = None, progress: bool = False) -> dict[str, list[float]]:
    """Train `model` for one task with `learner`'s loss, through the learner's phases (one for most
    methods). Returns per-epoch loss, the mean of each weighted term of it (`terms`: name ->
    per-epoch values), each epoch's phase, and timing (`seconds`, `images_per_s`: these differ
    between runs of the same inputs, so the stage keeps them out of the checkpoint).

    In-task checkpoints (every `train.checkpoint_every` epochs of a phase, and on SIGTERM) record the
    phase, the epoch and step, the RNG and the learner's state: a re-run resumes where it stopped.
    Raises `Diverged` at the end of the first epoch in which a step's loss was not finite or above
    `train.max_loss` (the largest step loss is kept on the device and read with the epoch's loss)."""
    t = cfg.train
    inputs = data if isinstance(data, TaskInputs) else TaskInputs(new=data, seed=seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    augment = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device, cfg.data.color_jitter,
                            unit_range=learner.spec.inputs == "unit")
    replay = (learner.spec.replay in ("inverted", "generative") and teacher is not None and generator is not None
              and past > 0)
    replay_size = None if learner.spec.replay == "inverted" else t.batch_size  # DGR: as many as the real batch
    if inputs.normalize is None:
        inputs.normalize = augment.normalize
    learner.prepare(model, replay)
    phases = learner.phases(inputs, epochs)
    if teacher is not None:
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    if generator is not None:
        generator.eval()
    history: dict[str, Any] = {"epoch": [], "phase": [], "loss": [], "seconds": [], "images_per_s": [], "terms": {}}
    state: dict[str, Any] | None = None
    start_phase, start_epoch, start_step, perm = 0, 0, 0, None
    if resume_path is not None and resume_path.exists():
        state = atomic_io.load_torch(resume_path)
        try:
            # Keys as `Module.compile` keeps them; builds that compiled by wrapping the trunk wrote
            # `features._orig_mod.*`: the same weights, so they resume too.
            model.load_state_dict({k.replace("_orig_mod.", ""): v for k, v in state["model"].items()})
            learner.load_state_dict(state.get("learner", {}))
        except (RuntimeError, ValueError, KeyError) as err:
            raise DfcilError(f"{resume_path}: this in-task checkpoint does not fit the model "
                             f"({str(err).strip().splitlines()[0]}); remove it to train the task afresh") from None
        start_phase = state.get("phase", 0)
        start_epoch, start_step, perm, history = state["epoch"], state["step"], state["perm"], state["history"]
        history.setdefault("phase", [phases[0].name] * len(history["epoch"]))
        perm = perm.to(device) if perm is not None else None
        gen.set_state(state["rng"])
        log.info("resuming from %s at %s epoch %d step %d", resume_path, phases[start_phase].name, start_epoch,
                 start_step)

    def save_partial(phase: int, opt: torch.optim.Optimizer, sched: Any, epoch: int, step: int,
                     perm_: torch.Tensor | None) -> None:
        if resume_path is None:
            return
        atomic_io.save_torch(resume_path, {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "learner": learner.state_dict(), "rng": gen.get_state(), "phase": phase, "epoch": epoch, "step": step,
            "perm": perm_.cpu() if perm_ is not None else None, "history": history,
        })

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(p.epochs for p in phases), initial=sum(p.epochs for p in phases[:start_phase]) + start_epoch,
                   desc=f"train {learner.name}", unit="ep", leave=False)
    for pi, phase in enumerate(phases):
        if pi < start_phase:
            continue
        resuming = state is not None and pi == start_phase
        if not resuming:
            learner.begin_phase(model, pi, inputs)  # between phases: what the next one trains on, or with
        pdata = phase.data() if callable(phase.data) else phase.data
        params = phase.parameters(model) if phase.parameters is not None else None
        opt, sched = make_optimizer(model, cfg, phase.epochs, device, learner.extra_parameters(), params=params,
                                    lr_scale=phase.lr_scale, weight_decay=phase.weight_decay)
        if resuming:
            try:
                opt.load_state_dict(state["optimizer"])
            except (ValueError, KeyError) as err:
                raise DfcilError(f"{resume_path}: this in-task checkpoint does not fit the model "
                                 f"({str(err).strip().splitlines()[0]}); remove it to train the task afresh") from None
            sched.load_state_dict(state["scheduler"])
        else:
            start_epoch, start_step, perm = 0, 0, None

        n = len(pdata)
        bs = t.batch_size if phase.drop_small else min(t.batch_size, n)
        steps = n // bs if bs else 0  # drop the last incomplete batch, as the authors' loader does
        for epoch in range(start_epoch, phase.epochs):
            model.train()
            if phase.bn == "frozen":
                model.features.eval()
            learner.begin_epoch(model, opt, epoch, phase.epochs)
            t0 = time.perf_counter()
            if perm is None:
                perm = torch.randperm(n, device=device, generator=gen)
            loss_sum = torch.zeros((), device=device)
            worst = torch.zeros((), device=device)  # the largest step loss (NaN if any step's was)
            term_sums: dict[str, torch.Tensor] = {}
            counted = max(steps - start_step, 1)  # a resumed epoch averages the steps it ran
            for step in range(start_step, steps):
                if SigtermFlag.requested:
                    save_partial(pi, opt, sched, epoch, step, perm)
                    raise StopRequested(f"stopped at {phase.name} epoch {epoch} step {step}; partial state saved")
                idx = perm[step * bs:(step + 1) * bs]
                batch = make_batch(pdata.x[idx], pdata.y[idx], augment, gen, cfg, past, seen, teacher,
                                   generator if replay else None, replay_size)
                loss = train_step(model, learner, batch, opt, device, cfg.runtime.amp)
                learner.after_step(model, batch, gen)
                loss_sum += loss
                worst = torch.maximum(worst, loss.float())
                for name, value in learner.terms.items():
                    term_sums[name] = term_sums.get(name, 0.0) + value.float()
            if steps:  # a phase without a step leaves its schedule (and torch warns of a step before any)
                sched.step()
            learner.end_epoch()
            start_step, perm = 0, None
            seconds = time.perf_counter() - t0
            worst_loss = float(worst)  # host syncs: once per epoch (here and below)
            if not math.isfinite(worst_loss) or worst_loss > t.max_loss:
                where = f"epoch {epoch + 1} of {phase.epochs}" + (f" of {phase.name}" if len(phases) > 1 else "")
                raise Diverged(f"the loss diverged in {where} (a step loss of {worst_loss:.3g}; "
                               f"bound train.max_loss {t.max_loss:g})")
            history["epoch"].append(len(history["epoch"]) + 1)
            history["phase"].append(phase.name)
            history["loss"].append(float(loss_sum) / counted)
            # A phase's own term is None in the other phase's epochs; first-seen order keeps the plot colours.
            for name in [*history["terms"], *(k for k in term_sums if k not in history["terms"])]:
                values = history["terms"].setdefault(name, [None] * (len(history["epoch"]) - 1))
                values.append(float(term_sums[name]) / counted if name in term_sums else None)
            history["seconds"].append(seconds)
            history["images_per_s"].append(counted * bs / seconds if seconds > 0 else 0.0)
            if bar is not None:
                bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
                bar.update(1)
            if (epoch + 1) % t.checkpoint_every == 0 and epoch + 1 < phase.epochs:
                save_partial(pi, opt, sched, epoch + 1, 0, None)
        start_epoch = 0
    if bar is not None:
        bar.close()
    model.eval()
    return history


@torch.no_grad()
def predict(model: IncrementalClassifier, x_u8: torch.Tensor, augment: DeviceAugment, seen: int,
            batch_size: int = 1000, logit_bias: LogitBias | None = None, top_k: int = 1) -> torch.Tensor:
    """The `top_k` best of the `seen` classes per image, best first (after BiC's bias layers where
    given): (N, top_k)."""
    model.eval()
    preds = []
    k = min(top_k, seen)
    for i in range(0, x_u8.shape[0], batch_size):
        logits = model(augment.normalize(x_u8[i:i + batch_size]))[:, :seen]
        if logit_bias is not None:
            logits = logit_bias(logits)
        preds.append(logits.topk(k, dim=1).indices if k > 1 else logits.argmax(dim=1, keepdim=True))
    return torch.cat(preds) if preds else torch.empty(0, k, dtype=torch.long, device=x_u8.device)


def accuracy_row(model: IncrementalClassifier, tests: list[TaskData], seen: int, cfg: Config,
                 device: torch.device, unit_range: bool = False, logit_bias: LogitBias | None = None) -> list[float]:
    """Accuracy (%) on each given task's test data, predicting over the `seen` classes: top-1, or the
    dataset's top-k (ImageNet: the label among the 5 best); inputs in [0, 1] for a method that trains
    on them."""
    augment = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device, unit_range=unit_range)
    row = []
    for td in tests:
        pred = predict(model, td.x, augment, seen, logit_bias=logit_bias, top_k=cfg.top_k)
        hits = (pred == td.y[:, None]).any(dim=1)
        row.append(100.0 * int(hits.sum()) / max(int(td.y.shape[0]), 1))  # exact, not float32
    return row
