"""The image, built and run: scripts/build_image.sh builds the Dockerfile with buildah on a Debian
base, then the image runs the CLI, a KFP component's own command and the `tiny` profile as CI does.

Opt-in (DFCIL_IMAGE_TEST=1; .ci/run does not set it): it builds a 6.6 GB image, needs root and
buildah, and took 9-14 min on 2 shared cores, about as long as the rest of CI (docs/image.md).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VERSION = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)
IMAGE = f"localhost/dfcil:{VERSION}"
CONTAINER = "dfcil-image-test"
PINS = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#"))
TINY = ["run", "--preset", "tiny", "-S", "runtime.progress=false", "-S", "runtime.threads=2"]


def _skip_reason() -> str | None:
    if os.environ.get("DFCIL_IMAGE_TEST") != "1":
        return "set DFCIL_IMAGE_TEST=1 to build and run the image (9-14 min on 2 cores, ~30 GB of free disk)"
    if shutil.which("buildah") is None:
        return "buildah is not installed (apt-get install buildah debootstrap)"
    if os.geteuid() != 0:
        return "needs root (debootstrap and buildah's chroot isolation)"
    return None


SKIP = _skip_reason()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(SKIP is not None, reason=str(SKIP))]
ENV = {**os.environ, "STORAGE_DRIVER": os.environ.get("STORAGE_DRIVER", "vfs")}


def _buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["buildah", *args], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0 or not check, f"buildah {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def _run(*cmd: str, volumes: tuple[str, ...] = (), check: bool = True) -> subprocess.CompletedProcess:
    """`cmd` in the image, as the image's user, with its environment."""
    mounts = [a for v in volumes for a in ("--volume", v)]
    return _buildah("run", "--isolation", "chroot", *mounts, CONTAINER, "--", *cmd, check=check)


@pytest.fixture(scope="module")
def image():
    build = subprocess.run(["bash", "scripts/build_image.sh"], cwd=REPO, capture_output=True, text=True, env=ENV)
    assert build.returncode == 0, build.stdout + build.stderr
    print(build.stdout)
    _buildah("rm", CONTAINER, check=False)
    _buildah("from", "--name", CONTAINER, IMAGE)
    yield json.loads(_buildah("inspect", "--type", "image", IMAGE).stdout)
    _buildah("rm", CONTAINER, check=False)


def test_cli_runs_as_the_non_root_user(image):
    config = image["OCIv1"]["config"]
    assert config["User"] == "10001:10001" and config["Entrypoint"] == ["dfcil"]
    assert _run("id", "-u").stdout.strip() == "10001"
    assert "usage: dfcil" in _run("dfcil", "--help").stdout
    assert "tiny" in _run("dfcil", "presets").stdout.split()
    # no build tools in the image; pip stays (KFP's launcher runs it)
    for tool in ("gcc", "cc", "c++", "make"):
        assert _run("sh", "-c", f"command -v {tool}", check=False).returncode != 0, tool
    assert _run("sh", "-c", "command -v pip").stdout.strip() == "/opt/venv/bin/pip"


def test_versions_are_ci_versions(image):
    out = _run("python", "-c", "import sys, torch; print(torch.__version__, torch.version.cuda, sys.version_info[:2])")
    torch_version, cuda, python = out.stdout.split(" ", 2)
    import torch

    assert torch_version == torch.__version__ and torch_version.split("+")[0] == PINS["torch"]
    assert cuda == ".".join(PINS["nvidia-cuda-runtime"].split(".")[:2])  # a CUDA build: the runtime's x.y
    assert python.strip() == str(sys.version_info[:2])
    # the image's Python packages are this environment's (CI's .venv): the pins of requirements.txt
    # and what they pulled in unpinned (setuptools); only the installer tools and dfcil's form differ
    listed = _run("python", "-m", "pip", "list", "--format=freeze").stdout.splitlines()
    inside = _norm(dict(line.split("==") for line in listed))
    outside = _norm({d.metadata["Name"]: d.version for d in importlib.metadata.distributions()})
    assert inside.pop("dfcil") == VERSION and _norm(PINS).items() <= inside.items()
    tools = {"pip", "uv", "dfcil"}
    assert {k: v for k, v in inside.items() if k not in tools} == {k: v for k, v in outside.items() if k not in tools}


def _norm(versions: dict[str, str]) -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in versions.items()}


@pytest.fixture(scope="module")
def tiny(image, tmp_path_factory, data_root):
    """The `tiny` profile in the image and outside it (this interpreter), on the same thread count."""
    root = tmp_path_factory.mktemp("tiny")
    inside = root / "inside"
    inside.mkdir()
    os.chown(inside, 10001, 10001)
    r = _run("dfcil", *TINY, "--out", "/out/tiny", volumes=(f"{data_root}:/data:ro", f"{inside}:/out"), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-m", "dfcil_core", *TINY, "--out", str(root / "outside")], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return inside / "tiny", root / "outside"


def test_tiny_run_equals_the_run_outside(tiny):
    """metrics.json byte for byte: the same torch wheel on the same CPU and thread count
    (docs/image.md: which other outputs differ and why)."""
    inside, outside = tiny
    assert (inside / "metrics.json").read_bytes() == (outside / "metrics.json").read_bytes()


def test_kfp_component_command_runs_in_the_image(image, tiny, tmp_path, data_root):
    """The split component as a cluster runs it: the compiled spec's command and arguments (KFP's pip
    step, then kfp's executor) with an executor input naming local artifact paths; it writes the
    split that `dfcil run` wrote in the image."""
    from dfcil_core.foundations import config
    from pipelines.dfcil_pipeline import compile_pipeline

    spec = next(yaml.safe_load_all(compile_pipeline(config.load(preset="tiny"), tmp_path / "p.yaml",
                                                    image=IMAGE, gpu=False).read_text()))
    container = spec["deploymentSpec"]["executors"]["exec-split"]["container"]
    assert container["image"] == IMAGE
    out = tmp_path / "kfp"
    out.mkdir()
    os.chown(out, 10001, 10001)
    kinds = {"split_data": "system.Dataset", "workspace": "system.Model"}
    executor_input = {
        "inputs": {"parameterValues": {
            "config_yaml": spec["root"]["inputDefinitions"]["parameters"]["config_yaml"]["defaultValue"]}},
        "outputs": {"artifacts": {name: {"artifacts": [{"name": name, "type": {"schemaTitle": kind},
                                                        "uri": f"/out/{name}", "metadata": {}}]}
                                  for name, kind in kinds.items()},
                    "outputFile": "/out/executor_output.json"},
    }
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    r = _run(*container["command"], *args, volumes=(f"{data_root}:/data:ro", f"{out}:/out"), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    made = sorted(p.name for p in (out / "split_data").iterdir())
    assert made == ["meta.json", "task_1.npz", "task_2.npz"] and (out / "workspace").is_dir()
    for name in made:
        assert (out / "split_data" / name).read_bytes() == (tiny[0] / "split" / name).read_bytes(), name
