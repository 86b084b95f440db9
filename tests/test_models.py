"""ResNet-32 / ResNet-18 shapes, head growth, the generator."""

from __future__ import annotations

import pytest
import torch

from dfcil_core.method.models import Generator, IncrementalClassifier


def test_resnet32_structure_and_features():
    m = IncrementalClassifier("resnet32", 32, 10)
    convs = [mod for mod in m.features.modules() if isinstance(mod, torch.nn.Conv2d) and mod.kernel_size == (3, 3)]
    assert len(convs) == 31  # stem + 3 stages x 5 blocks x 2 convs; + the head = 32 layers
    assert [b.conv2.out_channels for b in m.features.layers] == [16] * 5 + [32] * 5 + [64] * 5
    logits, feats = m.forward_with_features(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 10) and feats.shape == (4, 64)
    assert 0.45e6 < sum(p.numel() for p in m.parameters()) < 0.5e6


def test_resnet18_for_larger_images():
    m = IncrementalClassifier("resnet18", 64, 5)
    logits, feats = m.forward_with_features(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5) and feats.shape == (2, 512)
    assert IncrementalClassifier("resnet18", 224, 3)(torch.randn(1, 3, 224, 224)).shape == (1, 3)


def test_grow_keeps_old_head_rows_bit_identical():
    torch.manual_seed(0)
    m = IncrementalClassifier("resnet32", 32, 10)
    w, b = m.head.weight.detach().clone(), m.head.bias.detach().clone()
    m.grow(5)
    assert m.num_classes == 15 and m.head.weight.shape == (15, 64)
    assert torch.equal(m.head.weight[:10], w) and torch.equal(m.head.bias[:10], b)
    x = torch.randn(2, 3, 32, 32)
    m.eval()
    assert m(x).shape == (2, 15)


def test_generator_shapes_and_layers():
    g = Generator(1000, 32)
    x = g.sample(6)
    assert x.shape == (6, 3, 32, 32)
    assert isinstance(g.net[-1], torch.nn.BatchNorm2d) and not g.net[-1].affine
    assert isinstance(g.net[-2], torch.nn.Tanh)
    assert g.fc.out_features == 128 * 8 * 8
    assert Generator(100, 64).sample(2).shape == (2, 3, 64, 64)
    assert Generator(100, 224).sample(2).shape == (2, 3, 224, 224)


def test_teacher_forward_costs_give_the_floor_of_a_distilling_step():
    from dfcil_core.foundations import config
    from dfcil_core.lab.throughput import teacher_forward_costs

    cfg = config.from_dict({"train": {"batch_size": 8}, "runtime": {"device": "cpu", "progress": False}})
    r = teacher_forward_costs(cfg, steps=1, warmup=0)
    assert 1e-4 < r["bf16_max_rel_dev"] < 0.1  # bf16 keeps 8 mantissa bits: visibly off, not garbage
    for kind in ("", "_bf16"):
        assert r[f"kd_ratio{kind}"] == pytest.approx((r["ce_step"] + r[f"teacher{kind}"]) / r["ce_step"])


def test_replay_class_shares_count_every_draw_by_old_task():
    from dfcil_core.method.synthesis import replay_class_shares

    class Drawn:  # image i of each draw is labelled [0, 2, 3][i % 3] by the teacher below
        def sample(self, n, gen=None):
            return torch.arange(n, dtype=torch.float32).reshape(n, 1)

    class Labeller:
        def forward_with_features(self, x):
            cls = torch.tensor([0, 2, 3])[x[:, 0].long() % 3]
            return torch.nn.functional.one_hot(cls, 4).float(), x

    # draws of 4, 4 and 1: labels 0 2 3 0 | 0 2 3 0 | 0 -> class 0 five times, 2 and 3 twice, 1 never
    r = replay_class_shares(Drawn(), Labeller(), past=4, blocks=[(0, 2), (2, 4)], n=9, batch=4)
    assert r == {"samples": 9, "share_by_task": [round(5 / 9, 4), round(4 / 9, 4)], "classes_drawn": 3, "classes": 4}
