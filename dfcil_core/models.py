"""ResNet-32 / ResNet-18 classifiers with a growing head, and the inversion generator."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetFeatures(nn.Module):
    """Residual trunk to a pooled feature vector (the penultimate layer)."""

    def __init__(self, blocks: list[int], widths: list[int], image_size: int):
        super().__init__()
        stem_w = widths[0]
        if image_size >= 128:  # ImageNet-style stem for 224 px
            self.stem = nn.Sequential(nn.Conv2d(3, stem_w, 7, 2, 3, bias=False), nn.BatchNorm2d(stem_w),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, stem_w, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_w),
                                      nn.ReLU(inplace=True))
        layers, cin = [], stem_w
        for i, (n, w) in enumerate(zip(blocks, widths)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class IncrementalClassifier(nn.Module):
    """Feature trunk + linear head that grows per task; old head rows are kept as they are."""

    def __init__(self, arch: str, image_size: int = 32, num_classes: int = 0):
        super().__init__()
        if arch == "resnet32":
            self.features = ResNetFeatures([5, 5, 5], [16, 32, 64], image_size)
        elif arch == "resnet18":
            self.features = ResNetFeatures([2, 2, 2, 2], [64, 128, 256, 512], image_size)
        else:
            raise ValueError(f"unknown architecture {arch!r}")
        self.arch = arch
        self.head = nn.Linear(self.features.out_dim, max(num_classes, 1))
        self.num_classes = num_classes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def grow(self, new_classes: int) -> None:
        """Add `new_classes` output rows; rows of classes seen before stay bit-identical."""
        old = self.head
        total = self.num_classes + new_classes
        head = nn.Linear(old.in_features, total).to(device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            head.weight[: self.num_classes] = old.weight[: self.num_classes]
            head.bias[: self.num_classes] = old.bias[: self.num_classes]
        self.head = head
        self.num_classes = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))[:, : self.num_classes]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x)
        return self.head(feats)[:, : self.num_classes], feats


class Generator(nn.Module):
    """The inversion generator F (ARCHITECTURE.md): z -> image in normalised space.

    32 px: z=1000 -> linear -> 128x8x8 -> BN -> up x2 -> conv128,BN,LReLU -> up x2 -> conv64,BN,LReLU
    -> conv3 -> tanh -> BN(affine=False). Larger images add upsampling stages (64 px: 3, 224 px: 5).
    """

    def __init__(self, z_dim: int = 1000, image_size: int = 32):
        super().__init__()
        ups = {32: 2, 64: 3, 224: 5}.get(image_size)
        if ups is None:
            raise ValueError(f"no generator for {image_size} px images (32, 64 or 224)")
        self.z_dim = z_dim
        self.init_size = image_size // (2 ** ups)
        self.fc = nn.Linear(z_dim, 128 * self.init_size ** 2)
        blocks: list[nn.Module] = [nn.BatchNorm2d(128)]
        cin = 128
        for i in range(ups):
            cout = 64 if i == ups - 1 else 128
            blocks += [nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, 1, 1),
                       nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        blocks += [nn.Conv2d(cin, 3, 3, 1, 1), nn.Tanh(), nn.BatchNorm2d(3, affine=False)]
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(z.shape[0], 128, self.init_size, self.init_size)
        return self.net(x)

    def sample(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        dev = self.fc.weight.device
        return self(torch.randn(n, self.z_dim, device=dev, generator=gen))
