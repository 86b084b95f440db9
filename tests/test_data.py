"""Class order protocol, task splits and on-device augmentation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dfcil_core.foundations import config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.method import datasets as data
from dfcil_core.method.augment import DeviceAugment


@pytest.mark.parametrize("seed,head", [
    (0, [23, 8, 11, 7, 48, 13, 1, 91, 94, 54]),
    (1, [53, 37, 65, 51, 4, 20, 38, 9, 10, 81]),
    (2, [0, 76, 61, 63, 1, 71, 2, 6, 16, 19]),
])
def test_class_order_is_python_random_protocol(seed, head):
    expected = list(range(100))
    random.seed(seed)
    random.shuffle(expected)
    order = data.class_order(100, seed)
    assert order == expected
    assert order[:10] == head  # pinned: the authors' splits for trials 0-2


@pytest.mark.parametrize("n_tasks,first,sizes", [(5, None, [20] * 5), (10, None, [10] * 10),
                                                 (20, None, [5] * 20), (6, 50, [50] + [10] * 5)])
def test_task_sizes_and_blocks_cover_every_class_once(n_tasks, first, sizes):
    cfg = config.from_dict({"data": {"n_tasks": n_tasks, "first_task_classes": first}})
    assert cfg.task_sizes() == sizes
    blocks = data.task_class_blocks(cfg.task_sizes())
    flat = [c for b in blocks for c in b]
    assert sorted(flat) == list(range(100)) and len(flat) == 100


def test_tasks_must_divide_classes():
    with pytest.raises(DfcilError, match="data.n_tasks: 7 tasks do not divide 100 classes"):
        config.from_dict({"data": {"n_tasks": 7}})
    with pytest.raises(DfcilError, match="do not divide"):
        config.from_dict({"data": {"n_tasks": 4, "first_task_classes": 50}})


def test_select_task_relabels_to_order_positions():
    arrays = data.ImageArrays(x=np.arange(6 * 3 * 2 * 2, dtype=np.uint8).reshape(6, 3, 2, 2),
                              y=np.array([0, 1, 2, 0, 1, 2]))
    order = [2, 0, 1]  # position 0 is class 2, position 1 is class 0
    sel = data.select_task(arrays, order, [0, 1], per_class=None)
    assert sel.y.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(sel.x[0], arrays.x[2])
    np.testing.assert_array_equal(sel.x[2], arrays.x[0])
    assert data.select_task(arrays, order, [0], per_class=1).y.tolist() == [0]


def test_real_cifar100_split(data_root):
    train, test = data.load_dataset("cifar100", None, False, 32)
    assert train.x.shape == (50000, 3, 32, 32) and train.x.dtype == np.uint8
    assert test.x.shape == (10000, 3, 32, 32)
    order = data.class_order(100, 0)
    blocks = data.task_class_blocks([10] * 10)
    t2 = data.select_task(train, order, blocks[1], None)
    assert t2.x.shape[0] == 5000 and set(t2.y.tolist()) == set(range(10, 20))


def test_cifar100_reader_gives_torchvision_arrays_exactly(data_root):
    """Our md5-checked pickle reader (no torchvision import at split time) against torchvision's CIFAR100."""
    from torchvision import datasets

    ours = data.load_dataset("cifar100", None, False, 32)
    for train, arrays in zip((True, False), ours, strict=True):
        ref = datasets.CIFAR100(str(data_root), train=train, download=False)
        assert np.array_equal(arrays.x, ref.data.transpose(0, 3, 1, 2)) and arrays.x.flags.c_contiguous
        assert arrays.x.dtype == np.uint8 and arrays.y.dtype == np.int64
        assert np.array_equal(arrays.y, np.asarray(ref.targets)) and arrays.classes == list(ref.classes)


def test_missing_data_root_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ROOT_ENV, str(tmp_path))
    with pytest.raises(DfcilError, match=r"\$DFCIL_DATA_ROOT"):
        data.load_dataset("cifar100", None, False, 32)


def test_corrupt_data_is_reported(tmp_path, monkeypatch, data_root):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes((data_root / "cifar-100-python" / name).read_bytes()[:1000])
    monkeypatch.setenv(data.DATA_ROOT_ENV, str(tmp_path))
    with pytest.raises(DfcilError, match="not found or corrupt"):
        data.load_dataset("cifar100", None, False, 32)


def test_device_augment_is_a_padded_crop_or_its_flip():
    aug = DeviceAugment("cifar100", 32, torch.device("cpu"))
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    out = aug(x, gen)
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    padded = aug.normalize(torch.nn.functional.pad(x, (4, 4, 4, 4)))
    for i in range(16):
        windows = [padded[i, :, a:a + 32, b:b + 32] for a in range(9) for b in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in windows)
    # same generator seed, same batch
    assert torch.equal(aug(x, torch.Generator().manual_seed(0)), out)


def test_imagefolder_same_interface(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c in ("a", "b"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((80, 70, 3), 40 * i, dtype=np.uint8)).save(d / f"{i}.png")
    train, val = data.load_dataset("imagefolder", str(tmp_path), False, 64)
    assert train.x.shape == (4, 3, 64, 64) and train.y.tolist() == [0, 0, 1, 1]
    assert val.x.dtype == np.uint8
