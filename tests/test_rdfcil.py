"""R-DFCIL: hand values of RKD-Angle and the balanced CE, which parameters each term reaches, the head-only
phase, its class-count weights, a new generator per task."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import yaml

from dfcil_core.drivers import dvc_render
from dfcil_core.foundations import atomic_io, config, registry
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.registry import lineage
from dfcil_core.method import losses
from dfcil_core.method.learners import StepBatch, make_learner
from dfcil_core.method.models import Generator, IncrementalClassifier
from dfcil_core.method.task_inputs import TaskData
from dfcil_core.method.training import fit_task, make_optimizer, train_step
from dfcil_core.run import artifacts, sequence

PAST, SEEN = 3, 5


def test_rkd_angle_on_three_points_by_hand():
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # right angle at point 0: cosines 0, 1/√2, 1/√2
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])  # right angle at point 1: cosines 1/√2, 0, 1/√2
    # 27 triplets; per vertex j two off-diagonal (i != k) entries differ: |0 - 1/√2| at j = 0 and 1,
    # equal at j = 2; L1, as R-DFCIL's code (the RKD paper's Huber would give 4 * 0.25 / 27) -> 4 * 0.7071 / 27
    assert losses.rkd_angle(s, t).item() == pytest.approx(4 * 2 ** -0.5 / 27, abs=1e-6)
    assert losses.rkd_angle(s, 3.0 * s + 1.0).item() == pytest.approx(0.0, abs=1e-7)  # angles ignore scale/shift
    cos = losses.triplet_cosines(s).view(3, 3, 3)
    assert cos[0, 1, 2].item() == pytest.approx(0.0, abs=1e-7) and cos[1, 0, 2].item() == pytest.approx(2 ** -0.5)
    assert cos[1, 1, 2].item() == 0.0 and cos[2, 0, 0].item() == pytest.approx(1.0)
    student, teacher = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
    losses.rkd_angle(student, teacher).backward()  # both sides learn: each has a projection in R-DFCIL
    assert student.grad.abs().sum() > 0 and teacher.grad.abs().sum() > 0


def test_class_weighted_ce_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    w = torch.tensor([1.0, 3.0])
    ce = [math.log(1 + math.exp(-2.0)), math.log(2.0), math.log(1 + math.exp(-1.0))]
    expected = (1 * ce[0] + 3 * ce[1] + 3 * ce[2]) / (1 + 3 + 3)  # normalised by the batch's weight
    assert losses.class_weighted_ce(logits, y, w).item() == pytest.approx(expected, rel=1e-6)
    assert losses.class_weighted_ce(logits, y, 10 * w).item() == pytest.approx(expected, rel=1e-6)


def test_alpha_beta():
    alpha, beta = losses.rdfcil_weights(past=10, seen=20)
    assert alpha == pytest.approx(math.log2(6)) and beta == pytest.approx(1.0)
    assert losses.rdfcil_weights(past=90, seen=100) == pytest.approx((math.log2(6), 3.0))


def _setup(**rdfcil):
    cfg = config.from_dict({"data": {"num_classes": SEEN + 1, "n_tasks": 2, "first_task_classes": PAST},
                            "rdfcil": {"finetune_epochs": 1, **rdfcil}, "train": {"epochs": 3},
                            "methods": ["rdfcil"]})
    torch.manual_seed(0)
    teacher = IncrementalClassifier("resnet32", 32, PAST, head_size=SEEN + 1).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = copy.deepcopy(teacher)
    student.grow(SEEN - PAST)
    for p in student.parameters():
        p.requires_grad_(True)
    student.train()
    learner = make_learner("rdfcil", cfg)
    learner.prepare(student, replay=True)
    g = torch.Generator().manual_seed(1)
    x, x_syn = torch.randn(6, 3, 32, 32, generator=g), torch.randn(6, 3, 32, 32, generator=g)
    with torch.no_grad():
        t_logits_syn = teacher(x_syn)[:, :PAST]
    b = StepBatch(x_real=x, y_real=torch.tensor([3, 4, 3, 4, 3, 4]), past=PAST, seen=SEEN, teacher=teacher,
                  x_syn=x_syn, y_syn=t_logits_syn.argmax(1), teacher_logits_syn=t_logits_syn,
                  teacher_feats_syn=None)
    return cfg, teacher, student, learner, b


@pytest.mark.parametrize("term", ["ce", "hkd", "rkd"])
def test_each_term_reaches_only_its_parameters(term):
    scales = {"lambda_ce": 0.0, "lambda_hkd": 0.0, "lambda_rkd": 0.0, f"lambda_{term}": 1.0}
    _, teacher, student, learner, b = _setup(**scales)
    learner.loss(student, b).backward()
    head = student.head.weight.grad
    proj = [learner.projections[side].weight.grad for side in ("student", "teacher")]
    if term == "ce":  # local CE: new heads only
        assert head[:PAST].abs().sum() == 0 and head[PAST:SEEN].abs().sum() > 0 and proj == [None, None]
    if term == "hkd":  # old heads' logits on synthetic data: old rows only
        assert head[:PAST].abs().sum() > 0 and head[PAST:].abs().sum() == 0 and proj == [None, None]
    if term == "rkd":  # features through the two projections: no head gradient at all
        assert head is None or head.abs().sum() == 0
        assert all(g is not None and g.abs().sum() > 0 for g in proj)
        assert student.features.layers[0].conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())  # the previous model never learns


def test_head_only_phase_changes_only_the_head():
    cfg, _, student, learner, b = _setup()
    opt, _ = make_optimizer(student, cfg, 3, torch.device("cpu"), learner.extra_parameters())
    learner.begin_epoch(student, opt, 1, 3)  # epoch 1 of 3: main phase still
    assert not learner.finetuning and opt.param_groups[0]["lr"] == pytest.approx(0.1)
    learner.begin_epoch(student, opt, 2, 3)  # the last epoch: head-only
    assert learner.finetuning and opt.param_groups[0]["lr"] == pytest.approx(0.005)
    trunk = copy.deepcopy(student.features.state_dict())
    proj = copy.deepcopy(learner.projections.state_dict())
    head = student.head.weight.detach().clone()
    train_step(student, learner, b, opt, torch.device("cpu"), amp=False)
    assert set(learner.terms) == {"balanced_ce", "hkd"}  # the phase's own loss, in its curves
    for k, v in student.features.state_dict().items():  # weights and BN running statistics
        assert torch.equal(v, trunk[k]), k
    for k, v in learner.projections.state_dict().items():
        assert torch.equal(v, proj[k]), k
    assert not torch.equal(student.head.weight, head)


def test_balancing_weights_count_the_targets_of_the_task_so_far():
    # R-DFCIL's code weights each class by 1 / (how often it was a target, real labels and the old
    # model's labels of the replay), renewed after each epoch: a rarely replayed old class weighs more.
    cfg, _, student, learner, b = _setup()
    b.y_syn = torch.tensor([0, 0, 0, 0, 0, 1])  # the replay of this step: class 0 five times, 1 once, 2 never
    opt, _ = make_optimizer(student, cfg, 3, torch.device("cpu"), learner.extra_parameters())
    learner.loss(student, b)  # a main-phase step counts its targets
    learner.loss(student, b)
    assert learner.class_weights[:SEEN].tolist() == [1.0] * SEEN  # not renewed inside an epoch
    learner.end_epoch()
    # counts over two steps: class 0: 10, 1: 2, 2: 0, 3: 6, 4: 6 (of 24) -> 24 / max(count, 1)
    assert learner.class_weights[:SEEN].tolist() == pytest.approx([2.4, 12.0, 24.0, 4.0, 4.0])
    learner.begin_epoch(student, opt, 2, 3)
    w = learner.class_weights[:SEEN].float()
    with torch.no_grad():
        logits = student.head(student.features(torch.cat([b.x_real, b.x_syn])))[:, :SEEN]
        y = torch.cat([b.y_real, b.y_syn])
        ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        hkd = (logits[6:, :PAST] - b.teacher_logits_syn).abs().mean()
        alpha, beta = losses.rdfcil_weights(PAST, SEEN)
        expected = 0.5 * (ce * w[y]).sum() / w[y].sum() + 0.15 * alpha * beta * hkd
    assert learner.loss(student, b).item() == pytest.approx(expected.item(), rel=1e-5)
    state = learner.state_dict()  # an in-task checkpoint keeps the counts and weights
    fresh = make_learner("rdfcil", cfg)
    fresh.prepare(student, replay=True)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.class_counts, learner.class_counts)
    assert torch.equal(fresh.class_weights, learner.class_weights)
    with pytest.raises(KeyError):  # the earlier R-DFCIL's checkpoint (one projector, no counts) does not fit
        fresh.load_state_dict({"projector": {}})


def test_config_validation_and_lineage():
    with pytest.raises(DfcilError, match="rdfcil.finetune_epochs: 4 leaves no main-phase epoch in task 2"):
        config.from_dict({"methods": ["rdfcil"], "train": {"epochs": 4}, "rdfcil": {"finetune_epochs": 4}})
    with pytest.raises(DfcilError, match="rdfcil.lambda_rkd"):
        config.from_dict({"rdfcil": {"lambda_rkd": -1}})
    assert lineage("rdfcil", 1) == "ce" and lineage("rdfcil", 2) == "rdfcil"  # shares θ(1) and the ce generator


def test_loss_curves_follow_the_phases():
    # fit_task averages each weighted term per epoch; a term of one phase only is None in the other.
    cfg, teacher, student, learner, _ = _setup()
    g = torch.Generator().manual_seed(2)
    data = TaskData(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g),
                    torch.tensor([3, 4] * 4))
    generator = Generator(z_dim=16)
    history = fit_task(student, learner, data, cfg, torch.device("cpu"), PAST, SEEN, 3, seed=0,
                       teacher=teacher, generator=generator)
    terms = history["terms"]
    assert set(terms) == {"local_ce", "hkd", "rkd", "balanced_ce"}
    assert all(len(v) == 3 for v in terms.values())
    assert terms["balanced_ce"][:2] == [None, None] and terms["balanced_ce"][2] > 0
    assert terms["rkd"][2] is None and terms["local_ce"][2] is None
    assert all(v is not None for v in terms["hkd"])
    for e in range(3):  # the terms of an epoch add up to its loss
        assert sum(v[e] for v in terms.values() if v[e] is not None) == pytest.approx(history["loss"][e], rel=1e-5)



def test_a_new_generator_per_task_where_deepinversion_carries_its_own(tmp_path, data_root):
    # R-DFCIL's code inverts a new generator (and Adam) before every task; ABD's code, which
    # DeepInversion follows, carries one on. Both replay the shared CE generator at task 2.
    cfg = config.load(preset="tiny", overrides=["data.num_classes=6", "data.n_tasks=3", "data.train_per_class=24",
                                                 "data.test_per_class=10", "synthesis.steps=3",
                                                 "methods=[deepinversion,rdfcil]"])
    assert not registry.continues_generator("rdfcil", 3) and registry.continues_generator("deepinversion", 3)
    sequence.run(cfg, tmp_path)
    lay = artifacts.Layout(tmp_path)
    di, rd = (atomic_io.load_torch(lay.generator(m, 3)) for m in ("deepinversion", "rdfcil"))
    assert "generators/ce/task_2.pt" in di["meta"]["inputs"] and list(rd["meta"]["inputs"]) == [
        "models/rdfcil/task_2.pt"]
    steps = [int(next(iter(g["optimizer"]["state"].values()))["step"]) for g in (di, rd)]
    assert steps == [6, 3]  # Adam went on from task 2's three steps, or started afresh
    stages = yaml.safe_load(dvc_render.render(cfg, str(tmp_path)))["stages"]
    assert not any("generators" in d for d in stages["synthesize_rdfcil_t3"]["deps"])
    assert any(d.endswith("generators/ce/task_2.pt") for d in stages["synthesize_deepinversion_t3"]["deps"])
