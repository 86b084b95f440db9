"""Section 5 and Appendix B after task 2: how far θ(2)'s penultimate features put synthetic task-1
images from real ones (MID, Eq. 10; unbiased MMD), beside how far they put real task-2 images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dfcil_core.foundations.config import Config
from dfcil_core.method import metrics
from dfcil_core.method.augment import DeviceAugment
from dfcil_core.method.runtime import task_seed
from dfcil_core.run.artifacts import Layout, task_arrays
from dfcil_core.run.checkpoints import load_generator, load_model

# Images per sample: every real test image of a task up to MAX_IMAGES, and SYNTHETIC_IMAGES synthetic
# ones, drawn and embedded in batches of BATCH (on the default profile a draw of 200 synthetic images
# moved the MID by ~0.2 from draw to draw; 1,000 more than halve that, at ~3 s of the evaluate stage).
MAX_IMAGES = 2000
SYNTHETIC_IMAGES = 1000
BATCH = 250


def feature_diagnosis(cfg: Config, method: str, out: Path, device: torch.device) -> dict[str, Any]:
    """MID and MMD between θ(2)'s penultimate features of real task-1 vs synthetic task-1 images,
    and of real task-1 vs real task-2 images (test images)."""
    lay = Layout(out)
    # Both in eval mode, as the replay samples and the accuracy is measured: in train mode BatchNorm
    # would normalise each sample by its own statistics and hide the very shifts MID measures.
    model = load_model(cfg, lay.model(method, 2), method, 2, device).eval()
    generator = load_generator(cfg, lay.generator(method, 2), method, 2, device).eval()
    norm = DeviceAugment(cfg.data.dataset, cfg.data.image_size, device).normalize
    t1, t2 = task_arrays(lay, 1), task_arrays(lay, 2)
    gen = torch.Generator(device=device).manual_seed(task_seed(cfg.training_seed, 2) + 90_000)

    def features(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([model.forward_with_features(b)[1] for b in x.split(BATCH)])

    with torch.no_grad():
        x_syn = torch.cat([generator.sample(BATCH, gen) for _ in range(-(-SYNTHETIC_IMAGES // BATCH))])
        feats = {
            "real_t1": features(norm(torch.from_numpy(t1["test_x"][:MAX_IMAGES]).to(device))),
            "syn_t1": features(x_syn),
            "real_t2": features(norm(torch.from_numpy(t2["test_x"][:MAX_IMAGES]).to(device))),
        }
    z = {k: v.float().cpu().numpy() for k, v in feats.items()}
    mid_syn, dropped_syn = metrics.mean_image_distance(z["real_t1"], z["syn_t1"])
    mid_real, dropped_real = metrics.mean_image_distance(z["real_t1"], z["real_t2"])
    return {
        "mid_real1_syn1": mid_syn,
        "mid_real1_real2": mid_real,
        # Both MIDs standardise by the real task-1 features, so they leave out the same dimensions.
        "mid_dims_left_out": max(dropped_syn, dropped_real),
        "feature_dims": int(z["real_t1"].shape[1]),
        "images": {k: int(v.shape[0]) for k, v in z.items()},
        "mmd_real1_syn1": metrics.mmd_rbf(z["real_t1"], z["syn_t1"]),
        "mmd_real1_real2": metrics.mmd_rbf(z["real_t1"], z["real_t2"]),
    }
