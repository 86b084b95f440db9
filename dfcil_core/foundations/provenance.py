"""Where a result came from: the package version and the git commit of the checkout that ran it."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

from dfcil_core import __version__

UNKNOWN = "unknown"
# What decides the floating-point trajectory of a run (`method.runtime.device_fingerprint`): every
# results row carries these columns, and like is compared with like on `device_class`.
FINGERPRINT_COLUMNS = ["cpu_model", "cpu_isa", "threads", "gpu", "torch", "device_class"]


@functools.cache
def git_commit() -> str:
    """The checkout's commit (12 hex digits), or "unknown" outside a git checkout. Read once per process:
    a run that lasts hours records the commit it started from, though the checkout moves under it."""
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


# A CPU device class, `cpu <ISA> | <N> threads | torch <version>` (`method.runtime.device_fingerprint`);
# N may be "1+2" where a lineage's stages ran on different thread counts.
_CPU_CLASS = re.compile(r"^(cpu \S+) \| ([0-9+]+) threads \| (torch .+)$")


def combine_device_classes(classes: list[str]) -> str:
    """One device class for a lineage whose stages ran on `classes`: the class itself where all agree;
    `cpu AVX512 | 1+2 threads | torch X` where only the thread count differs; else the classes joined
    with " + " (a lineage that moved machines)."""
    distinct = sorted(set(classes))
    if not distinct:
        raise ValueError("no device class to combine")
    if len(distinct) == 1:
        return distinct[0]
    parts = [_CPU_CLASS.match(c) for c in distinct]
    if all(parts) and len({(p[1], p[3]) for p in parts}) == 1:
        threads = sorted({int(n) for p in parts for n in p[2].split("+")})
        return f"{parts[0][1]} | {'+'.join(map(str, threads))} threads | {parts[0][3]}"
    return " + ".join(distinct)


def machine_class(device_class: str) -> str:
    """`device_class` without its thread count (`cpu AVX512 | torch X`): the thread count changes a run's
    reduction order, and so its trajectory, as a training seed does, but not what it is measured on."""
    m = _CPU_CLASS.match(device_class)
    return f"{m[1]} | {m[3]}" if m else device_class


def thread_counts(device_class: str) -> list[int]:
    """The thread counts a CPU device class names ([] for another class)."""
    m = _CPU_CLASS.match(device_class)
    return [int(n) for n in m[2].split("+")] if m else []


def with_threads(device_class: str, threads: int) -> str:
    """A CPU device class with its thread count set to `threads` (another class unchanged)."""
    m = _CPU_CLASS.match(device_class)
    return f"{m[1]} | {threads} threads | {m[3]}" if m else device_class
