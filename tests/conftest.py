"""Shared fixtures. Real CIFAR-100 comes from $DFCIL_DATA_ROOT (CI: ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("DFCIL_DATA_ROOT", DEFAULT_DATA))
    if not (root / "cifar-100-python" / "train").is_file():
        pytest.fail(f"CIFAR-100 not found under {root}; set DFCIL_DATA_ROOT")
    os.environ["DFCIL_DATA_ROOT"] = str(root)
    return root
