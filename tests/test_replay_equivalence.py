"""The paper's replay comparisons (Naive Rehearsal, LwF + coreset, E2E, BiC, DGR) against the authors'
code (../shared/reference, MIT): the coreset selections and the data mixes exactly, for seeds 0-2
over three tasks; one update step of each method (and each phase) to 1e-5 relative in float64, the
same weights and batch on both sides."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dfcil_core.foundations import config as config_mod
from dfcil_core.lab.reference_weights import CpuBiasLayer, resnet32_state, vae_state
from dfcil_core.method import coreset
from dfcil_core.method.learners import StepBatch, make_learner
from dfcil_core.method.learners.generative_replay import vae_loss
from dfcil_core.method.models import IncrementalClassifier, LogitBias, VariationalAutoencoder
from tests.reference_impl import learner_config
from tests.step_equivalence import perturbed_copy, randomise_bn

HEADS, N = 20, 16
RTOL = 1e-5
# Three tasks of two classes each (dataset class ids), 12 images per class, interleaved in dataset order.
TASKS = [[7, 2], [11, 4], [9, 0]]
PER_CLASS = 12
SIZE = 10  # coreset size: 5 per class after task 1, 2-3 after task 2, 1-2 after task 3


# --------------------------------------------------------------------------------------------
# The coreset: selection, mixing and BiC's hold-out, exactly


def _images() -> tuple[np.ndarray, np.ndarray]:
    """Images whose first pixels spell their id, targets in an interleaved dataset order."""
    classes = [c for t in TASKS for c in t]
    targets = np.array([classes[i % len(classes)] for i in range(PER_CLASS * len(classes))])
    ids = np.arange(len(targets))
    data = np.zeros((len(targets), 32, 32, 3), np.uint8)
    data[:, 0, 0, 0], data[:, 0, 0, 1] = ids % 256, ids // 256
    return data, targets


def _id(image) -> int:
    a = np.asarray(image)
    return int(a[0, 0, 0]) + 256 * int(a[0, 0, 1])


class _Ours:
    """Our side of the same images: the split's task arrays are class-grouped (each class's images in
    dataset order), so an image's (task, row) follows from its id."""

    def __init__(self):
        data, targets = _images()
        positions = {c: p for p, c in enumerate(c for t in TASKS for c in t)}
        self.ref_of_id, self.labels = {}, {}
        for t, classes in enumerate(TASKS, start=1):
            row = 0
            for c in classes:
                for i in np.flatnonzero(targets == c):
                    self.ref_of_id[int(i)] = (t, row)
                    row += 1
            self.labels[t] = np.repeat([positions[c] for c in classes], PER_CLASS)
        self.id_of_ref = {v: k for k, v in self.ref_of_id.items()}

    def ids(self, kept: coreset.Coreset) -> list[int]:
        return [self.id_of_ref[tuple(r)] for r in kept.refs.tolist()]


def _ref_dataset(ref, seed: int):
    data, targets = _images()

    class Small(ref.loader.iDataset):
        def load(self):
            self.data, self.targets = data, targets

    ds = Small("unused", train=True, transform=lambda img: img, tasks=TASKS, seed=seed)
    ds.simple_transform = lambda img: torch.from_numpy(np.array(img))  # the id survives to the stub teacher
    return ds


class _StubTeacher:
    """Features per image id (float32 values, as the reference's teacher gives them), one table per task."""

    def __init__(self, features: np.ndarray):
        self.features = features

    def generate_scores_pen(self, x):
        return torch.from_numpy(self.features[_id(x[0])][None])


def _features(seed: int, task: int) -> np.ndarray:
    return np.random.RandomState(1000 * seed + task).randn(PER_CLASS * 6, 64).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("selection", ["random", "mean_distance", "herding"])
def test_coreset_selection_and_training_mix_equal_reference(ref, seed, selection):
    """Three tasks of the authors' trainer loop (the per-task seeds, the coreset appended to the task's
    data, the update after the task) beside ours: the same images in the same order after every task,
    duplicates kept, and the same training set (as a multiset) in every task."""
    ours, ds = _Ours(), _ref_dataset(ref, seed)
    kept = coreset.Coreset.empty()
    mix = "resampled" if selection == "random" else "whole"
    for t in range(3):
        np.random.seed(seed * 100 + t)  # the trainer's per-task seed
        ds.load_dataset(t, train=True)
        ds.append_coreset(only=False)
        theirs_train = sorted(_id(x) for x in ds.data)
        new = coreset.task_entries(ours.labels[t + 1], t + 1)
        replayed = coreset.resampled(kept, len(new), seed, t + 1) if mix == "resampled" else kept
        assert sorted(ours.ids(new) + ours.ids(replayed)) == theirs_train, t
        seen = np.arange(2 * (t + 1))
        cands = coreset.candidates(new, replayed)
        if selection == "random":
            ds.update_coreset(SIZE, seen)
            kept = coreset.select_random(cands, SIZE, seed, t + 1)
        else:
            feats = _features(seed, t)
            update = ds.update_coreset_ete if selection == "mean_distance" else ds.update_coreset_ic
            update(SIZE, seen, _StubTeacher(feats))
            kept = coreset.select_ranked(
                cands, kept if t else coreset.Coreset.empty(), SIZE, selection,
                lambda refs, f=feats: f[[ours.id_of_ref[tuple(r)] for r in refs.tolist()]].astype(np.float64))
        assert ours.ids(kept) == [_id(x) for x in ds.coreset[0]], (t, selection)
        positions = {c: p for p, c in enumerate(c for tk in TASKS for c in tk)}
        assert kept.labels.tolist() == [positions[int(c)] for c in ds.coreset[1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bic_holdout_rows_equal_reference(ref, seed):
    """Task 2 and task 3 of BiC: which new images and which coreset entries are held out for the bias
    layer, and which train stage 1."""
    ours, ds = _Ours(), _ref_dataset(ref, seed)
    kept = coreset.Coreset.empty()
    for t in range(3):
        if t:
            ds.load_dataset(t, train=True)
            ds.load_bic_dataset()
            ds.append_coreset_ic()
            stage1 = sorted(_id(x) for x in ds.data)
            ds.load_dataset(t, train=True)
            ds.load_bic_dataset(post=True)
            ds.append_coreset_ic(post=True)
            held = sorted(_id(x) for x in ds.data)
            new = coreset.task_entries(ours.labels[t + 1], t + 1)
            h = coreset.bic_holdout(new.labels, kept.labels, 0.1, 2 * t)
            assert sorted(ours.ids(new.take(h.new_train)) + ours.ids(kept.take(h.coreset_train))) == stage1
            assert sorted(ours.ids(new.take(h.new_held)) + ours.ids(kept.take(h.coreset_held))) == held
        ds.load_dataset(t, train=True)
        ds.append_coreset(only=False)
        feats = _features(seed, t)
        ds.update_coreset_ic(60, np.arange(2 * (t + 1)), _StubTeacher(feats))  # 60: a hold-out of 6
        new = coreset.task_entries(ours.labels[t + 1], t + 1)
        kept = coreset.select_ranked(coreset.candidates(new, kept), kept, 60, "herding",
                                     lambda refs, f=feats: f[[ours.id_of_ref[tuple(r)] for r in refs.tolist()]]
                                     .astype(np.float64))
        assert ours.ids(kept) == [_id(x) for x in ds.coreset[0]]


# --------------------------------------------------------------------------------------------
# One update step of each method, float64, the same weights and batch

PAST, SEEN = 5, 10


@pytest.fixture
def setup(ref, float64):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    ref_teacher = ref.resnet.resnet32(HEADS)
    randomise_bn(ref_teacher, g)
    ref_student = perturbed_copy(ref_teacher, g)
    ref_teacher.eval()
    ref_student.train()
    s = SimpleNamespace(ref_teacher=ref_teacher, ref_student=ref_student,
                        student_state=copy.deepcopy(ref_student.state_dict()),
                        x=torch.randn(N, 3, 32, 32, generator=g),
                        y=torch.cat([torch.randint(0, PAST, (N // 4,), generator=g),  # coreset images
                                     torch.randint(PAST, SEEN, (N - N // 4,), generator=g)]))
    with torch.no_grad():
        s.t_logits = ref_teacher(s.x)[:, :PAST]
    return s


def _cfg(**over) -> config_mod.Config:
    raw = {"data": {"num_classes": HEADS, "n_tasks": 4}, "train": {"batch_size": N}}
    for key, value in over.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return config_mod.from_dict(raw)


def _ours(state: dict, num_classes: int) -> IncrementalClassifier:
    m = IncrementalClassifier("resnet32", 32, num_classes, head_size=HEADS)
    m.load_state_dict(resnet32_state(state))
    return m


def _ref_learner(ref, cls, s, **over):
    L = cls(learner_config(HEADS, N, [list(range(PAST)), list(range(PAST, SEEN))], lr=0.0, **over))
    L.model = s.ref_student
    L.init_optimizer()
    L.valid_out_dim, L.last_valid_out_dim = SEEN, PAST
    L.data_weighting(SimpleNamespace(dw=False))
    return L


def _our_loss(method: str, s, cfg, **attrs) -> tuple[float, dict, IncrementalClassifier, object]:
    student = _ours(s.student_state, SEEN).train()
    teacher = _ours(s.ref_teacher.state_dict(), PAST).eval()
    learner = make_learner(method, cfg)
    for k, v in attrs.items():
        setattr(learner, k, v)
    b = StepBatch(x_real=s.x.clone(), y_real=s.y, past=PAST, seen=SEEN, teacher=teacher)
    loss = learner.loss(student, b)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, student, learner


def _assert_same(ours, ref_loss, ref_model, only: tuple[str, ...] = ()) -> None:
    loss, grads, _, _ = ours
    assert loss == pytest.approx(float(ref_loss), rel=RTOL)
    theirs = resnet32_state({k: p.grad for k, p in ref_model.named_parameters() if p.grad is not None})
    if only:
        grads = {k: v for k, v in grads.items() if k.startswith(only)}
        theirs = {k: v for k, v in theirs.items() if k.startswith(only)}
    assert set(grads) == set(theirs)
    total = float(torch.sqrt(sum((r ** 2).sum() for r in theirs.values())))
    for k, gr in grads.items():
        assert float((gr - theirs[k]).norm()) <= RTOL * float(theirs[k].norm()) + 1e-10 * total, k


def test_naive_rehearsal_step(ref, setup):
    L = _ref_learner(ref, ref.default.NormalNN, setup, memory=2000)
    loss, _ = L.update_model(setup.x.clone(), setup.y)
    _assert_same(_our_loss("rehearsal", setup, _cfg()), loss, L.model)


def test_lwf_coreset_step(ref, setup):
    L = _ref_learner(ref, ref.kd.LWF, setup, memory=2000, mu=1.0)
    loss, *_ = L.update_model(setup.x.clone(), setup.y, setup.t_logits)
    _assert_same(_our_loss("lwf_coreset", setup, _cfg()), loss, L.model)
    # the KD weight is its own setting (the paper's mu = 1 for LwF + coreset)
    assert _our_loss("lwf_coreset", setup, _cfg(train__lwf_coreset_mu=0.5))[0] != pytest.approx(float(loss))


BLOCKS = [(0, 2), (2, 5)]  # two past tasks of 2 and 3 classes: E2E distils each on its own


def _ref_ete(ref, s):
    L = _ref_learner(ref, ref.kd.ETE, s, memory=2000, mu=1.0)
    L.past_tasks = [np.arange(a, b) for a, b in BLOCKS]
    return L


def test_e2e_phase_a_step(ref, setup):
    L = _ref_ete(ref, setup)
    loss, *_ = L.update_model(setup.x.clone(), setup.y, setup.t_logits)
    _assert_same(_our_loss("e2e", setup, _cfg(), blocks=BLOCKS, phase=0), loss, L.model)


def test_e2e_phase_b_step_with_the_reference_teacher(ref, setup):
    """Phase B: the authors' loss (its new-class KD reads the old teacher's first columns); the head is
    what phase B steps, and its gradient is compared with every other."""
    L = _ref_ete(ref, setup)
    loss, *_ = L.update_model_b(setup.x.clone(), setup.y, setup.t_logits, None)
    ours = _our_loss("e2e", setup, _cfg(), blocks=BLOCKS, phase=1)
    _assert_same(ours, loss, L.model)
    assert set(ours[3].terms) == {"ce", "kd", "kd_new"}


def test_e2e_phase_b_paper_teacher_reads_the_phase_a_model(ref, setup):
    """`e2e.phase_b_teacher: paper` distils the new classes toward the phase-A model's new-class logits
    (what E2E intends), where the authors' code reads the old teacher's first columns."""
    phase_a = _ours(setup.student_state, SEEN).eval()
    with torch.no_grad():
        target = phase_a(setup.x)[:, PAST:SEEN]
    ours = _our_loss("e2e", setup, _cfg(e2e__phase_b_teacher="paper"), blocks=BLOCKS, phase=1,
                     phase_a_state=phase_a.state_dict())
    reference_mode = _our_loss("e2e", setup, _cfg(), blocks=BLOCKS, phase=1)
    from dfcil_core.method import losses

    student = _ours(setup.student_state, SEEN).train()
    with torch.no_grad():
        logits = student(setup.x)
    expected = 5 / 10 * losses.softmax_kd(logits[:, PAST:SEEN], target, 2.0, pad_to_student=False)
    assert float(ours[3].terms["kd_new"]) == pytest.approx(float(expected), rel=1e-12)
    assert ours[0] != pytest.approx(reference_mode[0], rel=1e-6)


def _bic_layers():
    """The bias layer of the earlier second task (classes [2, 5)), trained away from the identity."""
    layer = CpuBiasLayer()
    with torch.no_grad():
        layer.alpha.fill_(0.8)
        layer.beta.fill_(-0.3)
    return [[np.arange(2, 5), layer]]


def test_bic_stage1_step_through_the_earlier_bias_layers(ref, setup):
    L = _ref_learner(ref, ref.kd.BIC, setup, memory=2000)
    L.bic_layers = _bic_layers()
    teacher = ref.kd.TeacherBiC(solver=setup.ref_teacher, bic_layers=copy.deepcopy(L.bic_layers))
    target, _ = teacher.generate_scores(setup.x, allowed_predictions=list(range(PAST)))
    loss, *_ = L.update_model(setup.x.clone(), setup.y, target)
    bias = LogitBias()
    bias.add(2, 5, 0.8, -0.3)
    ours = _our_loss("bic", setup, _cfg(), phase=0, bias=copy.deepcopy(bias), teacher_bias=copy.deepcopy(bias))
    _assert_same(ours, loss, L.model)


def test_bic_stage2_step_fits_the_new_bias_layer(ref, setup, monkeypatch):
    """Stage 2: a new layer on the new classes' logits, CE over the seen classes through every layer;
    its alpha's and beta's gradients equal the reference's."""
    monkeypatch.setattr(ref.kd, "BiasLayer", CpuBiasLayer)
    L = _ref_learner(ref, ref.kd.BIC, setup, memory=2000)
    L.bic_layers = _bic_layers() + [[np.arange(PAST, SEEN), ref.kd.BiasLayer()]]
    with torch.no_grad():
        L.bic_layers[-1][1].alpha.fill_(1.2)
        L.bic_layers[-1][1].beta.fill_(0.1)
    output = L.forward(setup.x.clone())
    loss = L.criterion(output, setup.y.long(), L.dw_k[-1 * torch.ones(setup.y.size()).long()])
    loss.backward()
    bias = LogitBias()
    bias.add(2, 5, 0.8, -0.3)
    bias.add(PAST, SEEN, 1.2, 0.1)
    for p in [bias.alphas[0], bias.betas[0]]:
        p.requires_grad_(False)
    ours = _our_loss("bic", setup, _cfg(), phase=1, bias=bias)
    assert ours[0] == pytest.approx(float(loss.detach()), rel=RTOL)
    layer = L.bic_layers[-1][1]
    assert float(bias.alphas[1].grad) == pytest.approx(float(layer.alpha.grad), rel=RTOL)
    assert float(bias.betas[1].grad) == pytest.approx(float(layer.beta.grad), rel=RTOL)
    assert ours[1] == {}  # the network itself takes no gradient in stage 2


def _ref_vae(ref):
    torch.manual_seed(3)
    vae = ref.autoencoder.CIFAR_GEN()
    vae.recon_criterion = torch.nn.BCELoss(reduction="none")
    return vae


def _our_vae(ref_vae) -> VariationalAutoencoder:
    ours = VariationalAutoencoder(1024, 32)
    ours.load_state_dict(vae_state(ref_vae.state_dict()))
    return ours


def test_dgr_vae_forward_and_step_equal_reference(ref, float64):
    """The VAE: same decoding of z, and one training step's losses and every gradient with the same
    reparameterisation noise and sample weights."""
    rv = _ref_vae(ref)
    ours = _our_vae(rv)
    g = torch.Generator().manual_seed(5)
    z = torch.randn(4, 1024, generator=g)
    with torch.no_grad():
        assert torch.allclose(ours.decode(z), rv.decode(z), rtol=1e-10, atol=1e-12)
    x = torch.rand(6, 3, 32, 32, generator=g)
    w = torch.tensor([0.5, 0.5, 0.5, 1.0, 1.0, 0.25])
    eps = torch.randn(6, 1024, generator=g)
    rv.reparameterize = lambda mu, logvar: mu + eps * logvar.mul(0.5).exp()
    rv.train()
    recon, mu, logvar, _ = rv(x)
    r_rec, r_kl = rv.loss_function(recon, x, w, mu, logvar)
    (r_rec + r_kl).backward()
    ours.train()
    rec, kl = vae_loss(ours, x, w, eps)
    (rec + kl).backward()
    assert float(rec) == pytest.approx(float(r_rec), rel=RTOL) and float(kl) == pytest.approx(float(r_kl), rel=RTOL)
    theirs = vae_state({k: p.grad for k, p in rv.named_parameters()})
    for k, p in ours.named_parameters():
        assert float((p.grad - theirs[k]).norm()) <= RTOL * float(theirs[k].norm()) + 1e-14, k


def test_dgr_solver_step_equals_reference(ref, setup):
    """The classifier's step on real + replayed images: class weights past / seen and 1 - past / seen,
    KD on the replayed half only (the reference's `update_model` with `dw_force` and `kd_index`)."""
    L = _ref_learner(ref, ref.dgr.Generative_Replay, setup, gen_model_type="autoencoder",
                     gen_model_name="CIFAR_GEN", memory=0, weight_decay=0.0)
    g = torch.Generator().manual_seed(7)
    x_replay = torch.rand(N, 3, 32, 32, generator=g)
    with torch.no_grad():
        y_hat_replay = setup.ref_teacher(x_replay)[:, :PAST]
    y_replay = y_hat_replay.argmax(1)
    y_real = torch.randint(PAST, SEEN, (N,), generator=g)
    x_com, y_com = torch.cat([setup.x, x_replay]), torch.cat([y_real, y_replay])
    y_hat_com = torch.cat([setup.t_logits, y_hat_replay])
    mappings = torch.ones(y_com.size())
    rnt = PAST / SEEN
    mappings[:PAST], mappings[PAST:] = rnt, 1 - rnt
    loss, _ = L.update_model(x_com, y_com, y_hat_com, dw_force=mappings[y_com.long()], kd_index=np.arange(N, 2 * N))
    student = _ours(setup.student_state, SEEN).train()
    teacher = _ours(setup.ref_teacher.state_dict(), PAST).eval()
    learner = make_learner("dgr", _cfg())
    b = StepBatch(x_real=setup.x.clone(), y_real=y_real, past=PAST, seen=SEEN, teacher=teacher, x_syn=x_replay,
                  y_syn=y_replay, teacher_logits_syn=y_hat_replay)
    ours_loss = learner.loss(student, b)
    ours_loss.backward()
    grads = {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}
    _assert_same((float(ours_loss.detach()), grads, student, learner), loss, L.model)
    assert set(learner.terms) == {"ce", "kd"}
