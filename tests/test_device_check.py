"""`benchmarks/device_check.sh` from a clone, on the CPU (no GPU is lent to the project for now):
every step runs, and it says what it measured and what it projects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "device_check.sh"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "DEVICE": "cpu", "OUT": str(tmp_path / "out"), "DFCIL_SUBSET": str(tmp_path / "c100.npz"),
         "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=e, capture_output=True, text=True)


@pytest.mark.slow
def test_device_check_runs_on_the_cpu_and_says_what_it_measured_and_projected(tmp_path, data_root):
    r = _run(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert summary == r.stdout
    lines = summary.splitlines()
    assert lines[0].startswith("device_check ") and lines[0].endswith(
        f"on cpu: measured throughput profile (exit codes and output: {tmp_path / 'out' / 'log.txt'})")
    assert lines[1].startswith(f"measured {tmp_path / 'out' / 'throughput.json'}: cpu ")
    assert lines[2].startswith(f"measured {tmp_path / 'out' / 'profile.json'}: whole short ABD run ")
    assert lines[3] == f"projected from {tmp_path / 'out' / 'throughput.json'} (not run end to end):"
    assert any(line.startswith("| Table 1 (CIFAR-100, 5/10/20 tasks, 8 methods with DGR) | 9 | ") for line in lines)
    assert (tmp_path / "c100.npz").is_file()  # the subset, made from the data root where there is one


def test_device_check_without_the_packages_says_how_to_prepare(tmp_path):
    bare = shutil.which("python3", path="/usr/bin:/bin")
    if bare is None or subprocess.run([bare, "-c", "import pydantic"], capture_output=True).returncode == 0:
        pytest.skip("needs a Python without pydantic, as the device image is")
    r = _run(tmp_path, PYTHON=bare)
    assert r.returncode == 2
    assert r.stdout.splitlines() == ["device_check: this Python lacks dfcil's packages (pydantic?): run 'bash "
                                     "benchmarks/device_check.sh --prepare' where a registry is, and carry .whl"]
