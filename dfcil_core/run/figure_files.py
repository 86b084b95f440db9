"""Writing matplotlib figures: the headless backend, and an atomic save (a stage never leaves a
half-written PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dfcil_core.foundations import atomic_io  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    with atomic_io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
