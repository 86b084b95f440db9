"""The replay comparisons through the two drivers: `dvc repro` keeps the coreset and VAE artefacts
(coreset stages, E2E's and DGR's extra training outputs) and a re-run does nothing; kfp.local passes
them through its workspaces to the same accuracy matrices."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from dfcil_core.drivers.dvc_render import render
from dfcil_core.foundations import config
from dfcil_core.foundations.config import explicit_params
from tests.kfp_local_run import run_pipeline_locally
from tests.test_dvc import REPO, sh

REPLAY_METHODS = ["rehearsal", "lwf_coreset", "e2e", "bic", "dgr"]


@pytest.fixture(scope="module")
def replay_repo(tmp_path_factory, data_root):
    """The replay comparisons' stage graph at tiny sizes: coreset stages, E2E's and DGR's extra outputs."""
    repo = tmp_path_factory.mktemp("replayrepo")
    shutil.copytree(REPO / "dfcil_core", repo / "dfcil_core", ignore=shutil.ignore_patterns("__pycache__"))
    cfg = config.load(preset="tiny", overrides=[f"methods=[{','.join(REPLAY_METHODS)}]", "data.train_per_class=24",
                                                "data.test_per_class=10", "coreset.size=20"])
    (repo / "params.yaml").write_text(yaml.safe_dump(explicit_params(cfg), sort_keys=False))
    (repo / "dvc.yaml").write_text(render(cfg))
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "ci@dfcil"], ["git", "config", "user.name", "ci"],
                ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        sh(cmd, repo)
    return repo, sh(["dvc", "repro"], repo)


@pytest.mark.slow
def test_dvc_repro_keeps_the_coresets_and_vaes_and_a_rerun_does_nothing(replay_repo):
    repo, first = replay_repo
    ran = set(re.findall(r"Running stage '([^']+)'", first.stdout))
    assert {"coreset_random_t1", "coreset_e2e_t1", "coreset_bic_t1", "train_dgr_t1", "train_e2e_t2"} <= ran
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert {o["path"] for o in lock["train_dgr_t2"]["outs"]} == {"outputs/vaes/dgr/task_2.pt",
                                                                   "outputs/models/dgr/task_2.pt"}
    assert "outputs/coresets/random/task_1.json" in [d["path"] for d in lock["train_lwf_coreset_t2"]["deps"]]
    assert "Running stage" not in sh(["dvc", "repro"], repo).stdout
    doc = json.loads((repo / "outputs" / "metrics.json").read_text())
    assert set(doc["methods"]) == set(REPLAY_METHODS)


@pytest.mark.slow
def test_kfp_local_run_of_the_replay_methods_equals_dvc_repro(replay_repo, tmp_path, monkeypatch):
    """The coreset component and the workspace's coresets/ and vaes/ through kfp.local: the same
    accuracy matrices as `dvc repro`."""
    repo, _ = replay_repo
    cfg = config.load(repo / "params.yaml")
    kfp_out = run_pipeline_locally(cfg, tmp_path, monkeypatch)
    for m in REPLAY_METHODS:
        rel = Path("eval") / m / "accuracy_matrix.json"
        assert (kfp_out / rel).read_text() == (repo / "outputs" / rel).read_text(), m
    assert list((tmp_path / "kfp_root").rglob("coresets/e2e/task_1.json"))
