"""Shared fixtures. Real CIFAR-100 comes from $DFCIL_DATA_ROOT (CI: ../shared/data)."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `.ci/run` runs the suite on one pytest-xdist worker per core: each worker, and every subprocess
    # it starts (dvc repro, kfp.local, the CLI), then computes on one thread, so the workers do not
    # oversubscribe the cores. Set before anything imports torch.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
_PRINT = builtins.print


@pytest.fixture(autouse=True)
def _restore_print():
    """kfp.local wraps `builtins.print` in an indenting function for each task and restores it in a
    `finally`; its ParallelFor runs tasks on a thread pool, so overlapping wrap/restore pairs can leave
    an indenting print behind (kfp 2.14, logging_utils.indented_print). Undo that after every test so
    a later test's printed output is not shifted by four spaces."""
    yield
    builtins.print = _PRINT


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("DFCIL_DATA_ROOT", DEFAULT_DATA))
    if not (root / "cifar-100-python" / "train").is_file():
        pytest.fail(f"CIFAR-100 not found under {root}; set DFCIL_DATA_ROOT")
    os.environ["DFCIL_DATA_ROOT"] = str(root)
    return root


@pytest.fixture(scope="session")
def ref():
    """The authors' implementation (skips, with the reason, where it is absent)."""
    from tests.reference_impl import reference

    return reference()


@pytest.fixture
def float64():
    """float64 as the default dtype for the test (equivalence to 1e-5 needs it), restored after."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
