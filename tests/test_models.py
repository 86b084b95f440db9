"""ResNet-32 / ResNet-18 shapes, head growth, the generator."""

from __future__ import annotations

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
