"""ResNet-32 / ResNet-18 classifiers with a growing head, and the inversion generator."""

from __future__ import annotations

import torch
from torch import nn

from dfcil_core.foundations.config import Config

SHORTCUTS = ("A", "B")


class SubsampleZeroPadShortcut(nn.Module):
    """He et al.'s option A: keep every `stride`-th pixel and zero-pad the new channels equally on both
    sides. Parameter-free (the authors' ResNet-32, and so no BN layer for the Eq. 5 average)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, self.before = stride, (cout - cin) // 2
        self.after = cout - cin - self.before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, self.before, self.after))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, shortcut: str = "A"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or cin != cout:
            if shortcut == "A":
                self.shortcut = SubsampleZeroPadShortcut(cin, cout, stride)
            else:  # option B: 1x1 conv + BN
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                              nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetFeatures(nn.Module):
    """Residual trunk to a pooled feature vector (the penultimate layer)."""

    def __init__(self, blocks: list[int], widths: list[int], image_size: int, shortcut: str = "A"):
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
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1, shortcut))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class IncrementalClassifier(nn.Module):
    """Feature trunk + one linear head over every class of the run (`head_size`), of which the
    first `num_classes` rows are live: the classes seen so far. As in the authors' code, the rows of
    later classes exist from the start (initialised with the model, decayed by weight decay until
    their task comes); `grow` only makes more of them live, so old rows stay bit-identical."""

    def __init__(self, arch: str, image_size: int = 32, num_classes: int = 0, head_size: int | None = None,
                 shortcut: str = "A"):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut option {shortcut!r} (A or B)")
        if arch == "resnet32":
            self.features = ResNetFeatures([5, 5, 5], [16, 32, 64], image_size, shortcut)
        elif arch == "resnet18":
            self.features = ResNetFeatures([2, 2, 2, 2], [64, 128, 256, 512], image_size, shortcut)
        else:
            raise ValueError(f"unknown architecture {arch!r}")
        head_size = num_classes if head_size is None else head_size
        if head_size < num_classes:
            raise ValueError(f"head of {head_size} rows cannot hold {num_classes} classes")
        self.arch = arch
        self.head = nn.Linear(self.features.out_dim, max(head_size, 1))
        self.num_classes = num_classes
        # The authors' init: kaiming_normal_ (fan_in, gain sqrt 2) on conv and linear weights.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @property
    def head_size(self) -> int:
        return self.head.out_features

    def grow(self, new_classes: int) -> None:
        """Make `new_classes` more head rows live; rows of classes seen before stay bit-identical."""
        total = self.num_classes + new_classes
        if total > self.head_size:
            old = self.head
            head = nn.Linear(old.in_features, total).to(device=old.weight.device, dtype=old.weight.dtype)
            nn.init.kaiming_normal_(head.weight)
            with torch.no_grad():
                head.weight[: old.out_features] = old.weight
                head.bias[: old.out_features] = old.bias
            self.head = head
        self.num_classes = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))[:, : self.num_classes]

    def forward_with_features(self, x: torch.Tensor, all_heads: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (live classes, or every head row with `all_heads`) and penultimate features."""
        feats = self.features(x)
        logits = self.head(feats)
        return (logits if all_heads else logits[:, : self.num_classes]), feats


class Generator(nn.Module):
    """The inversion generator F (ARCHITECTURE.md): z -> image in normalised space.

    32 px: z=1000 -> linear -> 128x8x8 -> BN -> up x2 -> conv128,BN,LReLU -> up x2 -> conv64,BN,LReLU
    -> conv3 -> tanh -> BN(affine=False). Larger images add upsampling stages (64 px: 3, 224 px: 5).
    """

    # The authors write BatchNorm2d(c, 0.8): the 0.8 is eps (not momentum) in the upsampling blocks.
    BLOCK_BN_EPS = 0.8

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
                       nn.BatchNorm2d(cout, eps=self.BLOCK_BN_EPS), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        blocks += [nn.Conv2d(cin, 3, 3, 1, 1), nn.Tanh(), nn.BatchNorm2d(3, affine=False)]
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(z.shape[0], 128, self.init_size, self.init_size)
        return self.net(x)

    def sample(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        dev = self.fc.weight.device
        return self(torch.randn(n, self.z_dim, device=dev, generator=gen))


def new_classifier(cfg: Config, num_classes: int, head_size: int | None = None) -> IncrementalClassifier:
    """The configured classifier with `num_classes` live classes and `cfg.head_rows` head rows (the
    authors' single 100-way head on CIFAR-100), unless `head_size` says otherwise."""
    return IncrementalClassifier(cfg.model.arch, cfg.data.image_size, num_classes,
                                 cfg.head_rows if head_size is None else head_size, cfg.model.shortcut)
