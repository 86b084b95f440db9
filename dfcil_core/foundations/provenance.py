"""Where a result came from: the package version and the git commit of the checkout that ran it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dfcil_core import __version__

UNKNOWN = "unknown"
# What decides the floating-point trajectory of a run (`method.runtime.device_fingerprint`): every
# results row carries these columns, and like is compared with like on `device_class`.
FINGERPRINT_COLUMNS = ["cpu_model", "cpu_isa", "threads", "gpu", "torch", "device_class"]


def git_commit() -> str:
    """The checkout's commit (12 hex digits), or "unknown" outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return sha[:12] or UNKNOWN


def code_version() -> str:
    """Package version plus the git commit when run from a checkout: `0.1.0+1a2b3c4d5e6f`."""
    sha = git_commit()
    return __version__ if sha == UNKNOWN else f"{__version__}+{sha}"


def commit_of(code_version_text: str) -> str:
    """The commit in a `code_version` of the form `X.Y.Z+sha`, else "unknown"."""
    return code_version_text.split("+", 1)[1] if "+" in code_version_text else UNKNOWN
