"""What the step-equivalence tests share: our classifier holding the reference's weights, a small
config, and the comparison of a loss and every gradient (1e-5 relative, float64)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dfcil_core.foundations import config as config_mod
from dfcil_core.lab.reference_weights import resnet32_state
from dfcil_core.method.models import IncrementalClassifier

HEADS, N = 20, 16  # head rows (the reference's out_dim), batch
RTOL = 1e-5


def randomise_bn(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial running statistics, so eval-mode forwards and Eq. 5 test something."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d) and m.running_mean is not None:
            m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))


def perturbed_copy(model: torch.nn.Module, gen: torch.Generator, scale: float = 0.05) -> torch.nn.Module:
    """A copy of `model` with N(0, scale²) noise on every parameter: a student near its teacher."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return out


def reference_teacher(ref, solver: torch.nn.Module, generator: torch.nn.Module, classes: int, cfg: dict, *,
                      size: int = 32, gen_opt: torch.optim.Optimizer | None = None):
    """The reference's `Teacher` of `solver` over its first `classes` classes, untrained on construction
    (iters 0), with `gen_opt` (default: Adam at lr 0) and its blur in float64, the tests' dtype."""
    t = ref.helper.Teacher(solver=solver, generator=generator,
                           gen_opt=gen_opt or torch.optim.Adam(generator.parameters(), lr=0.0),
                           img_shape=(-1, 3, size, size), iters=0, class_idx=np.arange(classes),
                           deep_inv_params=cfg["deep_inv_params"], train=False, config=cfg)
    t.smoothing.double()
    return t


def small_config(**over) -> config_mod.Config:
    """HEADS classes in 2 tasks, batch N; `section__key=value` overrides."""
    raw = {"data": {"num_classes": HEADS, "n_tasks": 2}, "train": {"batch_size": N},
           "synthesis": {"batch_size": N, "replay_batch_size": N}}
    for key, value in over.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return config_mod.from_dict(raw)


def ours_from(ref_model: torch.nn.Module | dict, num_classes: int) -> IncrementalClassifier:
    """Our classifier holding the reference model's weights (or a snapshot of its state dict)."""
    m = IncrementalClassifier("resnet32", 32, num_classes, head_size=HEADS)
    m.load_state_dict(resnet32_state(ref_model if isinstance(ref_model, dict) else ref_model.state_dict()))
    return m


def ref_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The reference model's gradients under our parameter names."""
    return resnet32_state({k: p.grad for k, p in model.named_parameters() if p.grad is not None})


def assert_close_by_norm(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], rtol: float = RTOL,
                         floor: float = 1e-10) -> None:
    """Each tensor to `rtol` relative; tensors that are zero in exact arithmetic (a conv bias before
    BN) are compared against `floor` times the whole set's norm instead."""
    assert set(ours) == set(theirs)
    total = float(torch.sqrt(sum((r.double() ** 2).sum() for r in theirs.values())))
    for k, g in ours.items():
        r = theirs[k]
        assert float((g - r).norm()) <= rtol * float(r.norm()) + floor * total, k


def assert_same_step(ours: tuple[float, dict, IncrementalClassifier], ref_loss: torch.Tensor, ref_model) -> None:
    """Our (loss, gradients, model) against the reference's loss and its model's gradients."""
    loss, grads, _ = ours
    assert loss == pytest.approx(float(ref_loss), rel=RTOL)
    assert_close_by_norm(grads, ref_grads(ref_model))


def recording_backward(monkeypatch) -> list[float]:
    """Every loss the reference back-propagates until `monkeypatch.undo()`, in order."""
    recorded: list[float] = []
    backward = torch.Tensor.backward

    def recording(self, *args, **kwargs):
        recorded.append(float(self.detach()))
        return backward(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", recording)
    return recorded
