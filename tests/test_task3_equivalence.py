"""dfcil against the authors' implementation beyond task 2: update steps at task 3 (two old tasks),
the inversion of θ(2) with the generator and its Adam state carried from task 2, the replay batch
of task 3, R-DFCIL against its formulas at task 3, and one walk of ABD through tasks 1-3 beside the
reference's learner, state for state (float64 throughout)."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dfcil_core.lab.reference_weights import generator_state, resnet32_state
from dfcil_core.method import learners, training
from dfcil_core.method.learners import StepBatch
from dfcil_core.method.synthesis import new_generator, sample_replay, synthesize_generator
from tests.reference_impl import learner_config
from tests.step_equivalence import (
    HEADS,
    RTOL,
    N,
    assert_close_by_norm,
    assert_same_step,
    ours_from,
    perturbed_copy,
    recording_backward,
    reference_teacher,
    small_config,
)

T1, PAST, SEEN = 5, 10, 15  # classes after task 1, before task 3, after task 3
TASKS = [list(range(0, T1)), list(range(T1, PAST)), list(range(PAST, SEEN))]


pytestmark = pytest.mark.usefixtures("float64")  # every test here in float64


def _cfg(**over):
    return small_config(data__n_tasks=4, **over)  # 20 classes, 5 a task: task 3 sees 15


def _trained_like(ref, g: torch.Generator) -> torch.nn.Module:
    """A reference ResNet-32 whose BN statistics are those of a batch (not randomised): its eval-mode
    logits stay moderate, so its argmax spreads over the classes as a trained model's does."""
    m = ref.resnet.resnet32(HEADS)
    for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average: after one batch, that batch's statistics
    with torch.no_grad():
        m.train()(torch.randn(64, 3, 32, 32, generator=g))
    for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.momentum = 0.1
    return m.eval()


@pytest.fixture
def s3(ref) -> SimpleNamespace:
    """θ(2) as the frozen teacher of task 3, a student near it, task 3's real batch (classes 10-14)
    and a synthetic batch with replay labels from both old tasks."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    gen = ref.generator.CIFAR_GEN().eval()
    with torch.no_grad():
        x_syn = gen(torch.randn(N, 1000, generator=g))
    teacher = _trained_like(ref, g)
    student = perturbed_copy(teacher, g).train()
    s = SimpleNamespace(ref_teacher=teacher, ref_student=student, ref_gen=gen, x_syn=x_syn,
                        student_state=copy.deepcopy(student.state_dict()),
                        x=torch.randn(N, 3, 32, 32, generator=g), y=torch.randint(PAST, SEEN, (N,), generator=g))
    with torch.no_grad():
        s.t_logits_syn = teacher(x_syn)[:, :PAST]
        s.t_feats_syn = teacher(x_syn, pen=True)
        s.t_logits_real = teacher(s.x)[:, :PAST]
    # Replay labels over all ten old classes, both old tasks (an untrained teacher's argmax is one or
    # two classes): the steps take them as given, in both implementations.
    s.y_syn = torch.arange(N) % PAST
    return s


def _ref_learner(ref, cls, s: SimpleNamespace, **over):
    L = cls(learner_config(HEADS, N, TASKS, lr=0.0, **over))
    L.model = s.ref_student
    L.init_optimizer()  # lr 0: the step leaves the weights, the gradients stay in .grad
    L.valid_out_dim, L.last_valid_out_dim = SEEN, PAST
    L.data_weighting(SimpleNamespace(dw=False))
    L.previous_linear = copy.deepcopy(s.ref_teacher.last)
    L.inversion_replay = True
    return L


def _our_step(method: str, s: SimpleNamespace, cfg) -> tuple[float, dict, torch.nn.Module]:
    student = ours_from(s.student_state, SEEN).train()
    learner = learners.make_learner(method, cfg)
    replay = learner.spec.replay == "inverted"
    b = StepBatch(x_real=s.x.clone(), y_real=s.y, past=PAST, seen=SEEN, teacher=ours_from(s.ref_teacher, PAST).eval())
    if replay:
        b.x_syn, b.y_syn = s.x_syn.clone(), s.y_syn
        b.teacher_logits_syn, b.teacher_feats_syn = s.t_logits_syn, s.t_feats_syn
    learner.prepare(student, replay=replay)
    loss = learner.loss(student, b)
    loss.backward()
    return float(loss.detach()), {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}, student


def _replay_inputs(s: SimpleNamespace):
    return (torch.cat([s.x, s.x_syn]), torch.cat([s.y, s.y_syn]), torch.cat([s.t_logits_real, s.t_logits_syn]),
            np.arange(N, 2 * N))


# ---------------------------------------------------------------------------------------------
# Update steps of task 3


@pytest.mark.parametrize("method, ref_module, ref_cls, over", [
    ("base", "default", "NormalNN", {}),
    ("lwf", "kd", "LWF", {}),
    ("lwf_mc", "kd", "LWF_MC", {"train__lwf_mc_bce": "reference"}),
    ("lwf_mc", "kd", "LWF_MC", {"train__lwf_mc_bce": "stable"}),
])
def test_task3_step_of_the_real_data_methods(ref, s3, method, ref_module, ref_cls, over):
    """Targets over the ten classes of two old tasks, the new head block 10-14 (μ = 1, as the reference)."""
    L = _ref_learner(ref, getattr(getattr(ref, ref_module), ref_cls), s3, mu=1.0)
    if method == "base":
        loss, _ = L.update_model(s3.x.clone(), s3.y)
    else:
        loss, *_ = L.update_model(s3.x.clone(), s3.y, s3.t_logits_real)
    assert_same_step(_our_step(method, s3, _cfg(**over)), loss, L.model)


@pytest.mark.parametrize("method, ref_cls, mu", [("lwf_syn", "DeepInversionLWF", 0.1),
                                                 ("deepinversion", "DeepInversionGenBN", 1.0)])
def test_task3_step_of_the_replay_methods(ref, s3, method, ref_cls, mu):
    """Real and synthetic batches together; distillation padded over the ten old classes."""
    L = _ref_learner(ref, getattr(ref.datafree, ref_cls), s3, mu=mu)
    x_com, y_com, y_hat, kd_index = _replay_inputs(s3)
    loss, *_ = L.update_model(x_com, y_com, y_hat, kd_index=kd_index)
    assert_same_step(_our_step(method, s3, _cfg()), loss, L.model)


def test_task3_abd_step_all_terms_task_balancing_and_bn_statistics(ref, s3):
    """ABD with two old tasks: task balancing at 10/15 for the old classes, local CE over 10-14,
    feature distillation through θ(2)'s head, and the running statistics of both train forwards."""
    L = _ref_learner(ref, ref.datafree.AlwaysBeDreaming, s3, mu=0.1)
    L.previous_teacher = reference_teacher(ref, s3.ref_teacher, s3.ref_gen, PAST, L.config)
    x_com, y_com, y_hat, kd_index = _replay_inputs(s3)
    loss, *_ = L.update_model(x_com, y_com, y_hat, kd_index=kd_index)
    ours = _our_step("abd", s3, _cfg())
    assert_same_step(ours, loss, L.model)
    theirs = resnet32_state(dict(L.model.named_buffers()))
    for k, v in ours[2].named_buffers():
        if k.endswith(("running_mean", "running_var")):
            torch.testing.assert_close(v, theirs[k], rtol=1e-9, atol=1e-12, msg=k)


def test_task3_abd_task_balancing_differs_from_task2s(ref, s3):
    """The balancing weight follows the classes seen: switching it off moves task 3's loss."""
    full = _our_step("abd", s3, _cfg())[0]
    assert abs(_our_step("abd", s3, _cfg(abd__task_balancing=False))[0] - full) > 1e-8


# ---------------------------------------------------------------------------------------------
# R-DFCIL at task 3, against its formulas (the reference has no R-DFCIL)


def _angle_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD-Angle written out: for every vertex j and pair (i, k), the cosine at e_j; L1 over N³."""
    def cosines(e):
        n = e.shape[0]
        out = torch.zeros(n, n, n, dtype=e.dtype)
        for j in range(n):
            d = e - e[j]
            norms = d.norm(dim=1).clamp_min(1e-12)
            u = d / norms[:, None]
            out[j] = u @ u.T
        return out.reshape(-1)

    return (cosines(student) - cosines(teacher)).abs().mean()


@pytest.mark.parametrize("finetuning", [False, True])
def test_task3_rdfcil_loss_equals_its_formulas(s3, finetuning):
    """α = log2(5/2 + 1), β = sqrt(10/5) at task 3. Main phase: λ_ce (1 + 1/α)/β · local CE over the
    new block + λ_hkd αβ · L1 on the old logits of the replay + λ_rkd αβ · RKD-Angle of the student's
    and the teacher's features, each through its projection; head-only phase: CE over the 15 classes
    weighted by 1 / each class's target count so far (normalised by the batch's weight) + the same
    L1 term."""
    cfg = _cfg(rdfcil__finetune_epochs=1)
    r = cfg.rdfcil
    student = ours_from(s3.student_state, SEEN).train()
    teacher = ours_from(s3.ref_teacher, PAST).eval()
    learner = learners.make_learner("rdfcil", cfg)
    learner.prepare(student, replay=True)
    opt, _ = training.make_optimizer(student, cfg, 2, torch.device("cpu"), extra=learner.extra_parameters())
    counts = torch.arange(1, SEEN + 1, dtype=torch.float64)  # as if the main phase had drawn these
    if finetuning:
        learner.class_counts[:SEEN] = counts
        learner.end_epoch()
        learner.begin_epoch(student, opt, 1, 2)
    b = StepBatch(x_real=s3.x.clone(), y_real=s3.y, past=PAST, seen=SEEN, teacher=teacher, x_syn=s3.x_syn.clone(),
                  y_syn=s3.y_syn, teacher_logits_syn=s3.t_logits_syn, teacher_feats_syn=s3.t_feats_syn)
    loss = float(learner.loss(student, b))
    alpha, beta = math.log2(3.5), math.sqrt(2.0)
    with torch.no_grad():
        if finetuning:
            logits = student.head(student.features(torch.cat([s3.x, s3.x_syn])))[:, :SEEN]
            y = torch.cat([s3.y, s3.y_syn])
            w = (counts.sum() / counts)[y]
            ce = (torch.nn.functional.cross_entropy(logits, y, reduction="none") * w).sum() / w.sum()
            hkd = (logits[N:, :PAST] - s3.t_logits_syn).abs().mean()
            expected = r.lambda_ce * ce + r.lambda_hkd * alpha * beta * hkd
        else:
            logits, feats = student.forward_with_features(s3.x)
            ce = torch.nn.functional.cross_entropy(logits[:, PAST:SEEN], s3.y - PAST)
            hkd = (student(s3.x_syn)[:, :PAST] - s3.t_logits_syn).abs().mean()
            t_feats = teacher.forward_with_features(s3.x)[1]
            rkd = _angle_loss(learner.projections["student"](feats), learner.projections["teacher"](t_feats))
            expected = (r.lambda_ce * (1 + 1 / alpha) / beta * ce + r.lambda_hkd * alpha * beta * hkd
                        + r.lambda_rkd * alpha * beta * rkd)
    assert loss == pytest.approx(float(expected), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# The inversion and the replay batch of task 3


def _adam_state(opt: torch.optim.Optimizer, model: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Adam's moments and step count per parameter name."""
    return {k: {"exp_avg": opt.state[p]["exp_avg"], "exp_avg_sq": opt.state[p]["exp_avg_sq"],
                "step": torch.as_tensor(opt.state[p]["step"], dtype=torch.float64)}
            for k, p in model.named_parameters()}


def _assert_same_generator(gen, opt, ref_gen, ref_opt, start: dict[str, torch.Tensor]) -> None:
    """Weights (as the moves from `start`), BN statistics and Adam state under our names. The conv
    biases before BN have a zero gradient in exact arithmetic; Adam scales their rounding noise
    (~1e-16) up to moves of ~1e-9 in both implementations, differently: hence a floor of 1e-8 of
    all moves' norm (the smallest real move here is ~1e-2)."""
    ours, theirs = gen.state_dict(), generator_state(ref_gen.state_dict())
    moved = {k: ours[k] - start[k] for k in ours if ours[k].is_floating_point()}
    assert_close_by_norm(moved, {k: theirs[k] - start[k] for k in moved}, floor=1e-8)
    a, b = _adam_state(opt, gen), _adam_state(ref_opt, ref_gen)
    for field in ("exp_avg", "exp_avg_sq", "step"):
        assert_close_by_norm({k: v[field] for k, v in a.items()},
                             generator_state({k: v[field] for k, v in b.items()}))


def test_inversion_of_theta2_carries_the_generator_and_adam_state_from_task2(ref, monkeypatch):
    """Three Adam steps inverting θ(1) over 5 classes, then three inverting θ(2) over 10 with the
    same generator and optimiser (the reference's `generator_optimizer` lives across tasks): the
    losses of every step, the weights, the BN statistics and Adam's moments equal."""
    cfg = learner_config(HEADS, N, TASKS)
    g = torch.Generator().manual_seed(5)
    thetas = [_trained_like(ref, g), _trained_like(ref, g)]
    ref_gen = ref.generator.CIFAR_GEN()
    ref_opt = torch.optim.Adam(ref_gen.parameters(), lr=cfg["deep_inv_params"][0])
    ours_cfg = _cfg()
    gen, opt = new_generator(ours_cfg, torch.device("cpu"))
    gen.load_state_dict(generator_state(ref_gen.state_dict()))
    start = {k: v.clone() for k, v in gen.state_dict().items()}
    for task, (theta, classes) in enumerate(zip(thetas, (T1, PAST), strict=True), start=2):
        teacher = reference_teacher(ref, copy.deepcopy(theta), ref_gen, classes, cfg, gen_opt=ref_opt)
        recorded = recording_backward(monkeypatch)
        torch.manual_seed(task)
        teacher.get_images(bs=N, epochs=3)
        monkeypatch.undo()
        ours_teacher = ours_from(theta, classes)  # before seeding: building it draws initial weights
        torch.manual_seed(task)
        curves = synthesize_generator(gen, opt, ours_teacher, classes, ours_cfg.synthesis, steps=3, log_every=1)
        assert curves["total"] == pytest.approx(recorded, rel=RTOL), f"task {task}"
        _assert_same_generator(gen, opt, ref_gen, ref_opt, start)
    assert {float(v["step"]) for v in _adam_state(opt, gen).values()} == {6.0}


def test_task3_replay_batch_equals_the_references_sample(ref, s3):
    """θ(2) labels the generator's images over its ten classes: the same images, labels and logits."""
    cfg = learner_config(HEADS, N, TASKS)
    teacher = reference_teacher(ref, s3.ref_teacher, s3.ref_gen, PAST, cfg)
    torch.manual_seed(11)
    x, y, y_hat = teacher.sample(N, "cpu", return_scores=True)
    gen, _ = new_generator(_cfg(), torch.device("cpu"))
    gen.load_state_dict(generator_state(s3.ref_gen.state_dict()))
    gen.eval()
    r = sample_replay(gen, ours_from(s3.ref_teacher, PAST).eval(), N, PAST, torch.Generator().manual_seed(11))
    torch.testing.assert_close(r["x"], x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(r["logits"], y_hat, rtol=1e-10, atol=1e-12)
    assert torch.equal(r["labels"], y)


# ---------------------------------------------------------------------------------------------
# ABD through tasks 1-3, state for state


def _assert_same_model(student: torch.nn.Module, ref_model: torch.nn.Module, when: str) -> None:
    theirs = resnet32_state(ref_model.state_dict())
    for k, v in student.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, theirs[k], rtol=1e-6, atol=1e-8, msg=f"{when}: {k}")


def test_abd_walks_tasks_1_to_3_as_the_reference(ref, monkeypatch):
    """Three SGD steps a task (lr 0.01, momentum, weight decay, the optimiser reset each task), three
    inversion steps after tasks 1 and 2 with the generator and Adam carried, replay sampled from
    the same seeds: after each task and each inversion, the classifier's weights and BN statistics
    and the generator's weights and Adam state equal the reference's."""
    # lr 0.01: at 0.1 on random images θ(2)'s logits grow hundreds apart and the reference's diversity
    # term turns NaN (0 · log 0; our clamp is departure 9i), which would end the comparison there
    cfg_ref = learner_config(HEADS, N, TASKS, lr=0.01, mu=0.1)
    cfg = _cfg(train__lr=0.01, train__momentum=0.9, train__weight_decay=2e-4)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(9)
    L = ref.datafree.AlwaysBeDreaming(cfg_ref)
    L.model = _trained_like(ref, g).train()
    ref_gen = ref.generator.CIFAR_GEN()
    ref_opt = torch.optim.Adam(ref_gen.parameters(), lr=cfg_ref["deep_inv_params"][0])

    student = ours_from(L.model, T1)
    gen, gen_opt = new_generator(cfg, torch.device("cpu"))
    gen.load_state_dict(generator_state(ref_gen.state_dict()))
    gen_start = {k: v.clone() for k, v in gen.state_dict().items()}
    learner = learners.make_learner("abd", cfg)
    teacher, ref_teacher = None, None
    past = 0
    for task, block in enumerate(TASKS, start=1):
        seen = past + len(block)
        L.valid_out_dim, L.last_valid_out_dim = seen, past
        L.init_optimizer()
        L.data_weighting(SimpleNamespace(dw=False))
        if teacher is not None:
            L.previous_linear = copy.deepcopy(ref_teacher.solver.last)
            L.previous_teacher, L.inversion_replay = ref_teacher, True
            student.grow(len(block))
        learner.prepare(student, replay=teacher is not None)
        opt, _ = training.make_optimizer(student, cfg, 10, torch.device("cpu"))
        for step in range(3):
            x = torch.randn(N, 3, 32, 32, generator=g)
            y = torch.randint(past, seen, (N,), generator=g)
            L.model.train()
            b = StepBatch(x_real=x.clone(), y_real=y, past=past, seen=seen, teacher=teacher)
            if teacher is None:
                ref_loss, *_ = L.update_model(x.clone(), y)
            else:
                seed = 100 * task + step
                torch.manual_seed(seed)
                x_rep, y_rep, y_rep_hat = ref_teacher.sample(N, "cpu", return_scores=True)
                y_hat = ref_teacher.generate_scores(x, allowed_predictions=np.arange(past))
                ref_loss, *_ = L.update_model(torch.cat([x, x_rep]), torch.cat([y, y_rep]),
                                              torch.cat([y_hat, y_rep_hat]), kd_index=np.arange(N, 2 * N))
                r = sample_replay(gen, teacher, N, past, torch.Generator().manual_seed(seed))
                b.x_syn, b.y_syn, b.teacher_logits_syn, b.teacher_feats_syn = (r["x"], r["labels"], r["logits"],
                                                                                r["features"])
            loss = training.train_step(student, learner, b, opt, torch.device("cpu"), amp=False)
            assert float(loss) == pytest.approx(float(ref_loss), rel=1e-6), f"task {task} step {step}"
        _assert_same_model(student, L.model, f"after task {task}")
        past = seen
        if task == len(TASKS):
            break
        # θ(task) frozen; the generator inverts it, carrying on from the previous inversion
        ref_teacher = reference_teacher(ref, copy.deepcopy(L.model), ref_gen, past, cfg_ref, gen_opt=ref_opt)
        recorded = recording_backward(monkeypatch)
        torch.manual_seed(50 + task)
        ref_teacher.get_images(bs=N, epochs=3)
        monkeypatch.undo()
        teacher = copy.deepcopy(student).eval()
        torch.manual_seed(50 + task)
        curves = synthesize_generator(gen, gen_opt, teacher, past, cfg.synthesis, steps=3, log_every=1)
        assert curves["total"] == pytest.approx(recorded, rel=RTOL), f"inversion after task {task}"
        _assert_same_generator(gen, gen_opt, ref_gen, ref_opt, gen_start)
