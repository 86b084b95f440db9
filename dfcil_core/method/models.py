"""ResNet-32 / ResNet-18 classifiers with a growing head, the inversion generator, DGR's VAE and
BiC's logit bias layers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
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

    def __init__(self, blocks: list[int], widths: list[int], image_size: int, shortcut: str = "A",
                 imagenet_stem: bool | None = None):
        super().__init__()
        stem_w = widths[0]
        if image_size >= 128 if imagenet_stem is None else imagenet_stem:  # 7x7/2 + max-pool (224 px)
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
        if arch == "resnet32":  # the authors' CIFAR ResNet at any size (Tiny-ImageNet too): a 3x3 stem
            self.features = ResNetFeatures([5, 5, 5], [16, 32, 64], image_size, shortcut, imagenet_stem=False)
        elif arch == "resnet18_authors":  # their "resnet18": the CIFAR ResNet, blocks [2, 2, 2], at 224 px too
            self.features = ResNetFeatures([2, 2, 2], [16, 32, 64], image_size, shortcut, imagenet_stem=False)
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
    -> conv3 -> tanh -> BN(affine=False). Larger images add upsampling stages, as the authors' larger
    generators do: 64 px (their GeneratorMed) three from 8 x 8; 224 px (their GeneratorBig) five from
    7 x 7, all 64 channels wide.
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
        self.width = width = 64 if image_size >= 224 else 128
        self.fc = nn.Linear(z_dim, width * self.init_size ** 2)
        blocks: list[nn.Module] = [nn.BatchNorm2d(width)]
        cin = width
        for i in range(ups):
            cout = 64 if i == ups - 1 else width
            blocks += [nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, 1, 1),
                       nn.BatchNorm2d(cout, eps=self.BLOCK_BN_EPS), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        blocks += [nn.Conv2d(cin, 3, 3, 1, 1), nn.Tanh(), nn.BatchNorm2d(3, affine=False)]
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(z.shape[0], self.width, self.init_size, self.init_size)
        return self.net(x)

    def sample(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        dev = self.fc.weight.device
        return self(torch.randn(n, self.z_dim, device=dev, generator=gen))


class VariationalAutoencoder(nn.Module):
    """DGR's generative model (the authors' CIFAR autoencoder, van de Ven & Tolias' design): images in
    [0, 1], no BatchNorm, PyTorch's default initialisation.

    Encoder: three 4x4 stride-2 convolutions 3 -> 64 -> 128 -> 512 with ReLU (32 -> 4 px), then the
    mean and log-variance of q(z|x) by two linear maps of the 8,192 features. Decoder: a linear map
    of z back to 512 x 4 x 4, three 4x4 stride-2 transposed convolutions 512 -> 256 -> 64 -> 3 (ReLU
    between them) and a sigmoid.
    """

    def __init__(self, z_dim: int = 1024, image_size: int = 32):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"the VAE halves the image three times: {image_size} px does not divide by 8")
        self.z_dim, self.side = z_dim, image_size // 8
        self.pixels = 3 * image_size * image_size
        width = 512 * self.side * self.side
        self.encoder = nn.Sequential(nn.Conv2d(3, 64, 4, 2, 1), nn.ReLU(), nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU(),
                                     nn.Conv2d(128, 512, 4, 2, 1), nn.ReLU(), nn.Flatten())
        self.to_mean = nn.Linear(width, z_dim)
        self.to_logvar = nn.Linear(width, z_dim)
        self.from_z = nn.Linear(z_dim, width)
        self.decoder = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(256, 64, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(64, 3, 4, 2, 1), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mean(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_z(z).view(-1, 512, self.side, self.side))

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """(reconstruction, mean, log-variance); z = mean + eps * std in training (`eps` ~ N(0, I)
        unless given), the mean otherwise."""
        mean, logvar = self.encode(x)
        if self.training:
            eps = torch.randn_like(mean) if eps is None else eps
            z = mean + eps * torch.exp(0.5 * logvar)
        else:
            z = mean
        return self.decode(z), mean, logvar

    def sample(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """`n` images decoded from z ~ N(0, I)."""
        dev = self.from_z.weight.device
        return self.decode(torch.randn(n, self.z_dim, device=dev, generator=gen))


class LogitBias(nn.Module):
    """BiC's bias correction: one pair (alpha, beta) per task from the second on, applied as
    alpha * z + beta to that task's logit columns."""

    def __init__(self):
        super().__init__()
        self.alphas = nn.ParameterList()
        self.betas = nn.ParameterList()
        self.ranges: list[tuple[int, int]] = []

    def add(self, start: int, end: int, alpha: float = 1.0, beta: float = 0.0,
            like: torch.Tensor | None = None) -> None:
        """A layer for classes [start, end), initialised to the identity (or to `alpha`, `beta`)."""
        kw = {"device": like.device, "dtype": like.dtype} if like is not None else {}
        self.alphas.append(nn.Parameter(torch.full((1,), float(alpha), **kw)))
        self.betas.append(nn.Parameter(torch.full((1,), float(beta), **kw)))
        self.ranges.append((int(start), int(end)))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.ranges:
            return logits
        cols = torch.arange(logits.shape[1], device=logits.device)
        scale = torch.ones(logits.shape[1], device=logits.device, dtype=logits.dtype)
        shift = torch.zeros_like(scale)
        for (a, b), alpha, beta in zip(self.ranges, self.alphas, self.betas, strict=True):
            inside = (cols >= a) & (cols < b)
            scale = torch.where(inside, alpha, scale)
            shift = torch.where(inside, beta, shift)
        return logits * scale + shift

    def to_list(self) -> list[list[float]]:
        """[[start, end, alpha, beta], ...]: what a checkpoint keeps."""
        return [[a, b, float(al.detach()), float(be.detach())]
                for (a, b), al, be in zip(self.ranges, self.alphas, self.betas, strict=True)]

    @classmethod
    def from_list(cls, layers: list[list[float]], like: torch.Tensor | None = None) -> LogitBias:
        bias = cls()
        for a, b, alpha, beta in layers:
            bias.add(int(a), int(b), alpha, beta, like)
        return bias


@torch.no_grad()
def penultimate_features(model: IncrementalClassifier, x_u8: torch.Tensor,
                         normalize: Callable[[torch.Tensor], torch.Tensor], batch: int = 500) -> np.ndarray:
    """Penultimate features (float64) of uint8 images through `normalize` (the test transform), the
    model in eval mode as the authors' coreset selection embeds them; the model's mode is restored."""
    mode = model.training
    model.eval()
    feats = [model.forward_with_features(normalize(x_u8[i:i + batch]))[1] for i in range(0, x_u8.shape[0], batch)]
    model.train(mode)
    if not feats:
        return np.zeros((0, model.features.out_dim))
    return torch.cat(feats).double().cpu().numpy()


def new_classifier(cfg: Config, num_classes: int, head_size: int | None = None) -> IncrementalClassifier:
    """The configured classifier with `num_classes` live classes and `cfg.head_rows` head rows (the
    authors' single 100-way head on CIFAR-100), unless `head_size` says otherwise."""
    return IncrementalClassifier(cfg.model.arch, cfg.data.image_size, num_classes,
                                 cfg.head_rows if head_size is None else head_size, cfg.model.shortcut)
