"""Datasets, the paper's class-order protocol and task splits.

All datasets come out as uint8 NCHW arrays with integer labels. Labels inside the pipeline are
*positions in the shuffled class order* (as in the authors' code): task t owns a contiguous block
of heads, so "classes seen so far" is always a prefix of the logits.

On disk, as the authors' loaders read them (under the data root):
- CIFAR-10/100: the python-pickle releases (`cifar-100-python/`, `cifar-10-batches-py/`), md5-checked;
- Tiny-ImageNet: `tiny-imagenet/tiny-imagenet-200/train/<wnid>/images/*.JPEG` (class ids: the sorted
  wnids) and `val/images/*` labelled by `val/val_annotations.txt` (the test split), 64 px;
- ImageNet-50: `ilsvrc/train/<wnid>/*.JPEG` and `ilsvrc/val/<wnid>/*.JPEG` (class ids: the sorted wnids,
  the standard ILSVRC indices; the authors' `glob` order depends on the filesystem). Only the run's
  classes are decoded, each image resized to 256 px on its shorter side (as their test transform) and
  cropped to its central 256 x 256: the test view is its central 224, the training view a random
  resized crop of it (`dfcil_core.method.augment`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfcil_core.foundations.config import DATASETS
from dfcil_core.foundations.errors import DfcilError

DATA_ROOT_ENV = "DFCIL_DATA_ROOT"

# Per-channel statistics of the training sets (normalisation after crop + flip).
CHANNEL_STATS = {
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "tinyimagenet": ((0.4389, 0.4114, 0.3682), (0.2402, 0.2350, 0.2268)),  # the authors' values
    "imagenet50": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
IMAGENET_STORED = DATASETS["imagenet50"].stored_size  # the side ImageNet images are kept at (shorter side, central square)


@dataclass
class ImageArrays:
    """uint8 images (N, C, H, W) and int64 labels (N,)."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str] | None = None  # name of each original class id, when the dataset has them


def data_root(configured: str | None) -> Path:
    if configured:
        return Path(configured)
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


def class_order(num_classes: int, seed: int, fixed_seed: int | None = None) -> list[int]:
    """The paper's protocol: trial r shuffles the class ids with random.seed(r); ImageNet takes the
    order of prior work instead, numpy's shuffle under seed `fixed_seed` (1993) for every trial."""
    order = list(range(num_classes))
    if fixed_seed is not None:
        np.random.RandomState(fixed_seed).shuffle(order)
        return order
    random.seed(seed)
    random.shuffle(order)
    return order


def task_class_blocks(sizes: list[int]) -> list[list[int]]:
    """Positions (remapped labels) owned by each task, given the classes per task."""
    blocks, start = [], 0
    for s in sizes:
        blocks.append(list(range(start, start + s)))
        start += s
    return blocks


@dataclass(frozen=True)
class CifarRelease:
    """A python-pickle release of CIFAR (https://www.cs.toronto.edu/~kriz/cifar.html): its folder, its
    train and test files with their md5, the class-name file (md5, key) and the label key."""

    folder: str
    train: tuple[tuple[str, str], ...]
    test: tuple[tuple[str, str], ...]
    meta: tuple[str, str, str]
    label_key: str


CIFAR_RELEASES = {
    "cifar100": CifarRelease("cifar-100-python", (("train", "16019d7e3df5f24257cddd939b257f8d"),),
                             (("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),),
                             ("meta", "7973b15100ade9c7d40fb424638fde48", "fine_label_names"), "fine_labels"),
    "cifar10": CifarRelease("cifar-10-batches-py",
                            (("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                             ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                             ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                             ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                             ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb")),
                            (("test_batch", "40351d587109b95175f43aff81a1287e"),),
                            ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888", "label_names"), "labels"),
}


def _md5_matches(path: Path, expected: str) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest() == expected


def _read_cifar(release: CifarRelease, root: Path) -> tuple[ImageArrays, ImageArrays] | None:
    """Train and test arrays of a release under `root`, or None when a file is missing or corrupt.
    Read here rather than through torchvision's CIFAR classes: importing torchvision is ~3.5 s of
    the split stage's start on a CPU. Only files whose md5 matches are unpickled."""
    folder = root / release.folder
    meta_file, meta_md5, names_key = release.meta
    if not all(_md5_matches(folder / f, md5) for f, md5 in (*release.train, *release.test, (meta_file, meta_md5))):
        return None

    def unpickle(name: str) -> dict:
        with open(folder / name, "rb") as f:
            return pickle.load(f, encoding="latin1")

    classes = list(unpickle(meta_file)[names_key])
    out = []
    for files in (release.train, release.test):
        parts = [unpickle(name) for name, _ in files]
        x = np.vstack([p["data"] for p in parts]).reshape(-1, 3, 32, 32)  # rows are R, G, B planes: NCHW
        y = np.asarray([label for p in parts for label in p[release.label_key]], dtype=np.int64)
        out.append(ImageArrays(x=np.ascontiguousarray(x, dtype=np.uint8), y=y, classes=classes))
    return out[0], out[1]


def _load_cifar(name: str, root: Path, download: bool) -> tuple[ImageArrays, ImageArrays]:
    release = CIFAR_RELEASES[name]
    arrays = _read_cifar(release, root)
    if arrays is not None:
        return arrays
    if not download:
        raise DfcilError(f"{name} not found or corrupt under {root} (set ${DATA_ROOT_ENV} to the folder "
                         f"holding {release.folder}/, or enable data.download)")
    from torchvision import datasets  # only to download (and unpack) the release

    cls = datasets.CIFAR100 if name == "cifar100" else datasets.CIFAR10
    try:
        cls(root=str(root), train=True, download=True)
    except Exception as err:  # network or checksum failure
        raise DfcilError(f"{name} not found or corrupt under {root} and the download failed "
                         f"({type(err).__name__}); set ${DATA_ROOT_ENV} to a folder holding {release.folder}/") from None
    arrays = _read_cifar(release, root)
    if arrays is None:
        raise DfcilError(f"{name}: the download into {root} did not leave the expected files ({release.folder}/)")
    return arrays


def _load_imagefolder(root: Path, size: int) -> tuple[ImageArrays, ImageArrays]:
    """`root/train/<class>/*` and `root/val/<class>/*` (Tiny-ImageNet / ImageNet subsets)."""
    from PIL import Image
    from torchvision import datasets

    out = []
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise DfcilError(f"imagefolder: {folder} not found (set ${DATA_ROOT_ENV} or data.root)")
        ds = datasets.ImageFolder(str(folder))
        xs = np.empty((len(ds.samples), 3, size, size), dtype=np.uint8)
        for i, (path, _) in enumerate(ds.samples):
            with Image.open(path) as img:
                img = img.convert("RGB").resize((size, size), Image.BILINEAR)
                xs[i] = np.asarray(img).transpose(2, 0, 1)
        out.append(ImageArrays(x=xs, y=np.asarray(ds.targets, dtype=np.int64), classes=list(ds.classes)))
    return out[0], out[1]


def _decode(paths: list[Path], side: int | None, what: str) -> np.ndarray:
    """JPEGs to one uint8 NCHW array, in parallel (PIL decodes outside the GIL). `side`: each image
    resized to `side` on its shorter side (bilinear, as torchvision's Resize) and cropped to its central
    square; None: the images must already be all the same size."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def one(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if side is not None:
                    w, h = img.size
                    scale = side / min(w, h)
                    nw, nh = max(side, round(w * scale)), max(side, round(h * scale))
                    img = img.resize((nw, nh), Image.BILINEAR)
                    left, top = int(round((nw - side) / 2.0)), int(round((nh - side) / 2.0))
                    img = img.crop((left, top, left + side, top + side))
                return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
        except OSError as err:
            raise DfcilError(f"{what}: cannot read image {path} ({type(err).__name__})") from None

    if not paths:
        return np.zeros((0, 3, side or 0, side or 0), np.uint8)
    # Decoded straight into one preallocated array: the peak is the dataset once (ImageNet-50: 13 GB at
    # 256 px), not the per-image arrays and their stacked copy.
    first = one(paths[0])
    out = np.empty((len(paths), *first.shape), np.uint8)
    out[0] = first

    def fill(i: int) -> tuple[int, ...] | None:
        image = one(paths[i])
        if image.shape != first.shape:
            return image.shape
        out[i] = image
        return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        odd = sorted({shape for shape in pool.map(fill, range(1, len(paths))) if shape is not None})
    if odd:
        raise DfcilError(f"{what}: images of different sizes {[first.shape, *odd][:3]} (expected one size)")
    return out


# The releases' folders under the data root
TINY_IMAGENET_DIR = Path("tiny-imagenet", "tiny-imagenet-200")
IMAGENET_DIR = Path("ilsvrc")


def _load_tinyimagenet(root: Path, only: set[int] | None) -> tuple[ImageArrays, ImageArrays]:
    """The tiny-imagenet-200 release: sorted wnids as class ids; train images per class sorted by
    name (the authors' walk takes the filesystem's order); val images in val_annotations.txt's order."""
    base = root / TINY_IMAGENET_DIR
    train_dir, val_dir = base / "train", base / "val"
    if not train_dir.is_dir():
        raise DfcilError(f"tinyimagenet: {train_dir} not found (set ${DATA_ROOT_ENV} to the folder holding "
                         "tiny-imagenet/tiny-imagenet-200/)")
    wnids = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    annotations = val_dir / "val_annotations.txt"
    if not annotations.is_file():
        raise DfcilError(f"tinyimagenet: {annotations} not found: the val split has no labels")
    index = {w: i for i, w in enumerate(wnids)}
    keep = set(range(len(wnids))) if only is None else only
    train_paths, train_y = [], []
    for w in wnids:
        if index[w] in keep:
            files = sorted((train_dir / w / "images").glob("*.JPEG"))
            train_paths += files
            train_y += [index[w]] * len(files)
    val_paths, val_y = [], []
    for n, line in enumerate(annotations.read_text().strip().splitlines(), start=1):
        parts = line.strip().split("\t")
        if len(parts) < 2:
            raise DfcilError(f"tinyimagenet: {annotations} line {n} is not '<file>\\t<wnid>...'")
        if parts[1] not in index:
            raise DfcilError(f"tinyimagenet: {annotations} line {n}: wnid {parts[1]} is not a training class")
        if index[parts[1]] in keep:
            val_paths.append(val_dir / "images" / parts[0])
            val_y.append(index[parts[1]])
    names = _wnid_names(base / "words.txt", wnids)
    train = ImageArrays(_decode(train_paths, None, "tinyimagenet"), np.asarray(train_y, np.int64), names)
    test = ImageArrays(_decode(val_paths, None, "tinyimagenet"), np.asarray(val_y, np.int64), names)
    return train, test


def _wnid_names(words: Path, wnids: list[str]) -> list[str]:
    """Readable class names from a wnid -> words file where there is one, else the wnids."""
    if not words.is_file():
        return wnids
    table = dict(line.split("\t", 1) for line in words.read_text().splitlines() if "\t" in line)
    return [table.get(w, w).split(",")[0].strip() for w in wnids]


def _load_imagenet(root: Path, only: set[int] | None) -> tuple[ImageArrays, ImageArrays]:
    """ILSVRC train / val folders of one subfolder per wnid: sorted wnids as class ids; only the
    classes in `only` are decoded."""
    base = root / IMAGENET_DIR
    train_dir, val_dir = base / "train", base / "val"
    for d in (train_dir, val_dir):
        if not d.is_dir():
            raise DfcilError(f"imagenet50: {d} not found (set ${DATA_ROOT_ENV} to the folder holding ilsvrc/)")
    wnids = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    stray = sorted({p.name for p in val_dir.iterdir() if p.is_dir()} - set(wnids))
    if stray:
        raise DfcilError(f"imagenet50: {val_dir / stray[0]} is a class the training folder does not have")
    keep = set(range(len(wnids))) if only is None else only
    out = []
    for folder in (train_dir, val_dir):
        paths, y = [], []
        for i, w in enumerate(wnids):
            if i in keep:
                files = sorted(p for p in (folder / w).glob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
                paths += files
                y += [i] * len(files)
        out.append(ImageArrays(_decode(paths, IMAGENET_STORED, "imagenet50"), np.asarray(y, np.int64), wnids))
    return out[0], out[1]


def class_count(name: str, root: str | None) -> int:
    """How many classes the dataset has, without decoding an image (the folders' subfolders)."""
    r = data_root(root)
    if name in ("cifar100", "cifar10"):
        return DATASETS[name].classes
    folder = {"tinyimagenet": r / TINY_IMAGENET_DIR / "train", "imagenet50": r / IMAGENET_DIR / "train",
              "imagefolder": r / "train"}[name]
    if not folder.is_dir():
        raise DfcilError(f"{name}: {folder} not found (set ${DATA_ROOT_ENV} or data.root)")
    return sum(1 for p in folder.iterdir() if p.is_dir())


def load_dataset(name: str, root: str | None, download: bool, image_size: int,
                 only: set[int] | None = None) -> tuple[ImageArrays, ImageArrays]:
    """Train and test arrays of a dataset (for the folder datasets, only the class ids in `only`
    are decoded; the arrays then hold those classes alone)."""
    r = data_root(root)
    if name in ("cifar100", "cifar10"):
        if image_size != 32:
            raise DfcilError(f"data.image_size: {name} images are 32 px, not {image_size}")
        return _load_cifar(name, r, download)
    if name == "tinyimagenet":
        return _load_tinyimagenet(r, only)
    if name == "imagenet50":
        return _load_imagenet(r, only)
    if name == "imagefolder":
        return _load_imagefolder(r, image_size)
    raise DfcilError(f"data.dataset: unknown dataset {name!r}")


def select_task(arrays: ImageArrays, order: list[int], positions: list[int],
                per_class: int | None) -> ImageArrays:
    """Images of the classes at `positions` of `order`, relabelled to those positions.

    Keeps the first `per_class` images of each class in dataset order (deterministic).
    """
    xs, ys = [], []
    for pos in positions:
        idx = np.flatnonzero(arrays.y == order[pos])
        if per_class is not None:
            idx = idx[:per_class]
        xs.append(arrays.x[idx])
        ys.append(np.full(len(idx), pos, dtype=np.int64))
    return ImageArrays(x=np.concatenate(xs), y=np.concatenate(ys))
