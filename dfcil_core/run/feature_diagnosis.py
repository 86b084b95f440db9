"""Section 5 and Appendix B after task 2: how far θ(2)'s penultimate features put synthetic task-1
images from real ones (MID, Eq. 10; MMD), beside how far they put real task-2 images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dfcil_core.foundations.config import Config
from dfcil_core.method import metrics
from dfcil_core.method.augment import DeviceAugment
from dfcil_core.method.runtime import task_seed
from dfcil_core.method.synthesis import sample_replay
from dfcil_core.run.artifacts import Layout, seen_classes, task_arrays
from dfcil_core.run.checkpoints import load_generator, load_model


def feature_diagnosis(cfg: Config, method: str, out: Path, device: torch.device,
                      meta: dict[str, Any], n: int = 500) -> dict[str, float]:
    """MID and MMD between θ(2)'s penultimate features of real task-1 vs synthetic task-1 images,
    and of real task-1 vs real task-2 images."""
    lay = Layout(out)
    model = load_model(cfg, lay.model(method, 2), method, 2, device)
    teacher = load_model(cfg, lay.model(method, 1), method, 1, device)
    generator = load_generator(cfg, lay.generator(method, 2), method, 2, device)
    norm = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device).normalize
    t1, t2 = task_arrays(lay, 1), task_arrays(lay, 2)
    past, _ = seen_classes(meta, 2)
    gen = torch.Generator(device=device).manual_seed(task_seed(cfg.training_seed, 2) + 90_000)
    with torch.no_grad():
        x_syn = torch.cat([sample_replay(generator, teacher, min(n, 250), past, gen)["x"]
                           for _ in range((n + 249) // 250)])[:n]
        feats = {
            "real_t1": model.forward_with_features(norm(torch.from_numpy(t1["test_x"][:n]).to(device)))[1],
            "syn_t1": model.forward_with_features(x_syn)[1],
            "real_t2": model.forward_with_features(norm(torch.from_numpy(t2["test_x"][:n]).to(device)))[1],
        }
    z = {k: v.float().cpu().numpy() for k, v in feats.items()}
    mid_syn, dropped_syn = metrics.mean_image_distance_detail(z["real_t1"], z["syn_t1"])
    mid_real, dropped_real = metrics.mean_image_distance_detail(z["real_t1"], z["real_t2"])
    return {
        "mid_real1_syn1": mid_syn,
        "mid_real1_real2": mid_real,
        # Both MIDs standardise by the real task-1 features, so they leave out the same dimensions.
        "mid_dims_left_out": max(dropped_syn, dropped_real),
        "feature_dims": int(z["real_t1"].shape[1]),
        "mmd_real1_syn1": metrics.mmd_rbf(z["real_t1"], z["syn_t1"]),
        "mmd_real1_real2": metrics.mmd_rbf(z["real_t1"], z["real_t2"]),
    }
