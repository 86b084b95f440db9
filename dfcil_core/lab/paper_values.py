"""The paper's published numbers (Smith et al., ICCV 2021), as data: A_N and Ω (%, mean ± std over
3 runs) on CIFAR-100. Each row names the table it comes from; a test checks every value against
the paper's text (../shared/paper/always-be-dreaming-dfcil.txt).
"""

from __future__ import annotations

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


# Table 1 (data-free, CIFAR-100); LwF.MC is in the appendix's full version of it, Table A.
TABLE1: dict[str, dict[int, PaperCell]] = {
    "upper_bound": _row("Table 1, Upper Bound", 69.9, 0.2, 100.0, 0.0, 69.9, 0.2, 100.0, 0.0, 69.9, 0.2, 100.0, 0.0),
    "base": _row("Table 1, Base", 16.4, 0.4, 48.9, 1.1, 8.8, 0.1, 32.1, 1.1, 4.4, 0.3, 19.7, 0.7),
    "lwf": _row("Table 1, LwF (replay: none)", 17.0, 0.1, 49.5, 0.1, 9.2, 0.0, 33.3, 0.9, 4.7, 0.1, 20.1, 0.3),
    "lwf_mc": _row("Table A, LwF.MC", 32.5, 1.0, 69.8, 1.1, 17.1, 0.1, 52.0, 1.3, 7.7, 0.5, 29.3, 0.6),
    "lwf_syn": _row("Table 1, LwF (replay: synthetic)", 16.7, 0.1, 49.8, 0.1, 8.9, 0.0, 32.3, 0.0, 4.7, 0.0, 19.7, 0.0),
    "deepinversion": _row("Table 1, DeepInversion", 18.8, 0.3, 53.2, 0.9, 10.9, 0.6, 37.9, 0.8, 5.7, 0.3, 23.6, 0.7),
    "abd": _row("Table 1, Ours", 43.9, 0.9, 78.6, 1.1, 33.7, 1.2, 69.6, 1.6, 20.0, 1.4, 52.5, 2.5),
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
