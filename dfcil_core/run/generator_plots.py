"""The synthesize stage's figures as PNG files: what the generator dreams, and its loss curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from dfcil_core.run.figure_files import save_figure


def sample_grid(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], path: str | Path,
                nrow: int = 8, title: str = "", labels: list[str] | None = None) -> None:
    """Denormalise a batch (N, 3, H, W) from normalised space and save it as a grid, each image
    captioned with its label (e.g. the class name the old model gives it) when `labels` is given.
    One image on one axes, captions as text: 64 subplots took ~5 s to lay out and draw."""
    x = images.detach().float().cpu()
    x = x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    x = x.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    n, h, w = x.shape[:3]
    rows = (n + nrow - 1) // nrow
    pad, band = max(1, h // 16), (h // 2 if labels else 0)  # band: room above each image for its caption
    cell_h, cell_w = band + h + pad, w + pad
    canvas = np.ones((rows * cell_h + pad, nrow * cell_w + pad, 3))
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = r * cell_h + pad + band, c * cell_w + pad
        canvas[top:top + h, left:left + w] = x[i]
    cell = 1.1 if labels else 0.6
    fig, ax = plt.subplots(figsize=(nrow * cell + 0.4, rows * (cell + (0.2 if labels else 0)) + 0.6))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for i, label in enumerate((labels or [])[:n]):
        r, c = divmod(i, nrow)
        ax.text(c * cell_w + pad + w / 2, r * cell_h + pad + band - 1, label, ha="center", va="bottom", fontsize=6)
    if title:
        ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def loss_curves(curves: dict[str, list[float]], path: str | Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, v in curves.items():
        if k != "step" and v:
            ax.plot(curves["step"], v, label=k)
    ax.set_xlabel("generator step")
    ax.set_ylabel("weighted loss")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)
