"""dfcil against the authors' implementation: the same weights and the same batch in both, in
float64, give the same forward passes, the same loss values and the same gradients (1e-5 relative)
for every learner's update step and for the generator's inversion loss; the same class orders and
task data; the same augmentation.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dfcil_core.foundations import atomic_io
from dfcil_core.foundations import config as config_mod
from dfcil_core.lab.reference_weights import generator_state, reference_classifier, resnet32_state
from dfcil_core.method import datasets as data
from dfcil_core.method import learners, losses, training
from dfcil_core.method.augment import DeviceAugment
from dfcil_core.method.learners import StepBatch
from dfcil_core.method.models import Generator, IncrementalClassifier
from dfcil_core.method.synthesis import BNStatisticsHooks, inversion_loss, prior_kernel
from tests.reference_impl import learner_config
from tests.step_equivalence import HEADS, RTOL, N, perturbed_copy, recording_backward, reference_teacher
from tests.step_equivalence import assert_close_by_norm as _assert_same_grads
from tests.step_equivalence import assert_same_step as _assert_same
from tests.step_equivalence import ours_from as _ours
from tests.step_equivalence import randomise_bn as _randomise_bn
from tests.step_equivalence import small_config as _cfg

PAST, SEEN = 5, 10  # classes of task 1, seen after task 2


pytestmark = pytest.mark.usefixtures("float64")  # every test here in float64


class Setup(SimpleNamespace):
    """Teacher θ(1) and student (θ(1) perturbed) in both implementations, and one batch."""


@pytest.fixture
def setup(ref) -> Setup:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    ref_teacher = ref.resnet.resnet32(HEADS)
    _randomise_bn(ref_teacher, g)
    ref_student = perturbed_copy(ref_teacher, g)
    ref_teacher.eval()
    ref_student.train()
    ref_gen = ref.generator.CIFAR_GEN()
    ref_gen.eval()
    s = Setup(ref_teacher=ref_teacher, ref_student=ref_student, ref_gen=ref_gen,
              student_state=copy.deepcopy(ref_student.state_dict()),  # before any reference step
              x=torch.randn(N, 3, 32, 32, generator=g), y1=torch.randint(0, PAST, (N,), generator=g),
              y2=torch.randint(PAST, SEEN, (N,), generator=g))
    with torch.no_grad():
        s.x_syn = ref_gen(torch.randn(N, 1000, generator=g))
        s.t_logits_syn = ref_teacher(s.x_syn)[:, :PAST]
        s.t_feats_syn = ref_teacher(s.x_syn, pen=True)
        s.t_logits_real = ref_teacher(s.x)[:, :PAST]
    s.y_syn = s.t_logits_syn.argmax(1)
    return s


def _ref_learner(ref, cls, setup: Setup, seen: int, past: int, lr: float = 0.0, **over):
    cfg = learner_config(HEADS, N, [list(range(PAST)), list(range(PAST, SEEN))], lr=lr, **over)
    L = cls(cfg)
    L.model = setup.ref_student
    L.init_optimizer()  # lr 0 (the default): the step leaves the weights, the gradients stay in .grad
    L.valid_out_dim, L.last_valid_out_dim = seen, past
    L.data_weighting(SimpleNamespace(dw=False))
    if past:
        L.previous_linear = copy.deepcopy(setup.ref_teacher.last)
        L.inversion_replay = True
    return L


def _ref_datafree_teacher(ref, setup: Setup, cfg: dict):
    return reference_teacher(ref, setup.ref_teacher, setup.ref_gen, PAST, cfg)


def _our_step(method: str, setup: Setup, cfg: config_mod.Config, task: int) -> tuple[float, dict, IncrementalClassifier]:
    """Our learner's loss and gradients on the same weights and batch."""
    past, seen = (0, PAST) if task == 1 else (PAST, SEEN)
    student = _ours(setup.student_state, seen).train()
    learner = learners.make_learner(method, cfg)
    if task == 1:
        b = StepBatch(x_real=setup.x.clone(), y_real=setup.y1, past=0, seen=seen)
    else:
        teacher = _ours(setup.ref_teacher, past).eval()
        b = StepBatch(x_real=setup.x.clone(), y_real=setup.y2, past=past, seen=seen, teacher=teacher)
        if (learner.spec.replay == "inverted"):
            b.x_syn, b.y_syn = setup.x_syn.clone(), setup.y_syn
            b.teacher_logits_syn, b.teacher_feats_syn = setup.t_logits_syn, setup.t_feats_syn
    learner.prepare(student, replay=task > 1 and (learner.spec.replay == "inverted"))
    loss = learner.loss(student, b)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, student


# ---------------------------------------------------------------------------------------------
# Forward passes


def test_resnet32_forward_and_features_equal(ref, setup):
    ours = _ours(setup.ref_teacher, HEADS).eval()
    with torch.no_grad():
        logits, feats = ours.forward_with_features(setup.x)
        assert torch.allclose(logits, setup.ref_teacher(setup.x), rtol=1e-10, atol=1e-12)
        assert torch.allclose(feats, setup.ref_teacher(setup.x, pen=True), rtol=1e-10, atol=1e-12)
    # Same architecture, parameter for parameter (option-A shortcuts: no extra conv/BN).
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in setup.ref_teacher.parameters())
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in ours.modules())
    assert n_bn == sum(isinstance(m, torch.nn.BatchNorm2d) for m in setup.ref_teacher.modules()) == 31


def test_generator_forward_equal(ref, setup):
    ours = Generator(1000, 32)
    ours.load_state_dict(generator_state(setup.ref_gen.state_dict()))
    z = torch.randn(N, 1000)
    for mode in (False, True):
        ours.train(mode)
        setup.ref_gen.train(mode)
        with torch.no_grad():
            assert torch.allclose(ours(z), setup.ref_gen(z), rtol=1e-10, atol=1e-12)
    eps = [m.eps for m in ours.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert eps == [m.eps for m in setup.ref_gen.modules() if isinstance(m, torch.nn.BatchNorm2d)] == [1e-5, 0.8, 0.8, 1e-5]


def test_reference_classifier_has_the_references_logits(setup, tmp_path):
    """A `class.pth` as the reference saves it becomes our classifier with the same logits over the
    seen classes and the reference's head rows."""
    torch.save(setup.ref_teacher.state_dict(), tmp_path / "class.pth")
    ours = reference_classifier(resnet32_state(torch.load(tmp_path / "class.pth")), SEEN).eval()
    assert ours.head.weight.shape[0] == HEADS
    with torch.no_grad():
        assert torch.allclose(ours(setup.x)[:, :SEEN], setup.ref_teacher(setup.x)[:, :SEEN], rtol=1e-6, atol=1e-6)


def test_init_matches_reference_distribution(ref):
    """kaiming_normal_ (fan_in) on conv and linear: same weight std per layer as the reference's."""
    torch.manual_seed(0)
    ours = IncrementalClassifier("resnet32", 32, 10, head_size=100)
    theirs = ref.resnet.resnet32(100)
    ref_state = resnet32_state(theirs.state_dict())
    for k, w in ours.state_dict().items():
        if k.endswith("weight") and w.dim() > 1:
            expected = float(np.sqrt(2.0 / w[0].numel()))
            assert float(w.std()) == pytest.approx(expected, rel=0.25), k
            assert float(ref_state[k].std()) == pytest.approx(expected, rel=0.25), k


# ---------------------------------------------------------------------------------------------
# Update steps: loss value and every parameter's gradient


def test_task1_ce_step_equals_reference_base(ref, setup):
    L = _ref_learner(ref, ref.default.NormalNN, setup, PAST, 0)
    loss, _ = L.update_model(setup.x.clone(), setup.y1)
    _assert_same(_our_step("base", setup, _cfg(), 1), loss, L.model)


@pytest.mark.parametrize("method, ref_module, ref_cls", [("base", "default", "NormalNN"),
                                                         ("abd", "datafree", "AlwaysBeDreaming"),
                                                         ("lwf_mc", "kd", "LWF_MC")])  # its BCE task 1
def test_task1_sgd_trajectory_follows_reference(ref, setup, method, ref_module, ref_cls):
    """Eight steps at lr 0.1 with momentum and weight decay through our optimiser and step function
    (`make_optimizer`, `train_step`: fused SGD) beside the reference's `update_model`: the one-step tests
    run at lr 0, so only this one sees the update rule, the momentum buffer and BN statistics over steps."""
    g = torch.Generator().manual_seed(7)
    batches = [(torch.randn(N, 3, 32, 32, generator=g), torch.randint(0, PAST, (N,), generator=g)) for _ in range(8)]
    L = _ref_learner(ref, getattr(getattr(ref, ref_module), ref_cls), setup, PAST, 0, lr=0.1)
    cfg = _cfg(train__lr=0.1, train__momentum=0.9, train__weight_decay=2e-4)
    student = _ours(setup.student_state, PAST).train()
    learner = learners.make_learner(method, cfg)
    learner.prepare(student, replay=False)
    opt, _ = training.make_optimizer(student, cfg, 10, torch.device("cpu"))
    for i, (x, y) in enumerate(batches):
        ref_loss, *_ = L.update_model(x.clone(), y)
        loss = training.train_step(student, learner, StepBatch(x_real=x.clone(), y_real=y, past=0, seen=PAST),
                                   opt, torch.device("cpu"), amp=False)
        assert float(loss) == pytest.approx(float(ref_loss), rel=1e-6), f"step {i}"
    theirs = resnet32_state(L.model.state_dict())
    for k, v in student.state_dict().items():
        if v.is_floating_point():
            # ~1e-8 apart after the steps here; a missing weight decay alone would be 8 * 0.1 * 2e-4 = 1.6e-4
            torch.testing.assert_close(v, theirs[k], rtol=1e-6, atol=1e-6, msg=k)


def test_task1_abd_step_uses_every_head_row(ref, setup):
    """The reference's ABD trains task 1 with CE over all out_dim outputs, not the seen ones."""
    L = _ref_learner(ref, ref.datafree.AlwaysBeDreaming, setup, PAST, 0)
    loss, *_ = L.update_model(setup.x.clone(), setup.y1)
    ours = _our_step("abd", setup, _cfg(), 1)
    _assert_same(ours, loss, L.model)
    assert float(ours[1]["head.weight"][SEEN:].abs().sum()) > 0  # rows of later classes get gradient


def test_base_task2_step(ref, setup):
    L = _ref_learner(ref, ref.default.NormalNN, setup, SEEN, PAST)
    loss, _ = L.update_model(setup.x.clone(), setup.y2)
    _assert_same(_our_step("base", setup, _cfg(), 2), loss, L.model)


def test_lwf_step(ref, setup):
    L = _ref_learner(ref, ref.kd.LWF, setup, SEEN, PAST, mu=1.0)
    loss, *_ = L.update_model(setup.x.clone(), setup.y2, setup.t_logits_real)
    _assert_same(_our_step("lwf", setup, _cfg(), 2), loss, L.model)


@pytest.mark.parametrize("bce", ["reference", "stable"])  # equal away from saturation (float64 here)
def test_lwf_mc_step(ref, setup, bce):
    L = _ref_learner(ref, ref.kd.LWF_MC, setup, SEEN, PAST)
    loss, *_ = L.update_model(setup.x.clone(), setup.y2, setup.t_logits_real)
    _assert_same(_our_step("lwf_mc", setup, _cfg(train__lwf_mc_bce=bce), 2), loss, L.model)


@pytest.mark.parametrize("bce", ["reference", "stable"])
def test_lwf_mc_task1_step(ref, setup, bce):
    L = _ref_learner(ref, ref.kd.LWF_MC, setup, PAST, 0)
    loss, *_ = L.update_model(setup.x.clone(), setup.y1)
    _assert_same(_our_step("lwf_mc", setup, _cfg(train__lwf_mc_bce=bce), 1), loss, L.model)


def test_lwf_mc_saturated_outputs_lose_their_gradient_as_in_the_reference(ref):
    """In float32 a logit of 20 rounds the sigmoid to 1: the reference's BCELoss on sigmoid outputs
    gives that unit no gradient; `train.lwf_mc_bce: reference` reproduces it, `stable` does not."""
    x = torch.tensor([[20.0, -30.0, 0.0, 3.0]])
    y = torch.tensor([1])
    theirs = x.clone().requires_grad_(True)
    torch.nn.BCELoss(reduction="sum")(torch.sigmoid(theirs), ref.kd.get_one_hot(y, 4)).backward()  # its LWF_MC loss
    for saturating in (True, False):
        ours = x.clone().requires_grad_(True)
        losses.lwf_mc_loss(ours, y, past=0, teacher_logits=None, saturating=saturating).backward()
        assert torch.allclose(ours.grad, theirs.grad, rtol=1e-6) is saturating


def _replay_inputs(setup: Setup):
    x_com = torch.cat([setup.x, setup.x_syn])
    y_com = torch.cat([setup.y2, setup.y_syn])
    y_hat_com = torch.cat([setup.t_logits_real, setup.t_logits_syn])
    return x_com, y_com, y_hat_com, np.arange(N, 2 * N)


def test_lwf_synthetic_step(ref, setup):
    L = _ref_learner(ref, ref.datafree.DeepInversionLWF, setup, SEEN, PAST, mu=0.1)
    x_com, y_com, y_hat, kd_index = _replay_inputs(setup)
    loss, *_ = L.update_model(x_com, y_com, y_hat, kd_index=kd_index)
    _assert_same(_our_step("lwf_syn", setup, _cfg(), 2), loss, L.model)


def test_deepinversion_step(ref, setup):
    L = _ref_learner(ref, ref.datafree.DeepInversionGenBN, setup, SEEN, PAST, mu=1.0)
    x_com, y_com, y_hat, kd_index = _replay_inputs(setup)
    loss, *_ = L.update_model(x_com, y_com, y_hat, kd_index=kd_index)
    _assert_same(_our_step("deepinversion", setup, _cfg(), 2), loss, L.model)


def test_abd_step_all_terms_and_bn_statistics(ref, setup):
    L = _ref_learner(ref, ref.datafree.AlwaysBeDreaming, setup, SEEN, PAST, mu=0.1)
    L.previous_teacher = _ref_datafree_teacher(ref, setup, L.config)
    x_com, y_com, y_hat, kd_index = _replay_inputs(setup)
    loss, *_ = L.update_model(x_com, y_com, y_hat, kd_index=kd_index)
    ours = _our_step("abd", setup, _cfg(), 2)
    _assert_same(ours, loss, L.model)
    # Running BN statistics: the reference's second train-mode forward == our momentum 0.19.
    ref_buffers = resnet32_state(dict(L.model.named_buffers()))
    for k, v in ours[2].named_buffers():
        if k.endswith(("running_mean", "running_var")):
            assert torch.allclose(v, ref_buffers[k], rtol=1e-9, atol=1e-12), k


@pytest.mark.parametrize("ablation", ["task_balancing", "local_ce", "kd_real", "kd_synthetic", "ft_ce"])
def test_abd_ablations_change_the_step(ref, setup, ablation):
    """Each Table 3 switch moves the loss away from the reference's full method."""
    L = _ref_learner(ref, ref.datafree.AlwaysBeDreaming, setup, SEEN, PAST, mu=0.1)
    L.previous_teacher = _ref_datafree_teacher(ref, setup, L.config)
    loss, *_ = L.update_model(*_replay_inputs(setup)[:3], kd_index=_replay_inputs(setup)[3])
    ablated = _our_step("abd", setup, _cfg(**{f"abd__{ablation}": False}), 2)[0]
    assert abs(ablated - float(loss)) > 1e-8  # float64: the full method reproduces it to ~1e-12


# ---------------------------------------------------------------------------------------------
# Generator inversion (Eq. 1-7)


def test_inversion_loss_and_generator_gradients(ref, setup, monkeypatch):
    cfg = learner_config(HEADS, N, [list(range(PAST))])
    ref_gen = copy.deepcopy(setup.ref_gen)
    teacher = reference_teacher(ref, copy.deepcopy(setup.ref_teacher), ref_gen, PAST, cfg)
    seen_losses = recording_backward(monkeypatch)
    torch.manual_seed(7)
    teacher.get_images(bs=N, epochs=1)
    monkeypatch.undo()
    ref_grads = generator_state({k: p.grad for k, p in ref_gen.named_parameters()})

    ours_gen = Generator(1000, 32)
    ours_gen.load_state_dict(generator_state(setup.ref_gen.state_dict()))
    ours_gen.train()
    ours_teacher = _ours(setup.ref_teacher, PAST).eval()
    for p in ours_teacher.parameters():
        p.requires_grad_(False)
    syn = _cfg().synthesis
    hooks = BNStatisticsHooks(ours_teacher)
    try:
        torch.manual_seed(7)
        terms = inversion_loss(ours_gen, ours_teacher, hooks, PAST, syn, prior_kernel(syn).double())
    finally:
        hooks.remove()
    terms["total"].backward()
    assert len(seen_losses) == 1
    assert float(terms["total"]) == pytest.approx(seen_losses[0], rel=RTOL)
    _assert_same_grads({k: p.grad for k, p in ours_gen.named_parameters()}, ref_grads)
    assert all(float(terms[t]) != 0 for t in ("content", "diversity", "stat", "prior"))


def test_prior_kernels(ref):
    """Default blur = the reference's Gaussiansmoothing(3, 5, 1); the paper's σ = 1 is the switch."""
    import warnings

    warnings.filterwarnings("ignore", message="torch.meshgrid")
    theirs = ref.helper.Gaussiansmoothing(3, 5, 1).weight[0, 0].double()
    assert torch.allclose(losses.gaussian_kernel(5, 1.0, "reference").double(), theirs, atol=1e-7)
    assert not torch.allclose(losses.gaussian_kernel(5, 1.0, "paper").double(), theirs, atol=1e-3)
    assert _cfg().synthesis.prior_kernel == "reference"


# ---------------------------------------------------------------------------------------------
# Class order, task split, augmentation


def _ref_trainer(ref, seed: int, tmp_path, max_task: int = 2):
    args = SimpleNamespace(
        log_dir=str(tmp_path), batch_size=128, workers=0, learner_type="default", learner_name="NormalNN",
        load_model_dir=None, dataset="CIFAR100", rand_split=True, other_split_size=10, first_split_size=10,
        max_task=max_task, train_aug=True, dataroot=str(data.data_root(None)), validation=False, oracle_flag=False,
        lr=0.1, momentum=0.9, weight_decay=2e-4, schedule=[1], schedule_type="decay", model_type="resnet",
        model_name="resnet32", gen_model_type="generator", gen_model_name="CIFAR_GEN", optimizer="SGD",
        gpuid=[-1], memory=0, temp=2.0, overwrite=1, beta=1, mu=1.0, DW=False, power_iters=0,
        deep_inv_params=[1e-3, 5e1, 1e-3, 1e3, 1])
    return ref.trainer.Trainer(args, seed, ["acc"], ["global"])


@pytest.fixture(scope="module")
def cifar(data_root):
    return data.load_dataset("cifar100", str(data_root), False, 32)


def test_class_order_and_split_equal_reference(ref, cifar, tmp_path, capsys):
    for seed in range(5):
        trainer = _ref_trainer(ref, seed, tmp_path / str(seed), max_task=-1)
        order = data.class_order(100, seed)
        blocks = data.task_class_blocks([10] * 10)
        assert trainer.tasks == [[order[p] for p in b] for b in blocks], seed
        assert trainer.tasks_logits == blocks
        if seed == 0:  # the images and labels of two tasks, as sets
            train, _ = cifar
            for t in range(2):
                ours = data.select_task(train, order, blocks[t], None)
                ref_x, ref_y = trainer.train_dataset.archive[t]
                ref_labels = np.array([trainer.train_dataset.class_mapping[int(v)] for v in ref_y])
                assert len(ref_labels) == len(ours.y) == 5000
                assert ref_x.shape[1:] == (32, 32, 3)  # NHWC there, NCHW here
                key_ours = sorted(zip(ours.y.tolist(), [bytes(r) for r in ours.x.transpose(0, 2, 3, 1).reshape(5000, -1)]))
                key_ref = sorted(zip(ref_labels.tolist(), [bytes(r) for r in ref_x.reshape(5000, -1)]))
                assert key_ours == key_ref
    capsys.readouterr()


def test_augmentation_transforms_and_parameters_equal(ref):
    """Same transforms, same order, same parameters as the reference's CIFAR training transform."""
    import torchvision.transforms as T

    steps = ref.transforms.get_transform("CIFAR100", "train", aug=True).transforms
    assert [type(s) for s in steps] == [T.ColorJitter, T.RandomHorizontalFlip, T.RandomCrop, T.ToTensor, T.Normalize]
    jitter, flip, crop, _, norm = steps
    assert jitter.brightness == pytest.approx((1 - DeviceAugment.BRIGHTNESS, 1 + DeviceAugment.BRIGHTNESS))
    assert jitter.contrast == pytest.approx((1 - DeviceAugment.CONTRAST, 1 + DeviceAugment.CONTRAST))
    assert jitter.saturation is None and jitter.hue is None
    assert flip.p == 0.5
    aug = DeviceAugment("cifar100", 32, torch.device("cpu"), color_jitter=True)
    assert crop.size == (32, 32) and crop.padding == aug.pad == 4 and crop.fill == 0
    mean, std = data.CHANNEL_STATS["cifar100"]
    assert norm.mean == pytest.approx(mean, abs=1e-4) and norm.std == pytest.approx(std, abs=1e-4)
    assert _cfg().data.color_jitter  # on by default


def test_augmentation_distribution_matches_torchvision(ref, cifar):
    """Over many draws of real images, our batched jitter+flip+crop gives the same distribution of
    per-image brightness and contrast as the reference's PIL transform (not bitwise)."""
    from PIL import Image

    train, _ = cifar
    imgs = train.x[:40]
    draws = 50
    transform = ref.transforms.get_transform("CIFAR100", "train", aug=True)
    torch.manual_seed(0)
    theirs = torch.stack([transform(Image.fromarray(img.transpose(1, 2, 0))) for img in imgs for _ in range(draws)])
    aug = DeviceAugment("cifar100", 32, torch.device("cpu"), color_jitter=True)
    gen = torch.Generator().manual_seed(0)
    ours = aug(torch.from_numpy(np.repeat(imgs, draws, axis=0)), gen).to(theirs.dtype)
    plain = DeviceAugment("cifar100", 32, torch.device("cpu"))(torch.from_numpy(np.repeat(imgs, draws, axis=0)), gen)

    def stats(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        centre = x[:, :, 4:28, 4:28]  # away from the zero padding
        return centre.mean((1, 2, 3)).numpy(), centre.std((1, 2, 3)).numpy()

    qs = [0.1, 0.25, 0.5, 0.75, 0.9]
    for a, b, c in zip(stats(ours), stats(theirs), stats(plain.to(theirs.dtype))):
        assert np.abs(np.quantile(a, qs) - np.quantile(b, qs)).max() < 0.1 * float(b.std())
        # Spread over the draws of one image (brightness / contrast factors), averaged over images.
        within = [float(v.reshape(len(imgs), draws).std(1).mean()) for v in (a, b, c)]
        assert within[0] == pytest.approx(within[1], rel=0.15)
        assert within[2] < 0.5 * within[1]  # without jitter it is far smaller: the check can tell


def test_reference_start_puts_the_references_weights_under_our_metadata(ref, tmp_path):
    """benchmarks/reference_start.py: the reference's θ(1) (head cut to our rows) and generator, our meta."""
    torch.manual_seed(0)
    theirs, their_gen = ref.resnet.resnet32(100), ref.generator.CIFAR_GEN()
    ref_dir = tmp_path / "reference" / "task-1"
    ref_dir.mkdir(parents=True)
    torch.save(theirs.state_dict(), ref_dir / "class.pth")
    torch.save(their_gen.state_dict(), ref_dir / "generator.pth")
    src = tmp_path / "ours"
    ours, our_gen = IncrementalClassifier("resnet32", 32, 10, 20), Generator()
    meta = {"config_hash": "abc", "stage": "train"}
    atomic_io.save_torch(src / "models/abd/task_1.pt", {"state_dict": ours.state_dict(), "num_classes": 10, "meta": meta})
    atomic_io.save_torch(src / "generators/abd/task_2.pt", {"state_dict": our_gen.state_dict(), "meta": meta})
    rng = np.random.default_rng(0)
    atomic_io.save_npz(src / "split/task_2.npz", train_x=rng.integers(0, 256, (130, 3, 32, 32), dtype=np.uint8))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_start.py"
    run = [sys.executable, str(script), str(src), str(tmp_path / "start"), "--reference", str(ref_dir)]
    done = subprocess.run([*run, "--probe"], capture_output=True, text=True, check=True)
    assert "first-step feature-KD" in done.stdout
    model, gen = atomic_io.load_torch(tmp_path / "start/models/abd/task_1.pt"), atomic_io.load_torch(
        tmp_path / "start/generators/abd/task_2.pt")
    assert model["meta"] == meta and model["num_classes"] == 10 and gen["meta"] == meta
    assert torch.equal(model["state_dict"]["head.weight"], theirs.last.weight[:20])
    assert torch.equal(model["state_dict"]["features.stem.0.weight"], theirs.conv1.weight)
    mapped = Generator()
    mapped.load_state_dict(gen["state_dict"])
    x = torch.randn(4, 1000)
    with torch.no_grad():
        assert torch.allclose(mapped.eval()(x), their_gen.eval()(x), atol=1e-6)
    again = subprocess.run(run, capture_output=True, text=True)  # never overwrites what exists
    assert again.returncode == 2 and "exists" in again.stderr
    # The shared task-1 model of Base, LwF and DeepInversion: θ(1) only, no generator needed or written
    # (the reference's Base saves none).
    (ref_dir / "generator.pth").unlink()
    atomic_io.save_torch(src / "models/ce/task_1.pt", {"state_dict": ours.state_dict(), "num_classes": 10, "meta": meta})
    subprocess.run([sys.executable, str(script), str(src), str(tmp_path / "ce"), "--reference", str(ref_dir),
                    "--lineage", "ce", "--theta-only"], capture_output=True, text=True, check=True)
    ce = atomic_io.load_torch(tmp_path / "ce/models/ce/task_1.pt")
    assert ce["meta"] == meta and torch.equal(ce["state_dict"]["features.stem.0.weight"], theirs.conv1.weight)
    assert not (tmp_path / "ce/generators").exists()
