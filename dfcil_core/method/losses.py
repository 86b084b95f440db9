"""Every loss of the paper, as small pure functions (each has a hand-computed unit test).

Notation: `past` = number of classes of tasks 1..n-1, `seen` = classes of tasks 1..n.
Labels are positions in the class order, so past classes are logits[:, :past].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def upcast(t: torch.Tensor) -> torch.Tensor:
    """Losses in fp32 under bf16/fp16 autocast; float64 (the equivalence tests) stays float64."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


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
    ce = F.cross_entropy(upcast(logits), targets, reduction="none")
    if sample_weights is not None:
        ce = ce * sample_weights
    return ce.mean()


def softmax_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
               pad_to_student: bool = True) -> torch.Tensor:
    """Softmax distillation at temperature T (Eq. 9), as the authors compute it: the cross-entropy
    -sum_k p_teacher,k log p_student,k, summed over classes, mean over the batch (no T^2 factor).
    It differs from KL(p_teacher || p_student) by the teacher's entropy only, so the gradients are
    those of the KL.

    pad_to_student=True: the teacher's probabilities over the past classes are appended with zeros
    for the new classes (DeepInversion's synthetic term). False: both distributions over the past
    classes only (LwF, and DeepInversion's real-data term).
    """
    past = teacher_logits.shape[1]
    s = upcast(student_logits) if pad_to_student else upcast(student_logits[:, :past])
    log_q = F.log_softmax(s / temperature, dim=1)
    p = F.softmax(upcast(teacher_logits) / temperature, dim=1)
    return -(p * log_q[:, :past]).sum(dim=1).mean()  # padded entries of p are 0


def lwf_mc_loss(logits: torch.Tensor, targets: torch.Tensor, past: int,
                teacher_logits: torch.Tensor | None, saturating: bool = False) -> torch.Tensor:
    """iCaRL-style sigmoid loss without exemplars: BCE over all seen classes, with one-hot targets
    for the new classes and the old model's sigmoid outputs as targets for the past classes;
    summed over classes, averaged over the batch (the authors' BCELoss(reduction='sum') / batch).

    `saturating` computes it as the authors do, BCE on the sigmoid's *outputs*: where the sigmoid
    rounds to 1 (a logit above ~17 in float32) PyTorch clamps log(0) at -100 and the gradient is 0;
    where p(1 - p) < 1e-12 (a logit below ~-28) it is damped; a unit driven there early stays there.
    Otherwise BCE on the logits, whose gradient (p - y) never vanishes."""
    seen = logits.shape[1]
    logits = upcast(logits)
    target = F.one_hot(targets, seen).to(logits.dtype)
    if past > 0 and teacher_logits is not None:
        target[:, :past] = torch.sigmoid(upcast(teacher_logits))
    if saturating:
        with torch.autocast(logits.device.type, enabled=False):  # binary_cross_entropy refuses autocast
            return F.binary_cross_entropy(torch.sigmoid(logits), target, reduction="sum") / logits.shape[0]
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]


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
    diff = (upcast(student_feats) - upcast(teacher_feats)) @ upcast(old_head_weight).t()
    return diff.pow(2).sum(dim=1).mean() / old_head_weight.shape[0]


def ft_ce(head: torch.nn.Module, feats: torch.Tensor, targets: torch.Tensor, seen: int | None,
          class_weights: torch.Tensor) -> torch.Tensor:
    """Eq. 14: CE through the head on *detached* features (head-only), over the first `seen`
    classes, or over every head row with seen=None (the authors' code: its softmax also spans the
    rows of classes still to come)."""
    logits = head(feats.detach())
    if seen is not None:
        logits = logits[:, :seen]
    return weighted_ce(logits, targets, class_weights[targets])


# ---------------------------------------------------------------------------------------------
# R-DFCIL (Gao et al., ECCV 2022)


def triplet_cosines(e: torch.Tensor) -> torch.Tensor:
    """For every triplet (j, i, k) of rows of e, the cosine of the angle at e_j between e_i - e_j and
    e_k - e_j, flattened (N³ values; 0 where i = j or k = j)."""
    d = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # d[j, i] = unit(e_i - e_j)
    return torch.bmm(d, d.transpose(1, 2)).reshape(-1)


def rkd_angle(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD-Angle as R-DFCIL's code computes it (cl-lite's `RKDAngleLoss`): the L1 distance between the
    student's and the teacher's triplet cosines, mean over all N³ triplets (the RKD paper's Huber
    is not used). Both sides keep their graphs: R-DFCIL projects each through a learned layer."""
    return F.l1_loss(triplet_cosines(upcast(student)), triplet_cosines(upcast(teacher)))


def class_weighted_ce(logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """CE with a weight per class, normalised by the batch's total weight (torch's `weight=`):
    sum_i w[y_i] CE_i / sum_i w[y_i]; a common factor of the weights cancels."""
    return F.cross_entropy(upcast(logits), targets, weight=class_weights.to(upcast(logits).dtype))


def rdfcil_weights(past: int, seen: int) -> tuple[float, float]:
    """R-DFCIL's task-dependent factors: alpha = log2(C_new / 2 + 1), beta = sqrt(C_old / C_new)."""
    new = seen - past
    return math.log2(new / 2 + 1), math.sqrt(past / new)


# ---------------------------------------------------------------------------------------------
# Model inversion (Eq. 1-7)


def content_loss(logits_past: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 2: CE of logits / alpha_temp against their own argmax."""
    return F.cross_entropy(upcast(logits_past) / temperature, logits_past.argmax(dim=1))


def diversity_loss(logits_past: torch.Tensor) -> torch.Tensor:
    """Eq. 1 (normalised): 1 + sum_k pbar_k log pbar_k / log K, pbar the batch-mean softmax.
    0 when classes are predicted uniformly often, 1 when one class takes every sample."""
    k = logits_past.shape[1]
    if k < 2:
        return logits_past.new_zeros(())
    pbar = F.softmax(upcast(logits_past), dim=1).mean(dim=0)
    return 1.0 + (pbar * torch.log(pbar.clamp_min(1e-30))).sum() / math.log(k)


def bn_stat_kl_per_channel(mean_hat: torch.Tensor, var_hat: torch.Tensor, running_mean: torch.Tensor,
                           running_var: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 5 per channel: KL(N(mu, sigma^2) || N(mu_hat, sigma_hat^2)).

    (mu, sigma^2) are the BN layer's stored statistics, (mu_hat, sigma_hat^2) the batch's.
    """
    var = upcast(running_var) + eps
    var_hat = upcast(var_hat) + eps
    return 0.5 * torch.log(var_hat / var) - 0.5 * (1.0 - (var + (upcast(running_mean) - upcast(mean_hat)) ** 2) / var_hat)


def gaussian_kernel(size: int = 5, sigma: float = 1.0, form: str = "paper") -> torch.Tensor:
    """Normalised size x size blur. form="paper": exp(-d²/2σ²); form="reference": the authors'
    exp(-(d/2σ)²), i.e. a Gaussian of σ·√2."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    if form == "paper":
        g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    elif form == "reference":
        g = torch.exp(-((coords / (2 * sigma)) ** 2))
    else:
        raise ValueError(f"unknown kernel form {form!r}")
    k = torch.outer(g, g)
    return k / k.sum()


def smoothness_prior(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Eq. 6: mean squared difference between x and its reflect-padded Gaussian blur."""
    c, ks = x.shape[1], kernel.shape[-1]
    weight = kernel.to(device=x.device, dtype=x.dtype).expand(c, 1, ks, ks)
    pad = ks // 2
    blurred = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), weight, groups=c)
    return F.mse_loss(x, blurred)
