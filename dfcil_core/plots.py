"""Plots as PNG files: sample grids, loss curves, accuracy heatmaps, Ω curves, MID/MMD bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dfcil_core import io  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def sample_grid(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], path: str | Path,
                nrow: int = 8, title: str = "") -> None:
    """Denormalise a batch (N, 3, H, W) from normalised space and save it as a grid."""
    x = images.detach().float().cpu()
    x = x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    x = x.clamp(0, 1)
    n = x.shape[0]
    rows = (n + nrow - 1) // nrow
    h, w = x.shape[2], x.shape[3]
    canvas = np.ones((rows * (h + 2), nrow * (w + 2), 3))
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = x[i].permute(1, 2, 0).numpy()
    fig, ax = plt.subplots(figsize=(nrow * 0.6 + 1, rows * 0.6 + 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)


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
    _save(fig, path)


def accuracy_heatmap(values: np.ndarray, path: str | Path, title: str = "") -> None:
    n = values.shape[0]
    fig, ax = plt.subplots(figsize=(1 + 0.55 * n, 0.8 + 0.5 * n))
    im = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=100, cmap="viridis")
    for i in range(n):
        for j in range(i + 1):
            ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xlabel("test data of task n")
    ax.set_ylabel("model after task i")
    ax.set_xticks(range(n), [str(k + 1) for k in range(n)])
    ax.set_yticks(range(n), [str(k + 1) for k in range(n)])
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def curves_per_task(series: dict[str, list[float]], path: str | Path, ylabel: str, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, ys in series.items():
        ax.plot(range(1, len(ys) + 1), ys, marker="o", label=name)
    ax.set_xlabel("task")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def grouped_bars(groups: dict[str, dict[str, float]], path: str | Path, ylabel: str, title: str = "") -> None:
    """groups: {group (e.g. method): {bar label: value}}."""
    names = list(groups)
    labels = sorted({k for g in groups.values() for k in g})
    width = 0.8 / max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(names), 3.5))
    for j, lab in enumerate(labels):
        vals = [groups[n].get(lab, np.nan) for n in names]
        ax.bar(np.arange(len(names)) + j * width, vals, width, label=lab)
    ax.set_xticks(np.arange(len(names)) + width * (len(labels) - 1) / 2, names)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    _save(fig, path)
