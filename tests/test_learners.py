"""Gradient properties of the ABD terms and the learners' losses."""

from __future__ import annotations

import copy

import pytest
import torch

from dfcil_core.foundations import config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.registry import lineage
from dfcil_core.method import losses
from dfcil_core.method.learners import LEARNERS, StepBatch, make_learner
from dfcil_core.method.models import IncrementalClassifier

PAST, SEEN = 3, 5


@pytest.fixture()
def models():
    torch.manual_seed(0)
    teacher = IncrementalClassifier("resnet32", 32, PAST)
    with torch.no_grad():  # realistic BN running statistics
        for _ in range(20):
            teacher(torch.randn(32, 3, 32, 32))
    teacher.eval()
    student = copy.deepcopy(teacher)
    student.grow(SEEN - PAST)
    with torch.no_grad():  # a student that has drifted from its teacher
        for p in student.features.parameters():
            p.add_(0.01 * torch.randn_like(p))
    student.train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, student


def _batch(teacher):
    g = torch.Generator().manual_seed(1)
    x_syn = torch.randn(4, 3, 32, 32, generator=g)
    with torch.no_grad():
        t_logits, t_feats = teacher.forward_with_features(x_syn)
    return StepBatch(x_real=torch.randn(4, 3, 32, 32, generator=g), y_real=torch.tensor([3, 4, 3, 4]),
                     past=PAST, seen=SEEN, teacher=teacher, x_syn=x_syn, y_syn=t_logits.argmax(1),
                     teacher_logits_syn=t_logits, teacher_feats_syn=t_feats)


def _grads(model):
    return {n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()}


def test_ft_ce_changes_only_the_head(models):
    _, student = models
    feats = student.features(torch.randn(4, 3, 32, 32))
    losses.ft_ce(student.head, feats, torch.tensor([0, 1, 3, 4]), SEEN, losses.balancing_weights(PAST, SEEN)).backward()
    g = _grads(student)
    assert all(v is None for n, v in g.items() if not n.startswith("head."))
    assert g["head.weight"].abs().sum() > 0


def test_local_ce_gives_old_heads_zero_gradient(models):
    _, student = models
    logits = student(torch.randn(4, 3, 32, 32))
    losses.local_ce(logits, torch.tensor([3, 4, 3, 4]), PAST, losses.balancing_weights(PAST, SEEN)).backward()
    gw = student.head.weight.grad
    assert torch.count_nonzero(gw[:PAST]) == 0 and torch.count_nonzero(student.head.bias.grad[:PAST]) == 0
    assert gw[PAST:].abs().sum() > 0
    assert student.features.stem[0].weight.grad.abs().sum() > 0  # features do learn the new task


def test_feature_distillation_never_updates_the_teacher(models):
    teacher, student = models
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    cfg = config.from_dict({})
    learner = make_learner("abd", cfg)
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    loss = learner.loss(student, _batch(teacher))
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in teacher.parameters())
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats too (eval mode)


def test_abd_loss_is_the_sum_of_its_terms(models):
    teacher, student = models
    cfg = config.from_dict({})
    b = _batch(teacher)
    student.eval()  # deterministic BN so the terms can be recomputed
    total = make_learner("abd", cfg).loss(student, b)
    x = torch.cat([b.x_real, b.x_syn])
    y = torch.cat([b.y_real, b.y_syn])
    logits, feats = student.forward_with_features(x)
    w = losses.balancing_weights(PAST, SEEN)
    with torch.no_grad():
        t_feats = torch.cat([teacher.forward_with_features(b.x_real)[1], b.teacher_feats_syn])
    expected = (losses.local_ce(logits[:4], b.y_real, PAST, w)
                + losses.ft_ce(student.head, feats, y, SEEN, w)
                + 0.1 * losses.importance_weighted_feature_kd(feats, t_feats, teacher.head.weight[:PAST]))
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("flag", ["task_balancing", "local_ce", "kd_real", "kd_synthetic", "ft_ce"])
def test_each_ablation_changes_the_loss(models, flag):
    teacher, student = models
    student.eval()
    b = _batch(teacher)
    full = make_learner("abd", config.from_dict({})).loss(student, b).item()
    ablated = make_learner("abd", config.from_dict({"abd": {flag: False}})).loss(student, b).item()
    assert ablated != pytest.approx(full, rel=1e-6)


@pytest.mark.parametrize("method", sorted(LEARNERS))
def test_every_learner_gives_a_finite_differentiable_loss(models, method):
    teacher, student = models
    learner = make_learner(method, config.from_dict({}))
    learner.prepare(student, replay=True)  # as fit_task does before the first step
    loss = learner.loss(student, _batch(teacher))
    assert torch.isfinite(loss) and loss.requires_grad
    loss.backward()


TERMS = {"base": {"ce"}, "upper_bound": {"ce"}, "lwf": {"ce", "kd"}, "lwf_mc": {"bce"},
         "lwf_syn": {"ce", "kd"}, "deepinversion": {"ce", "kd"}, "abd": {"local_ce", "ft_ce", "feature_kd"},
         "rdfcil": {"local_ce", "hkd", "rkd"}, "rehearsal": {"ce"}, "lwf_coreset": {"ce", "kd"},
         "e2e": {"ce", "kd"}, "bic": {"ce", "kd"}, "dgr": {"ce", "kd"}}


@pytest.mark.parametrize("method", sorted(LEARNERS))
def test_recorded_terms_add_up_to_the_loss(models, method):
    # The loss curves plot these terms: they must be the weighted terms that make the total.
    teacher, student = models
    student.eval()
    learner = make_learner(method, config.from_dict({}))
    learner.prepare(student, replay=True)
    learner.blocks = [(0, PAST)]  # E2E distils per past task (the stage sets them from the split)
    loss = learner.loss(student, _batch(teacher))
    assert set(learner.terms) == TERMS[method]
    assert all(not t.requires_grad for t in learner.terms.values())
    assert sum(learner.terms.values()).item() == pytest.approx(loss.item(), rel=1e-6)


def test_abd_terms_carry_their_weights(models):
    teacher, student = models
    student.eval()
    b = _batch(teacher)
    one = make_learner("abd", config.from_dict({}))
    one.loss(student, b)
    ten = make_learner("abd", config.from_dict({"abd": {"lambda_kd": 1.0}}))
    ten.loss(student, b)
    assert ten.terms["feature_kd"].item() == pytest.approx(10 * one.terms["feature_kd"].item(), rel=1e-5)
    assert ten.terms["local_ce"].item() == pytest.approx(one.terms["local_ce"].item(), rel=1e-6)


def test_first_task_is_shared_except_lwf_mc_abd_and_dgr():
    # ABD's task 1 is CE over every head row (the authors' code), so it has its own θ(1); DGR's sees
    # [0, 1] inputs and no weight decay, and trains its VAE from task 1.
    assert {m for m in LEARNERS if lineage(m, 1) == "ce"} == {"base", "upper_bound", "lwf", "lwf_syn",
                                                              "deepinversion", "rdfcil", "rehearsal",
                                                              "lwf_coreset", "e2e", "bic"}
    assert lineage("lwf_mc", 1) == "lwf_mc" and lineage("abd", 1) == "abd" and lineage("abd", 2) == "abd"
    assert lineage("dgr", 1) == "dgr"


def test_unknown_method():
    with pytest.raises(DfcilError, match="unknown method 'ewc'"):
        make_learner("ewc", config.from_dict({}))


def test_bn_statistics_hooks_average_the_per_layer_kl():
    """The batched KL over all BN layers equals Eq. 5 per layer, then the mean over layers."""
    from dfcil_core.method.synthesis import BNStatisticsHooks

    torch.manual_seed(0)
    teacher = IncrementalClassifier("resnet32", 32, 5).eval()
    bns = [m for m in teacher.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:  # non-trivial stored statistics, different per layer
        m.running_mean.uniform_(-1, 1)
        m.running_var.uniform_(0.5, 2)
    inputs: list[torch.Tensor] = []
    capture = [m.register_forward_hook(lambda _m, i, _o: inputs.append(i[0].detach())) for m in bns]
    hooks = BNStatisticsHooks(teacher)
    x = torch.randn(6, 3, 32, 32)
    teacher(x)
    got = hooks.pop_mean()
    for h in capture:
        h.remove()
    hooks.remove()
    per_layer = [losses.bn_stat_kl_per_channel(a.mean(dim=(0, 2, 3)), a.var(dim=(0, 2, 3), unbiased=False),
                                               m.running_mean, m.running_var).mean()
                 for a, m in zip(inputs, bns, strict=True)]
    assert len(per_layer) == 31  # stem + 2 per block x 15 (option-A shortcuts have no BN)
    assert got.item() == pytest.approx(torch.stack(per_layer).mean().item(), rel=1e-5)
    assert hooks.stats == []  # popped: the next forward starts afresh
