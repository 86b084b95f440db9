"""The evaluate stage's figures as PNG files: training curves, accuracy heatmaps, per-task curves,
MID/MMD and comparison bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from dfcil_core.run.figure_files import save_figure


def training_curves(histories: list[dict], path: str | Path, title: str = "") -> None:
    """Per-epoch training loss and its weighted terms over all tasks of one method (one history per
    task, as `fit_task` returns it), epochs numbered across tasks, a dotted line where a task starts.
    A term absent from some epochs (a phase of the schedule) leaves a gap; a zero term is not drawn
    (log scale)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    offset, names, starts = 0, [], []
    for h in histories:
        for name in h.get("terms", {}):
            if name not in names:
                names.append(name)
    labelled: set[str] = set()

    def line(x: list[int], y: list, name: str, color: str) -> None:
        ax.plot(x, [np.nan if v is None or v <= 0 else v for v in y], color=color, marker=".",
                label=None if name in labelled else name, zorder=3 if name == "total" else 2,
                linewidth=2.2 if name == "total" else 1.2)
        labelled.add(name)

    for task, h in enumerate(histories, start=1):
        x = [offset + e for e in range(1, len(h.get("loss", [])) + 1)]
        if not x:
            continue
        starts.append((offset + 0.5, task))
        line(x, h["loss"], "total", "black")
        for i, name in enumerate(names):
            if h.get("terms", {}).get(name):
                line(x, h["terms"][name], name, f"C{i}")
        offset = x[-1]
    for x0, _ in starts[1:]:
        ax.axvline(x0, color="grey", linestyle=":", linewidth=1)
    for x0, task in starts:
        ax.annotate(f"task {task}", (x0, 0.0), xycoords=("data", "axes fraction"), xytext=(3, 4),
                    textcoords="offset points", fontsize=8, color="grey")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (across tasks)")
    ax.set_ylabel("loss (mean per epoch)")
    if any(np.isfinite(drawn.get_ydata()).any() for drawn in ax.lines):  # line() keeps only values > 0
        ax.set_yscale("log")  # terms differ by orders of magnitude; zeros are left out
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: curves stay visible
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def accuracy_heatmap(values: np.ndarray, path: str | Path, title: str = "") -> None:
    n = values.shape[0]
    fig, ax = plt.subplots(figsize=(2.6 + 0.55 * n, 2 + 0.5 * n))
    im = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=100, cmap="viridis")
    fmt = "{:.1f}" if n <= 5 else "{:.0f}"
    for i in range(n):
        for j in range(i + 1):  # dark text on the light (high) end of viridis
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8,
                    color="k" if values[i, j] > 60 else "w")
    ax.set_xlabel("test data of task n")
    ax.set_ylabel("model after task i")
    ax.set_xticks(range(n), [str(k + 1) for k in range(n)])
    ax.set_yticks(range(n), [str(k + 1) for k in range(n)])
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def curves_per_task(series: dict[str, list[float]], path: str | Path, ylabel: str, title: str = "") -> list[float]:
    """One line per series over tasks 1..n; returns the x ticks drawn (whole task numbers)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    n = max((len(ys) for ys in series.values()), default=1)
    for name, ys in series.items():
        ax.plot(range(1, len(ys) + 1), ys, marker="o", label=name)
    ax.set_xticks(range(1, n + 1))  # tasks are whole numbers
    ax.set_xlabel("task")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    ticks = [float(t) for t in ax.get_xticks()]
    save_figure(fig, path)
    return ticks


# Bars switch to a log axis when the largest positive value is this many times the smallest.
LOG_SCALE_RATIO = 20.0


def bar_scale(values: list[float]) -> str:
    """'log' when one value would flatten the others on a linear axis, else 'linear'."""
    pos = [v for v in values if np.isfinite(v) and v > 0]
    return "log" if len(pos) >= 2 and max(pos) / min(pos) > LOG_SCALE_RATIO else "linear"


def grouped_bars(groups: dict[str, dict[str, float]], path: str | Path, ylabel: str, title: str = "") -> str:
    """groups: {group (e.g. method): {bar label: value}}. Every bar carries its value; the axis is
    logarithmic when the values span more than LOG_SCALE_RATIO. Returns the scale used."""
    names = list(groups)
    labels = sorted({k for g in groups.values() for k in g})
    width = 0.8 / max(len(labels), 1)
    scale = bar_scale([v for g in groups.values() for v in g.values()])
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(names), 3.5))
    for j, lab in enumerate(labels):
        vals = [groups[n].get(lab, np.nan) for n in names]
        bars = ax.bar(np.arange(len(names)) + j * width, vals, width, label=lab)
        ax.bar_label(bars, labels=[f"{v:.3g}" if np.isfinite(v) else "" for v in vals], fontsize=7, padding=1)
    ax.set_yscale(scale)
    ax.set_xticks(np.arange(len(names)) + width * (len(labels) - 1) / 2, names)
    ax.set_ylabel(ylabel + (" (log scale)" if scale == "log" else ""))
    if labels:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)
    return scale
