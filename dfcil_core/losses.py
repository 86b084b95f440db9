"""Every loss of the paper, as small pure functions (each has a hand-computed unit test).

Notation: `past` = number of classes of tasks 1..n-1, `seen` = classes of tasks 1..n.
Labels are positions in the class order, so past classes are logits[:, :past].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Classification


def balancing_weights(past: int, seen: int, enabled: bool = True,
                      device: torch.device | None = None) -> torch.Tensor:
    """Per-class task-balancing weights: past classes |past|/|seen|, new ones 1 - |past|/|seen|."""
    w = torch.ones(seen, device=device)
    if enabled and past > 0:
        r = past / seen
        w[:past] = r
        w[past:] = 1.0 - r
    return w


def weighted_ce(logits: torch.Tensor, targets: torch.Tensor,
                sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of per-sample CE times its weight (the authors' `criterion`)."""
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    if sample_weights is not None:
        ce = ce * sample_weights
    return ce.mean()


def softmax_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
               pad_to_student: bool = True) -> torch.Tensor:
    """KL(p_teacher || p_student) at temperature T, mean over the batch (Eq. 9).

    pad_to_student=True: the teacher's probabilities over the past classes are appended with zeros
    for the new classes (DeepInversion's zero-padding). False: both distributions over past classes
    only (classic LwF).
    """
    past = teacher_logits.shape[1]
    s = student_logits.float() if pad_to_student else student_logits[:, :past].float()
    log_q = F.log_softmax(s / temperature, dim=1)
    p = F.softmax(teacher_logits.float() / temperature, dim=1)
    if pad_to_student:
        p = F.pad(p, (0, s.shape[1] - past))
    # 0 * log 0 := 0 for the padded entries.
    kl = torch.where(p > 0, p * (torch.log(p.clamp_min(1e-30)) - log_q), torch.zeros_like(p))
    return kl.sum(dim=1).mean()


def lwf_mc_loss(logits: torch.Tensor, targets: torch.Tensor, past: int,
                teacher_logits: torch.Tensor | None) -> torch.Tensor:
    """iCaRL-style sigmoid loss without exemplars: BCE over all seen classes, with one-hot targets
    for the new classes and the old model's sigmoid outputs as targets for the past classes."""
    seen = logits.shape[1]
    target = F.one_hot(targets, seen).float()
    if past > 0 and teacher_logits is not None:
        target[:, :past] = torch.sigmoid(teacher_logits.float())
    return F.binary_cross_entropy_with_logits(logits.float(), target)


# ---------------------------------------------------------------------------------------------
# ABD (Eq. 11-15)


def local_ce(logits: torch.Tensor, targets: torch.Tensor, past: int,
             class_weights: torch.Tensor) -> torch.Tensor:
    """Eq. 11: CE over the new task's heads only (real data; targets are all new classes)."""
    return weighted_ce(logits[:, past:], targets - past, class_weights[targets])


def importance_weighted_feature_kd(student_feats: torch.Tensor, teacher_feats: torch.Tensor,
                                   old_head_weight: torch.Tensor) -> torch.Tensor:
    """Eq. 13: ||W z_student - W z_teacher||^2 through the frozen old heads W (past classes),
    summed over classes, averaged over the batch, divided by the number of past classes."""
    diff = (student_feats.float() - teacher_feats.float()) @ old_head_weight.float().t()
    return diff.pow(2).sum(dim=1).mean() / old_head_weight.shape[0]


def ft_ce(head: torch.nn.Module, feats: torch.Tensor, targets: torch.Tensor, seen: int,
          class_weights: torch.Tensor) -> torch.Tensor:
    """Eq. 14: CE over all seen classes through the head on *detached* features (head-only)."""
    logits = head(feats.detach())[:, :seen]
    return weighted_ce(logits, targets, class_weights[targets])


# ---------------------------------------------------------------------------------------------
# Model inversion (Eq. 1-7)


def content_loss(logits_past: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 2: CE of logits / alpha_temp against their own argmax."""
    return F.cross_entropy(logits_past.float() / temperature, logits_past.argmax(dim=1))


def diversity_loss(logits_past: torch.Tensor) -> torch.Tensor:
    """Eq. 1 (normalised): 1 + sum_k pbar_k log pbar_k / log K, pbar the batch-mean softmax.
    0 when classes are predicted uniformly often, 1 when one class takes every sample."""
    k = logits_past.shape[1]
    if k < 2:
        return logits_past.new_zeros(())
    pbar = F.softmax(logits_past.float(), dim=1).mean(dim=0)
    return 1.0 + (pbar * torch.log(pbar.clamp_min(1e-30))).sum() / math.log(k)


def bn_stat_kl_per_channel(mean_hat: torch.Tensor, var_hat: torch.Tensor, running_mean: torch.Tensor,
                           running_var: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 5 per channel: KL(N(mu, sigma^2) || N(mu_hat, sigma_hat^2)).

    (mu, sigma^2) are the BN layer's stored statistics, (mu_hat, sigma_hat^2) the batch's.
    """
    var = running_var.float() + eps
    var_hat = var_hat.float() + eps
    return 0.5 * torch.log(var_hat / var) - 0.5 * (1.0 - (var + (running_mean.float() - mean_hat.float()) ** 2) / var_hat)


def bn_stat_kl(mean_hat: torch.Tensor, var_hat: torch.Tensor, running_mean: torch.Tensor,
               running_var: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 5 for one layer: the per-channel KL averaged over channels."""
    return bn_stat_kl_per_channel(mean_hat, var_hat, running_mean, running_var, eps).mean()


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    k = torch.outer(g, g)
    return k / k.sum()


def smoothness_prior(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Eq. 6: mean squared difference between x and its reflect-padded Gaussian blur."""
    c, ks = x.shape[1], kernel.shape[-1]
    weight = kernel.to(device=x.device, dtype=x.dtype).expand(c, 1, ks, ks)
    pad = ks // 2
    blurred = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), weight, groups=c)
    return F.mse_loss(x, blurred)
