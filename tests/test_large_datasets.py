"""Tiny-ImageNet and ImageNet-50 as the authors run them, on small folders the tests write in the
datasets' real on-disk layouts (the real ones are not on this machine): the readers, their one-line
errors, a tiny run through every stage of each (top-5 accuracy for ImageNet-50), and the reference's
loader, class order, networks and generators beside ours."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dfcil_core.foundations import config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.lab.reference_weights import generator_state, resnet18_authors_state, resnet32_state
from dfcil_core.method import datasets as data
from dfcil_core.method.models import Generator, IncrementalClassifier
from dfcil_core.run import sequence
from tests.dataset_layouts import IMNET_WNIDS, write_imagenet, write_tiny_imagenet
from tests.step_equivalence import perturbed_copy, recording_backward, reference_teacher


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_tiny_imagenet(tmp_path_factory.mktemp("tinyimnet"))


@pytest.fixture(scope="module")
def imnet_root(tmp_path_factory):
    return write_imagenet(tmp_path_factory.mktemp("imnet"))


# --------------------------------------------------------------------------------------------
# The readers


def test_tiny_imagenet_reader_sorted_wnids_and_val_labels(tiny_root):
    train, test = data.load_dataset("tinyimagenet", str(tiny_root), False, 64)
    assert train.x.shape == (36, 3, 64, 64) and train.x.dtype == np.uint8
    assert train.y.tolist() == [c for c in range(6) for _ in range(6)]  # sorted wnids, files by name
    # val: in val_annotations.txt's order (written class 5 first)
    assert test.y.tolist() == [c for c in reversed(range(6)) for _ in range(3)]
    assert train.classes == [f"class {i}" for i in range(6)]  # words.txt's first name per wnid
    only, _ = data.load_dataset("tinyimagenet", str(tiny_root), False, 64, only={1, 4})
    assert sorted(set(only.y.tolist())) == [1, 4] and len(only.y) == 12
    assert data.class_count("tinyimagenet", str(tiny_root)) == 6


def test_imagenet_reader_resizes_and_crops_to_a_256_square(imnet_root):
    train, test = data.load_dataset("imagenet50", str(imnet_root), False, 224, only={0, 3})
    assert train.x.shape == (10, 3, 256, 256) and test.x.shape == (4, 3, 256, 256)
    assert train.y.tolist() == [0] * 5 + [3] * 5 and train.classes == IMNET_WNIDS
    # the central crop of the shorter-side resize, as torchvision's Resize(256) + CenterCrop(256)
    from PIL import Image
    from torchvision import transforms

    path = sorted((imnet_root / "ilsvrc" / "train" / IMNET_WNIDS[0]).glob("*.JPEG"))[0]
    with Image.open(path) as img:
        theirs = np.asarray(transforms.CenterCrop(256)(transforms.Resize(256)(img.convert("RGB"))))
    assert np.abs(theirs.transpose(2, 0, 1).astype(int) - train.x[0].astype(int)).max() <= 1


@pytest.mark.parametrize("make,message", [
    (lambda r: None, r"tinyimagenet: .*tiny-imagenet/tiny-imagenet-200/train not found"),
    (lambda r: (r / "tiny-imagenet" / "tiny-imagenet-200" / "train" / "n0").mkdir(parents=True),
     r"tinyimagenet: .*val/val_annotations.txt not found: the val split has no labels"),
])
def test_tiny_imagenet_missing_parts_are_one_line(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DfcilError, match=message):
        data.load_dataset("tinyimagenet", str(tmp_path), False, 64)


def test_a_val_wnid_not_in_train_is_named(tmp_path):
    root = write_tiny_imagenet(tmp_path, per_class=1, val_per_class=1)
    ann = root / "tiny-imagenet" / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_x.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(DfcilError, match=r"line 7: wnid n99999999 is not a training class"):
        data.load_dataset("tinyimagenet", str(root), False, 64)
    stray = write_imagenet(tmp_path / "imnet", per_class=1, val_per_class=1)
    (stray / "ilsvrc" / "val" / "n00000001").mkdir()
    with pytest.raises(DfcilError, match=r"imagenet50: .*val/n00000001 is a class the training folder does not have"):
        data.load_dataset("imagenet50", str(stray), False, 224)



def test_tiny_imagenet_images_of_another_size_and_unreadable_images_are_named(tmp_path):
    from PIL import Image

    root = write_tiny_imagenet(tmp_path, per_class=2, val_per_class=1)
    train = root / "tiny-imagenet" / "tiny-imagenet-200" / "train"
    odd = sorted(train.glob("*/images/*.JPEG"))[-1]
    Image.new("RGB", (32, 48)).save(odd, "JPEG")
    with pytest.raises(DfcilError, match=r"images of different sizes \[\(3, 64, 64\), \(3, 48, 32\)\]"):
        data.load_dataset("tinyimagenet", str(root), False, 64)
    odd.write_bytes(b"not a jpeg")
    with pytest.raises(DfcilError, match=f"cannot read image {odd}"):
        data.load_dataset("tinyimagenet", str(root), False, 64)

def test_dataset_settings_are_checked():
    with pytest.raises(DfcilError, match="data.image_size: tinyimagenet images are 64 px, not 32"):
        config.load(overrides=["data.dataset=tinyimagenet"])
    cfg = config.load(preset="paper-imagenet50-5")
    assert (cfg.total_classes, cfg.head_rows, cfg.top_k) == (50, 1000, 5)
    assert (cfg.model.arch, cfg.train.batch_size, cfg.synthesis.steps) == ("resnet18_authors", 256, 50000)
    tiny = config.load(preset="paper-tinyimagenet-20")
    assert (tiny.total_classes, tiny.data.n_tasks, tiny.task_sizes()[0], tiny.top_k) == (200, 20, 10, 1)


# --------------------------------------------------------------------------------------------
# Every stage on each layout


def _small(dataset: str, size: int, root: Path, *extra: str) -> config.Config:
    return config.load(preset="tiny", overrides=[
        f"data.dataset={dataset}", f"data.image_size={size}", f"data.root={root}", "data.num_classes=4",
        "data.n_tasks=2", "train.batch_size=4", "synthesis.batch_size=4", "synthesis.replay_batch_size=4",
        "synthesis.steps=2", "train.epochs=1", "train.milestones=[]", "train.lr=0.01", "methods=[upper_bound,base,abd]",
        *extra])


def test_a_tiny_run_on_tiny_imagenet(tiny_root, tmp_path):
    doc = sequence.run(_small("tinyimagenet", 64, tiny_root), tmp_path)
    assert set(doc["methods"]) == {"upper_bound", "base", "abd"}
    runs = (tmp_path / "results" / "runs.csv").read_text().splitlines()
    assert all(",tinyimagenet,2," in r and ",1," in r for r in runs[1:])  # top-1
    meta = json.loads((tmp_path / "split" / "meta.json").read_text())
    assert meta["class_order"] == data.class_order(6, 0)[:4]  # the trial seed's shuffle of the 6 classes
    assert (tmp_path / "generators" / "abd" / "samples_task_2.png").is_file()  # the 64 px generator


@pytest.mark.slow
def test_a_tiny_run_on_imagenet50_reports_top5(imnet_root, tmp_path):
    cfg = _small("imagenet50", 224, imnet_root, "model.arch=resnet18_authors", "data.color_jitter=false")
    doc = sequence.run(cfg, tmp_path)
    assert set(doc["methods"]) == {"upper_bound", "base", "abd"}
    import pandas as pd

    runs = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert set(runs["top_k"]) == {5} and set(runs["dataset"]) == {"imagenet50"}
    # 2 classes per task: top-5 over the seen classes is every class, so every A entry is 100
    values = json.loads((tmp_path / "eval" / "base" / "accuracy_matrix.json").read_text())["values"]
    assert values[0][0] == 100.0 and values[1] == [100.0, 100.0]
    meta = json.loads((tmp_path / "split" / "meta.json").read_text())
    assert meta["class_order"] == data.class_order(6, 0, 1993)[:4]


# --------------------------------------------------------------------------------------------
# Beside the reference


def test_tiny_imagenet_images_and_labels_equal_the_references_loader(ref, tiny_root):
    """The reference's iTinyIMNET on the same folder: the same (label, image) pairs, train and test."""
    from PIL import Image

    for train in (True, False):
        ds = ref.loader.iTinyIMNET(str(tiny_root), train=train, tasks=[list(range(6))], download_flag=False)
        theirs = sorted((int(y), np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1).tobytes())
                        for p, y in zip(ds.data, ds.targets, strict=True))
        arrays = data.load_dataset("tinyimagenet", str(tiny_root), False, 64)[0 if train else 1]
        ours = sorted((int(y), x.tobytes()) for x, y in zip(arrays.x, arrays.y, strict=True))
        assert ours == theirs


def test_imagenet_files_per_class_equal_the_references_loader(ref, imnet_root):
    """The reference's iIMAGENET on the same folder: the same files under each wnid, train and val.
    Its class ids are the order in which glob meets the wnids (the filesystem's, for train and val
    independently); ours are the sorted wnids: a departure in docs/datasets.md."""
    n = len(IMNET_WNIDS)
    loaded = data.load_dataset("imagenet50", str(imnet_root), False, 224)
    for train, split, arrays in ((True, "train", loaded[0]), (False, "val", loaded[1])):
        ds = ref.loader.iIMAGENET(str(imnet_root), train=train, tasks=[list(range(n))], download_flag=False)
        theirs = sorted((Path(p).parent.name, Path(p).name) for p in ds.data)
        wnid_of = {int(y): Path(p).parent.name for p, y in zip(ds.data, ds.targets, strict=True)}
        assert sorted(wnid_of.values()) == IMNET_WNIDS  # one id per wnid, a permutation of ours
        ours = []
        for i, w in enumerate(IMNET_WNIDS):
            files = sorted((imnet_root / "ilsvrc" / split / w).glob("*"))
            ours += [(w, f.name) for f in files]
            assert int((arrays.y == i).sum()) == len(files)  # our class i holds exactly wnid w's files
        assert len(arrays.y) == len(ours) and sorted(ours) == theirs


def test_class_orders_equal_the_references_trainer(ref):
    """Tiny-ImageNet: random.seed(trial) shuffles the 200 ids (as CIFAR); ImageNet: numpy's seed-1993
    shuffle of the 1,000 ids for every trial (the reference's trainer, as prior work)."""
    import random

    for seed in range(3):
        order = list(range(200))
        random.seed(seed)
        random.shuffle(order)
        assert data.class_order(200, seed) == order
        imnet = list(range(1000))
        np.random.seed(1993)
        np.random.shuffle(imnet)
        assert data.class_order(1000, seed, 1993) == imnet


def test_resnet18_authors_is_the_references_resnet18(ref, float64):
    torch.manual_seed(0)
    theirs = ref.resnet.resnet18(1000).eval()
    ours = IncrementalClassifier("resnet18_authors", 224, 1000, 1000).eval()
    ours.load_state_dict(resnet18_authors_state(theirs.state_dict()))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), rtol=1e-10, atol=1e-12)
        assert torch.allclose(ours.forward_with_features(x)[1], theirs(x, pen=True), rtol=1e-10, atol=1e-12)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("size,factory,ups", [(64, "TINYIMNET_GEN", 3), (224, "IMNET_GEN", 5)])
def test_generators_for_64_and_224_px_equal_the_references(ref, float64, size, factory, ups):
    torch.manual_seed(1)
    theirs = getattr(ref.generator, factory)()
    ours = Generator(1000, size)
    ours.load_state_dict(generator_state(theirs.state_dict(), ups=ups))
    z = torch.randn(3, 1000)
    for mode in (True, False):
        theirs.train(mode)
        ours.train(mode)
        with torch.no_grad():
            assert torch.allclose(ours(z), theirs(z), rtol=1e-10, atol=1e-12), (factory, mode)


def test_abd_step_and_inversion_step_at_64_px_equal_the_references(ref, float64, monkeypatch):
    """The ABD update (every term) and the generator's inversion loss and gradients with the 64 px
    generator and ResNet-32 on 64 px images, against the reference's learner and teacher."""
    from tests import test_reference_equivalence as eq

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    ref_teacher = ref.resnet.resnet32(eq.HEADS)
    eq._randomise_bn(ref_teacher, g)
    ref_student = perturbed_copy(ref_teacher, g)
    ref_teacher.eval()
    ref_student.train()
    ref_gen = ref.generator.TINYIMNET_GEN().eval()
    n, past, seen = eq.N, eq.PAST, eq.SEEN
    setup = eq.Setup(ref_teacher=ref_teacher, ref_student=ref_student, ref_gen=ref_gen,
                     student_state=copy.deepcopy(ref_student.state_dict()), x=torch.randn(n, 3, 64, 64, generator=g),
                     y1=torch.randint(0, past, (n,), generator=g), y2=torch.randint(past, seen, (n,), generator=g))
    with torch.no_grad():
        setup.x_syn = ref_gen(torch.randn(n, 1000, generator=g))
        setup.t_logits_syn = ref_teacher(setup.x_syn)[:, :past]
        setup.t_feats_syn = ref_teacher(setup.x_syn, pen=True)
        setup.t_logits_real = ref_teacher(setup.x)[:, :past]
    setup.y_syn = setup.t_logits_syn.argmax(1)
    L = eq._ref_learner(ref, ref.datafree.AlwaysBeDreaming, setup, seen, past, mu=0.1)
    L.previous_teacher = reference_teacher(ref, setup.ref_teacher, setup.ref_gen, past, L.config, size=64)
    x_com, y_com, y_hat, kd_index = eq._replay_inputs(setup)
    loss, *_ = L.update_model(x_com, y_com, y_hat, kd_index=kd_index)
    cfg = config.from_dict({"data": {"num_classes": eq.HEADS, "n_tasks": 2, "dataset": "tinyimagenet",
                                     "image_size": 64, "root": "unused"},
                            "train": {"batch_size": n}, "synthesis": {"batch_size": n, "replay_batch_size": n}})
    eq._assert_same(eq._our_step("abd", setup, cfg, 2), loss, L.model)

    # the inversion: one loss and its gradients through the 64 px generator
    from dfcil_core.method.synthesis import BNStatisticsHooks, inversion_loss, prior_kernel

    # A random teacher on 64 px images gives logits ~600 apart: a past class's batch-mean softmax
    # underflows to 0 and the reference's diversity term is 0 * log 0 = NaN (ours clamps the log,
    # departure 9i). A head scaled by 1/100 keeps every term finite so the two can be compared.
    inv_teacher = copy.deepcopy(ref_teacher)
    with torch.no_grad():
        inv_teacher.last.weight.mul_(0.01)
        inv_teacher.last.bias.mul_(0.01)
    lcfg = eq.learner_config(eq.HEADS, n, [list(range(past))])
    gen_ref = copy.deepcopy(ref_gen)
    teacher = reference_teacher(ref, copy.deepcopy(inv_teacher), gen_ref, past, lcfg, size=64)
    seen_losses = recording_backward(monkeypatch)
    torch.manual_seed(7)
    teacher.get_images(bs=n, epochs=1)
    monkeypatch.undo()
    ours_gen = Generator(1000, 64)
    ours_gen.load_state_dict(generator_state(ref_gen.state_dict(), ups=3))
    ours_gen.train()
    ours_teacher = eq._ours(inv_teacher, past).eval()
    for p in ours_teacher.parameters():
        p.requires_grad_(False)
    hooks = BNStatisticsHooks(ours_teacher)
    try:
        torch.manual_seed(7)
        terms = inversion_loss(ours_gen, ours_teacher, hooks, past, cfg.synthesis, prior_kernel(cfg.synthesis).double())
    finally:
        hooks.remove()
    terms["total"].backward()
    assert len(seen_losses) == 1 and math.isfinite(seen_losses[0])
    assert float(terms["total"].detach()) == pytest.approx(seen_losses[0], rel=eq.RTOL)
    eq._assert_same_grads({k: p.grad for k, p in ours_gen.named_parameters()},
                          generator_state({k: p.grad for k, p in gen_ref.named_parameters()}, ups=3))


def test_resnet32_at_64_px_equals_the_reference(ref, float64):
    torch.manual_seed(2)
    theirs = ref.resnet.resnet32(200).eval()
    ours = IncrementalClassifier("resnet32", 64, 200, 200).eval()
    ours.load_state_dict(resnet32_state(theirs.state_dict()))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), rtol=1e-10, atol=1e-12)
