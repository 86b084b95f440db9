"""`dvc repro` of the default profile in a temporary git + DVC repo, and an S3 remote on loopback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dfcil_core.drivers.dvc_render import render
from dfcil_core.drivers.results_sink import S3ResultsSink
from dfcil_core.foundations import config
from dfcil_core.foundations.config import explicit_params
from dfcil_core.foundations.errors import DfcilError
from tests.kfp_local_run import run_pipeline_locally
from tests.s3_server import s3_server

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    e = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
    r = subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def test_checked_in_dvc_yaml_and_params_are_in_sync():
    cfg = config.load(REPO / "params.yaml")
    assert (REPO / "dvc.yaml").read_text() == render(cfg)
    assert yaml.safe_load((REPO / "params.yaml").read_text()) == explicit_params(cfg)


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory, data_root):
    repo = tmp_path_factory.mktemp("dvcrepo")
    shutil.copytree(REPO / "dfcil_core", repo / "dfcil_core", ignore=shutil.ignore_patterns("__pycache__"))
    # The default profile's stage graph (its methods), at the tiny profile's sizes: the checked-in
    # params.yaml runs for minutes (test_checked_in_dvc_yaml_and_params_are_in_sync covers those files).
    cfg = config.load(preset="tiny", overrides=[f"methods=[{','.join(config.load(REPO / 'params.yaml').methods)}]",
                                                "data.train_per_class=24", "data.test_per_class=10", "synthesis.steps=3"])
    (repo / "params.yaml").write_text(yaml.safe_dump(explicit_params(cfg), sort_keys=False))
    (repo / "dvc.yaml").write_text(render(cfg))
    sh(["git", "init", "-q"], repo)
    sh(["git", "config", "user.email", "ci@dfcil"], repo)
    sh(["git", "config", "user.name", "ci"], repo)
    sh(["dvc", "init", "-q"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "init"], repo)
    r = sh(["dvc", "repro"], repo)
    return repo, r


def test_dvc_repro_of_the_default_stage_graph(dvc_repo):
    repo, first = dvc_repo
    assert "Running stage 'evaluate'" in first.stdout
    assert (repo / "dvc.lock").is_file()
    metrics = sh(["dvc", "metrics", "show"], repo).stdout
    assert "a_n" in metrics and "omega" in metrics and "abd" in metrics
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], repo).stdout
    second = sh(["dvc", "repro"], repo).stdout
    assert "Running stage" not in second
    plots = sh(["dvc", "plots", "show", "-o", str(repo / "plots_html")], repo)
    assert (repo / "plots_html" / "index.html").is_file(), plots.stdout


def test_dvc_push_pull_roundtrip_and_results_sink(dvc_repo, tmp_path):
    repo, _ = dvc_repo
    with s3_server() as server:
        import boto3

        boto3.client("s3").create_bucket(Bucket="dfcil")
        sh(["dvc", "remote", "add", "-f", "-d", "store", "s3://dfcil/dvcstore"], repo)
        sh(["dvc", "remote", "modify", "store", "endpointurl", server.url], repo)
        sh(["git", "add", "-A"], repo)
        sh(["git", "commit", "-qm", "results"], repo)
        sh(["dvc", "push"], repo, env=server.env())
        clone = tmp_path / "clone"
        sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
        sh(["dvc", "pull"], clone, env=server.env())
        for rel in ["outputs/split/meta.json", "outputs/split/task_1.npz", "outputs/split/task_2.npz",
                    "outputs/results/runs.csv", "outputs/results/tasks.csv"]:
            assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
        # append-only results sink through boto3
        sink = S3ResultsSink("s3://dfcil/results")
        run_a = sink.append_tables(repo / "outputs" / "results", "run-a")
        run_b = sink.append_tables(repo / "outputs" / "results")
        assert sink.list_runs() == sorted([run_a, run_b])
        table = sink.read_table()
        n_methods = len(config.load(repo / "params.yaml").methods)
        assert len(table) == 2 * n_methods and set(table["run_id"]) == {run_a, run_b}
        with pytest.raises(DfcilError, match="append-only"):
            sink.append_tables(repo / "outputs" / "results", "run-a")
        server.stop()
        # server gone: one clear line, exit 2, nothing local lost
        before = {p: p.read_bytes() for p in (repo / "outputs" / "results").iterdir()}
        r = sh([sys.executable, "-m", "dfcil_core", "publish", "--out", str(repo / "outputs"),
                "--results", "s3://dfcil/results"], repo, env=server.env(), check=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dfcil: error: results sink: check failed on s3://dfcil"), lines
        assert {p: p.read_bytes() for p in (repo / "outputs" / "results").iterdir()} == before


@pytest.mark.slow
def test_kfp_local_run_equals_dvc_repro(dvc_repo, tmp_path, monkeypatch):
    """The same params through kfp.local (SubprocessRunner, no venv): identical accuracy matrices
    and the same metrics file as `dvc repro`; the HTML report embeds the plots."""
    repo, _ = dvc_repo
    cfg = config.load(repo / "params.yaml")
    kfp_out = run_pipeline_locally(cfg, tmp_path, monkeypatch)
    dvc_out = repo / "outputs"
    for m in cfg.methods:
        rel = Path("eval") / m / "accuracy_matrix.json"
        assert (kfp_out / rel).read_text() == (dvc_out / rel).read_text(), m
    kfp_doc, dvc_doc = (json.loads((d / "metrics.json").read_text()) for d in (kfp_out, dvc_out))

    def schema(d):
        return {k: schema(v) for k, v in d.items()} if isinstance(d, dict) else type(d).__name__

    assert schema(kfp_doc) == schema(dvc_doc)
    assert kfp_doc["methods"] == dvc_doc["methods"]
    reports = [p for p in (tmp_path / "kfp_root").rglob("report") if p.is_file()]
    assert reports and "data:image/png;base64," in reports[0].read_text()


def _status_after_touching(repo: Path, rel: str) -> set[str]:
    """The stages `dvc status` names after a comment is appended to `rel` (restored afterwards)."""
    path = repo / rel
    before = path.read_bytes()
    path.write_bytes(before + b"\n# touched\n")
    try:
        return set(json.loads(sh(["dvc", "status", "--json"], repo).stdout))
    finally:
        path.write_bytes(before)


def test_dvc_status_follows_the_code_each_stage_runs(dvc_repo):
    """A stage depends on the code it runs: the augmentation re-runs every training stage (and the
    evaluation, whose diagnosis normalises images with it), a plotting function only `evaluate`."""
    repo, _ = dvc_repo
    stages = set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    train = {s for s in stages if s.startswith("train_")}
    touched_augment = _status_after_touching(repo, "dfcil_core/method/augment.py")
    assert train <= touched_augment and "split" not in touched_augment, touched_augment
    assert _status_after_touching(repo, "dfcil_core/run/eval_plots.py") == {"evaluate"}
    assert _status_after_touching(repo, "dfcil_core/method/synthesis.py") >= train | {"synthesize_ce_t2"}
    assert _status_after_touching(repo, "dfcil_core/lab/gate.py") == set()  # the lab runs in no stage
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], repo).stdout


@pytest.mark.slow
def test_forced_rerun_writes_byte_identical_outputs(dvc_repo):
    """Every stage re-run with the same inputs on the same machine writes the same bytes: `dvc repro
    -f` leaves dvc.lock (the md5 of every output) and every output file unchanged. Times and hosts
    live in the stage logs, which are no outputs."""
    repo, _ = dvc_repo
    lock = (repo / "dvc.lock").read_text()
    out = repo / "outputs"

    def output_files() -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*")
                if p.is_file() and p.relative_to(out).parts[0] != "logs"}

    before = output_files()
    logs = {p.name: p.read_text() for p in (out / "logs").iterdir()}
    rerun = sh(["dvc", "repro", "-f"], repo).stdout
    assert "Running stage 'train_abd_t2'" in rerun
    after = output_files()
    assert sorted(after) == sorted(before)
    assert [f for f in before if after[f] != before[f]] == []
    assert (repo / "dvc.lock").read_text() == lock
    assert {p.name: p.read_text() for p in (out / "logs").iterdir()} != logs  # the logs did record the re-run


def test_late_task_param_reruns_only_downstream(dvc_repo):
    repo, _ = dvc_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["task_epochs"]["2"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = json.loads(sh(["dvc", "status", "--json"], repo).stdout)
        rerun = sh(["dvc", "repro"], repo).stdout
    finally:
        sh(["git", "checkout", "params.yaml"], repo)  # last test of the module: outputs stay as re-run
    cfg = config.load(repo / "params.yaml")
    t2_stages = {s for s in yaml.safe_load(render(cfg))["stages"] if s.startswith("train_") and s.endswith("_t2")}
    assert set(status) == t2_stages  # DVC's own view: only the task-2 training stages changed
    ran = set(re.findall(r"Running stage '([^']+)'", rerun))
    assert ran == t2_stages | {"evaluate"}  # and what it re-ran: those plus what depends on them


@pytest.mark.slow
def test_dvc_fan_out_matrix_runs_and_tables(tmp_path, data_root):
    """`dfcil dvc-yaml --fan-out`: a DVC matrix of whole runs (split x seed), then `dfcil tables`."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "dfcil_core", repo / "dfcil_core", ignore=shutil.ignore_patterns("__pycache__"))
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "ci@dfcil"], ["git", "config", "user.name", "ci"],
                ["dvc", "init", "-q"]):
        sh(cmd, repo)
    (repo / "paper").mkdir()
    text = sh(["dfcil", "dvc-yaml", "--fan-out", "--preset", "tiny", "-S", "methods=[upper_bound,base]",
               "--splits", "2", "--seeds", "0", "1"], repo).stdout
    (repo / "paper" / "dvc.yaml").write_text(text)
    out = sh(["dvc", "repro", "paper/dvc.yaml"], repo).stdout
    assert "Running stage 'paper/dvc.yaml:run@2-0'" in out and "Running stage 'paper/dvc.yaml:tables'" in out
    long = pd.read_csv(repo / "paper" / "tables" / "tables.csv")
    ran = long[long.runs > 0]
    assert set(ran.method) == {"upper_bound", "base"} and set(ran.runs) == {2} and set(ran.n_tasks) == {2}
    assert "Running stage" not in sh(["dvc", "repro", "paper/dvc.yaml"], repo).stdout


def test_main_job_reports_a_changed_tree_and_still_succeeds(tmp_path):
    """scripts/tree_changes.sh: the main job's last words when it changed tracked files (exit 0)."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "tree_changes.sh"
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "dvc.lock").write_text("a\n")
    subprocess.run([*git, "-C", str(tmp_path), "add", "dvc.lock"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    same = subprocess.run(["bash", str(script), ""], cwd=tmp_path, capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout == ""
    (tmp_path / "dvc.lock").write_text("b\n")
    changed = subprocess.run(["bash", str(script), ""], cwd=tmp_path, capture_output=True, text=True)
    assert changed.returncode == 0, changed.stderr
    assert "this run changed what git tracks:\n   M dvc.lock\n" in changed.stdout
