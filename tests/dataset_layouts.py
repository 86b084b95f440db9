"""Small (or full-sized) Tiny-ImageNet and ImageNet folders in the releases' real on-disk layouts, of
generated JPEGs: the real datasets are not on this machine. Used by the tests and by
`benchmarks/split_memory.py`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_WNIDS = ["n01443537", "n01629819", "n01641577", "n01644900", "n01698640", "n01742172"]
IMNET_WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331"]


def made_up_wnids(n: int) -> list[str]:
    """`n` distinct wnid-shaped names (n + 8 digits), for full-sized layouts."""
    return [f"n{10_000_000 + 7919 * i:08d}" for i in range(n)]


def _jpeg(path: Path, h: int, w: int, rng: np.random.RandomState) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    base = rng.randint(0, 256, (1, 1, 3))  # a per-image colour, smooth enough for JPEG to keep it
    img = np.clip(base + rng.randint(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, "JPEG", quality=95)


def write_tiny_imagenet(root: Path, per_class: int = 6, val_per_class: int = 3,
                        wnids: list[str] | None = None) -> Path:
    """tiny-imagenet/tiny-imagenet-200/{train/<wnid>/images/*.JPEG, val/images/*, val/val_annotations.txt}."""
    wnids = wnids or TINY_WNIDS
    rng = np.random.RandomState(0)
    base = root / "tiny-imagenet" / "tiny-imagenet-200"
    lines = []
    for w in reversed(wnids):  # written out of order: the reader sorts
        for i in range(per_class):
            _jpeg(base / "train" / w / "images" / f"{w}_{i}.JPEG", 64, 64, rng)
        for _ in range(val_per_class):
            name = f"val_{len(lines)}.JPEG"
            _jpeg(base / "val" / "images" / name, 64, 64, rng)
            lines.append(f"{name}\t{w}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tclass {i}, other name\n" for i, w in enumerate(wnids)))
    return root


def write_imagenet(root: Path, per_class: int = 5, val_per_class: int = 2, wnids: list[str] | None = None) -> Path:
    """ilsvrc/{train,val}/<wnid>/*.JPEG, images of ImageNet's varied sizes."""
    rng = np.random.RandomState(1)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for w in wnids or IMNET_WNIDS:
            for i in range(n):
                _jpeg(root / "ilsvrc" / split / w / f"{w}_{i}.JPEG", int(rng.randint(240, 330)), int(rng.randint(240, 330)), rng)
    return root
