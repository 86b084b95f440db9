"""The paper's published numbers (Smith et al., ICCV 2021), as data: A_N and Ω (%) on CIFAR-100 (mean ±
std over 3 runs), Tiny-ImageNet and ImageNet-50 (one run each, no std; ImageNet-50's A_N is top-5
and has no Ω). Each row names the table it comes from; a test checks every value against the
paper's text (../shared/paper/always-be-dreaming-dfcil.txt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PaperCell:
    a_n: float
    a_n_std: float
    omega: float
    omega_std: float
    source: str  # table and row in the paper


def _row(source: str, *values: float) -> dict[int, PaperCell]:
    """values: (A_N, std, Ω, std) for 5, 10 and 20 tasks, in the table's column order."""
    return {n: PaperCell(*values[4 * i:4 * i + 4], source=source) for i, n in enumerate((5, 10, 20))}


def _one(source: str, task_count: int, a_n: float, omega: float = math.nan) -> dict[int, PaperCell]:
    """A single run's cell (no std) for one task count."""
    return {task_count: PaperCell(a_n, math.nan, omega, math.nan, source=source)}


# Table 1 (data-free, CIFAR-100); LwF.MC is in the appendix's full version of it, Table A.
TABLE1: dict[str, dict[int, PaperCell]] = {
    "upper_bound": _row("Table 1, Upper Bound", 69.9, 0.2, 100.0, 0.0, 69.9, 0.2, 100.0, 0.0, 69.9, 0.2, 100.0, 0.0),
    "base": _row("Table 1, Base", 16.4, 0.4, 48.9, 1.1, 8.8, 0.1, 32.1, 1.1, 4.4, 0.3, 19.7, 0.7),
    "lwf": _row("Table 1, LwF (replay: none)", 17.0, 0.1, 49.5, 0.1, 9.2, 0.0, 33.3, 0.9, 4.7, 0.1, 20.1, 0.3),
    "lwf_mc": _row("Table A, LwF.MC", 32.5, 1.0, 69.8, 1.1, 17.1, 0.1, 52.0, 1.3, 7.7, 0.5, 29.3, 0.6),
    "lwf_syn": _row("Table 1, LwF (replay: synthetic)", 16.7, 0.1, 49.8, 0.1, 8.9, 0.0, 32.3, 0.0, 4.7, 0.0, 19.7, 0.0),
    "deepinversion": _row("Table 1, DeepInversion", 18.8, 0.3, 53.2, 0.9, 10.9, 0.6, 37.9, 0.8, 5.7, 0.3, 23.6, 0.7),
    "abd": _row("Table 1, Ours", 43.9, 0.9, 78.6, 1.1, 33.7, 1.2, 69.6, 1.6, 20.0, 1.4, 52.5, 2.5),
    "dgr": _row("Table 1, DGR (replay: generator)", 14.4, 0.4, 45.5, 0.9, 8.1, 0.1, 30.5, 0.6, 4.1, 0.3, 19.0, 0.3),
}

# Tables 2 / B (with replay data, CIFAR-100, a coreset of 2,000 images; ABD without): Table B is Table 2
# with E2E's row. The upper bound and ABD repeat Table 1's cells.
TABLE2: dict[str, dict[int, PaperCell]] = {
    "upper_bound": _row("Table 2, Upper Bound", 69.9, 0.2, 100.0, 0.0, 69.9, 0.2, 100.0, 0.0, 69.9, 0.2, 100.0, 0.0),
    "rehearsal": _row("Table 2, Naive Rehearsal (replay: coreset)", 34.0, 0.2, 73.4, 0.8, 24.0, 1.0, 64.6, 2.1,
                      14.9, 0.7, 51.4, 2.9),
    "lwf_coreset": _row("Table 2, LwF (replay: coreset)", 39.4, 0.3, 79.0, 0.0, 27.4, 0.8, 69.4, 0.4,
                        16.6, 0.4, 54.2, 2.2),
    "e2e": _row("Table B, E2E (replay: coreset)", 47.4, 0.8, 83.1, 1.0, 38.4, 1.3, 75.0, 1.4, 32.7, 1.9, 66.8, 3.0),
    "bic": _row("Table 2, BiC (replay: coreset)", 53.7, 0.4, 87.5, 0.9, 45.9, 1.8, 81.9, 2.0, 37.5, 3.2, 71.7, 3.4),
    "abd": _row("Table 2, Ours (replay: synthetic)", 43.9, 0.9, 78.6, 1.1, 33.7, 1.2, 69.6, 1.6, 20.0, 1.4, 52.5, 2.5),
}

# Tiny-ImageNet, 20 tasks, one run: Table C (data-free) and Table D (with a coreset of 2,000).
TINY_IMAGENET_C: dict[str, dict[int, PaperCell]] = {
    "upper_bound": _one("Table C, Upper Bound", 20, 55.5, 100.0),
    "base": _one("Table C, Base", 20, 4.1, 21.9),
    "lwf": _one("Table C, LwF (replay: none)", 20, 4.4, 22.4),
    "lwf_mc": _one("Table C, LwF.MC", 20, 8.8, 37.2),
    "lwf_syn": _one("Table C, LwF (replay: synthetic)", 20, 4.0, 22.0),
    "deepinversion": _one("Table C, DeepInversion", 20, 5.1, 24.8),
    "abd": _one("Table C, Ours", 20, 12.1, 49.3),
}
TINY_IMAGENET_D: dict[str, dict[int, PaperCell]] = {
    "upper_bound": _one("Table D, Upper Bound", 20, 55.5, 100.0),
    "rehearsal": _one("Table D, Naive Rehearsal (replay: coreset)", 20, 6.6, 37.7),
    "lwf_coreset": _one("Table D, LwF (replay: coreset)", 20, 6.9, 39.7),
    "e2e": _one("Table D, E2E (replay: coreset)", 20, 16.9, 56.3),
    "bic": _one("Table D, BiC (replay: coreset)", 20, 17.4, 59.8),
    "abd": _one("Table D, Ours (replay: synthetic)", 20, 12.1, 49.3),
}

# ImageNet-50, 5 tasks, one run, top-5 A_N (no Ω): Table 4, and Table E with LwF.MC's row.
IMAGENET50: dict[str, dict[int, PaperCell]] = {
    "upper_bound": _one("Table 4, Upper Bound", 5, 89.8),
    "lwf": _one("Table 4, LwF (replay: none)", 5, 19.4),
    "lwf_mc": _one("Table E, LwF.MC", 5, 72.7),
    "rehearsal": _one("Table 4, Naive Rehearsal (replay: coreset)", 5, 78.9),
    "lwf_coreset": _one("Table 4, LwF (replay: coreset)", 5, 84.8),
    "abd": _one("Table 4, Ours (replay: synthetic)", 5, 71.5),
}

# Per dataset (dfcil's name) the paper's values of the data-free table (Table 1's shape) and of the
# replay table (Table 2's), ImageNet-50's table holding both kinds.
PAPER_TABLES: dict[str, dict[str, dict[str, dict[int, PaperCell]]]] = {
    "cifar100": {"table1": TABLE1, "table2": TABLE2},
    "tinyimagenet": {"table1": TINY_IMAGENET_C, "table2": TINY_IMAGENET_D},
    "imagenet50": {"table1": {k: v for k, v in IMAGENET50.items() if k not in ("rehearsal", "lwf_coreset")},
                   "table2": {k: v for k, v in IMAGENET50.items() if k in ("upper_bound", "rehearsal", "lwf_coreset",
                                                                             "abd")}},
}

# Table 3: ABD ablations, ten tasks. Keys: the `abd.*` switch turned off ("none" = full method).
TABLE3: dict[str, PaperCell] = {
    "none": PaperCell(33.7, 1.2, 69.6, 1.6, "Table 3, Full Method"),
    "task_balancing": PaperCell(23.4, 1.5, 62.2, 2.4, "Table 3, Ablate Task Balancing Loss Weighting"),
    "local_ce": PaperCell(16.5, 0.5, 46.6, 0.9, "Table 3, Replace Modified CE Loss, Eq. (11), w/ Standard CE Loss"),
    "kd_real": PaperCell(15.9, 2.1, 58.9, 3.2, "Table 3, Ablate Real Data Distillation"),
    "kd_synthetic": PaperCell(12.7, 7.4, 55.3, 8.1, "Table 3, Ablate Synthetic Data Distillation"),
    "ft_ce": PaperCell(9.8, 0.6, 35.9, 1.3, "Table 3, Ablate FT-CE Loss: Eq. (14)"),
}
