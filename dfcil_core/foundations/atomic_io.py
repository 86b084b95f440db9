"""Atomic file outputs with metadata: a stage never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dfcil_core.foundations.errors import DfcilError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise DfcilError(f"cannot write to {path.parent}: {err.strerror}") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        raise DfcilError(f"cannot write {path}: {err.strerror}") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: str | Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DfcilError(f"missing input: {path}") from None
    except json.JSONDecodeError:
        raise DfcilError(f"corrupt input (not JSON): {path}") from None


def save_torch(path: str | Path, obj: Any) -> None:
    import torch  # here, not at the top: reading JSON results (`dfcil report`) should not pay torch's import

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def load_torch(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise DfcilError(f"missing input: {p}")
    import torch

    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as err:
        raise DfcilError(f"corrupt checkpoint {p}: {type(err).__name__}") from None


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    # Straight to the temp file, not through memory: a task of ImageNet-50 is 2.7 GB of images.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise DfcilError(f"missing input: {p} (run the split stage first)")
    try:
        with np.load(p) as z:
            return {k: z[k] for k in z.files}
    except Exception as err:
        raise DfcilError(f"corrupt input {p}: {type(err).__name__}") from None


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def metadata(config_hash: str, seed: int, inputs: dict[str, str] | None = None,
             **extra: Any) -> dict[str, Any]:
    """What an output was made from. Nothing that differs between two runs of the same inputs (times,
    hosts, the commit): those go to the stage's log record, so that outputs are byte-stable."""
    return {"config_hash": config_hash, "seed": seed, "inputs": inputs or {}, **extra}
