"""The authors' training augmentation and the normalisation, batched on the device."""

from __future__ import annotations

import math

import torch

from dfcil_core.method.datasets import CHANNEL_STATS, IMAGENET_STORED


class DeviceAugment:
    """The authors' training augmentation, batched on the device with no host round trip:
    ColorJitter(brightness=63/255, contrast=0.8) -> RandomHorizontalFlip -> RandomCrop(size,
    padding=pad, zero fill) -> normalisation, in that order (dataloaders/utils.py of the reference).

    Colour jitter draws per image what torchvision's ColorJitter draws: a brightness factor
    U[1 - 63/255, 1 + 63/255], a contrast factor U[0.2, 1.8] and a random order of the two; each
    op blends with black (brightness) or with the image's mean grey level (contrast), clips to
    [0, 255] and truncates to whole levels, as PIL does on uint8 images.

    ImageNet (stored at 256 x 256, seen at 224): their RandomResizedCrop(224) -> flip -> normalisation
    for training, on the stored square rather than the whole image (a crop of 8-100 % of its area, aspect
    3/4-4/3, bilinear to 224); the central 224 for testing, which equals their Resize(256) ->
    CenterCrop(224) exactly.
    """

    BRIGHTNESS = 63 / 255
    CONTRAST = 0.8
    GREY = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, PIL's convert("L")

    def __init__(self, dataset: str, image_size: int, device: torch.device, color_jitter: bool = False,
                 unit_range: bool = False):
        # `unit_range`: images in [0, 1] instead of normalised per channel (DGR, whose VAE models them)
        mean, std = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)) if unit_range else CHANNEL_STATS[dataset]
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0
        self.grey = torch.tensor(self.GREY, device=device).view(1, 3, 1, 1)
        self.size = image_size
        self.pad = 4  # RandomCrop(size, padding=4), the authors' for 32 and 64 px alike
        self.arange = torch.arange(image_size, device=device)
        self.color_jitter = color_jitter
        self.resized_crop = dataset == "imagenet50"
        self.stored = IMAGENET_STORED if self.resized_crop else image_size

    def normalize(self, x_u8: torch.Tensor) -> torch.Tensor:
        """The test view: the central `size` x `size` of a larger stored image, normalised."""
        if self.resized_crop and x_u8.shape[-1] > self.size:  # ImageNet's stored square
            o = (x_u8.shape[-1] - self.size) // 2
            x_u8 = x_u8[..., o:o + self.size, o:o + self.size]
        return (x_u8.float() - self.mean) / self.std

    def random_resized_crop(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """torchvision's RandomResizedCrop(size) per image of a float batch: up to ten draws of an area
        share U[0.08, 1] and a log-uniform aspect in [3/4, 4/3], the first that fits; else the whole
        (square) image; then a bilinear resize of the box to `size`."""
        b, s, dev = x.shape[0], x.shape[-1], x.device
        tries = 10
        area = s * s * (0.08 + 0.92 * torch.rand(b, tries, device=dev, generator=gen))
        ratio = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4))
                          * torch.rand(b, tries, device=dev, generator=gen))
        w = torch.round(torch.sqrt(area * ratio))
        h = torch.round(torch.sqrt(area / ratio))
        fits = (w > 0) & (w <= s) & (h > 0) & (h <= s)
        first = torch.argmax(fits.int(), dim=1)
        ok = fits.any(dim=1)
        w = torch.where(ok, w.gather(1, first[:, None])[:, 0], torch.full_like(w[:, 0], s))
        h = torch.where(ok, h.gather(1, first[:, None])[:, 0], torch.full_like(h[:, 0], s))
        top = torch.floor(torch.rand(b, device=dev, generator=gen) * (s - h + 1))
        left = torch.floor(torch.rand(b, device=dev, generator=gen) * (s - w + 1))
        theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 1, 1] = w / s, h / s
        theta[:, 0, 2], theta[:, 1, 2] = (2 * left + w) / s - 1, (2 * top + h) / s - 1
        grid = torch.nn.functional.affine_grid(theta, [b, x.shape[1], self.size, self.size], align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode="bilinear", align_corners=False)

    def jitter(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Brightness and contrast jitter of a float batch in [0, 255], in a random order per image."""
        b, dev = x.shape[0], x.device

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return (lo + (hi - lo) * torch.rand(b, device=dev, generator=gen)).view(b, 1, 1, 1)

        bright = uniform(max(0.0, 1 - self.BRIGHTNESS), 1 + self.BRIGHTNESS)
        contrast = uniform(max(0.0, 1 - self.CONTRAST), 1 + self.CONTRAST)
        bright_first = (torch.rand(b, device=dev, generator=gen) < 0.5).view(b, 1, 1, 1)

        def brightness_op(img: torch.Tensor) -> torch.Tensor:
            return (img * bright).clamp(0, 255).floor()

        def contrast_op(img: torch.Tensor) -> torch.Tensor:
            grey = torch.floor((img * self.grey).sum(1, keepdim=True).mean((2, 3), keepdim=True) + 0.5)
            return (grey + contrast * (img - grey)).clamp(0, 255).floor()

        first = torch.where(bright_first, brightness_op(x), contrast_op(x))
        return torch.where(bright_first, contrast_op(first), brightness_op(first))

    def __call__(self, x_u8: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        b, p, s = x_u8.shape[0], self.pad, self.size
        dev = x_u8.device
        if self.resized_crop:  # their ImageNet transform: no colour jitter, no padded crop
            x = self.random_resized_crop(x_u8.float(), gen)
            flip = torch.rand(b, device=dev, generator=gen) < 0.5
            return (torch.where(flip.view(b, 1, 1, 1), x.flip(3), x) - self.mean) / self.std
        x = self.jitter(x_u8.float(), gen) if self.color_jitter else x_u8.float()
        flip = torch.rand(b, device=dev, generator=gen) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        oy = torch.randint(0, 2 * p + 1, (b, 1), device=dev, generator=gen)
        ox = torch.randint(0, 2 * p + 1, (b, 1), device=dev, generator=gen)
        rows = (oy + self.arange).view(b, 1, s, 1)
        cols = (ox + self.arange).view(b, 1, 1, s)
        bi = torch.arange(b, device=dev).view(b, 1, 1, 1)
        ci = torch.arange(x.shape[1], device=dev).view(1, -1, 1, 1)
        return (padded[bi, ci, rows, cols] - self.mean) / self.std
