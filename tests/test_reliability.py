"""Validation, resume after a kill, atomic outputs, no credentials in outputs, property tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfcil_core.foundations import atomic_io, config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.method import datasets as data

# ------------------------------------------------------------------ property tests


@given(seed=st.integers(0, 10_000), n_classes=st.integers(2, 120), n_tasks=st.integers(1, 20))
@settings(max_examples=60, deadline=None)
def test_split_partitions_the_classes(seed, n_classes, n_tasks):
    raw = {"seed": seed, "data": {"dataset": "cifar100", "num_classes": n_classes, "n_tasks": n_tasks}}
    if n_classes % n_tasks:
        with pytest.raises(DfcilError, match="do not divide"):
            config.from_dict(raw)
        return
    if n_classes > 100:  # named at config time, before any data is read
        with pytest.raises(DfcilError, match=f"data.num_classes: {n_classes} > the 100 classes of cifar100"):
            config.from_dict(raw)
        return
    cfg = config.from_dict(raw)
    blocks = data.task_class_blocks(cfg.task_sizes())
    assert len(blocks) == n_tasks and all(len(b) == n_classes // n_tasks for b in blocks)
    assert [c for b in blocks for c in b] == list(range(n_classes))
    order = data.class_order(max(n_classes, 100), seed)
    assert sorted(order) == list(range(max(n_classes, 100))) and order == data.class_order(max(n_classes, 100), seed)


_KEYS = st.sampled_from(["train.epochs", "train.lr", "train.batch_size", "synthesis.steps", "abd.lambda_kd",
                         "data.n_tasks", "seed", "train.momentum"])
_VALUES = st.one_of(st.integers(-5, 300), st.floats(-1, 2, allow_nan=False), st.text(max_size=5), st.booleans())


@given(key=_KEYS, value=_VALUES)
@settings(max_examples=150, deadline=None)
def test_config_accepts_or_rejects_by_name(key, value):
    raw = config.apply_overrides({"data": {"num_classes": 100}}, [])
    section, _, leaf = key.rpartition(".")
    (raw.setdefault(section, {}) if section else raw)[leaf] = value
    try:
        cfg = config.from_dict(raw)
    except DfcilError as err:
        assert str(err).startswith("invalid config: ") or "do not divide" in str(err)
        assert key.split(".")[-1] in str(err) or "do not divide" in str(err)
        return
    got = cfg.dump()
    for part in key.split("."):
        got = got[part]
    assert got == value or float(got) == float(value)


@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
@settings(max_examples=50, deadline=None)
def test_unknown_keys_are_rejected_by_name(name):
    known = set(config.TrainConfig.model_fields)
    if name in known:
        return
    with pytest.raises(DfcilError, match=f"train.{name}: unknown key"):
        config.from_dict({"train": {name: 1}})


# ------------------------------------------------------------------ atomic writes


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "out.json"
    atomic_io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_io.atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert atomic_io.read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_unwritable_output_dir_is_one_clear_error(tmp_path, capsys, data_root):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")  # fails for root too, unlike permission bits
    with pytest.raises(DfcilError, match="cannot write to"):
        atomic_io.write_json(blocker / "x" / "y.json", {})
    from dfcil_core import __main__ as cli

    assert cli.main(["split", "--preset", "tiny", "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dfcil: error: cannot write to")


def test_disk_full_is_one_clear_error(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    link = tmp_path / "full.bin"
    with pytest.raises(DfcilError, match="cannot write"), atomic_io.atomic_path(link) as tmp:
        tmp.unlink()
        os.symlink("/dev/full", tmp)
        with open(tmp, "wb") as f:
            f.write(b"x" * 1_000_000)
            f.flush()
    assert not link.exists()


# ------------------------------------------------------------------ kill and resume

TINY = ["-S", "data.num_classes=4", "-S", "data.train_per_class=32", "-S", "data.test_per_class=10",
        "-S", "synthesis.steps=3", "-S", "methods=[base,abd]", "-S", "train.epochs=3", "-S", "train.milestones=[2]",
        "-S", "train.checkpoint_every=1"]


def _dfcil(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dfcil_core", "run", "--preset", "tiny", *TINY, *extra, "--out", str(out)]


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early ({proc.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)  # polling a file condition, bounded by the deadline


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_root):
    ref = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(_dfcil(ref), check=True, capture_output=True)
    return ref


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_and_resume_gives_the_same_matrix(tmp_path, uninterrupted, sig):
    ref = uninterrupted
    out = tmp_path / "killed"
    proc = subprocess.Popen(_dfcil(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # kill it inside task 2's training, after an in-task checkpoint exists
    _wait_for(lambda: any((out / "models").glob("abd/task_2.*.partial.pt")), proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "re-run the same command to resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (out / "models" / "abd" / "task_2.pt").exists()
    done = subprocess.run(_dfcil(out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr
    for m in ("base", "abd"):
        assert (out / "eval" / m / "accuracy_matrix.json").read_text() == (ref / "eval" / m / "accuracy_matrix.json").read_text()


# ------------------------------------------------------------------ secrets


def test_no_credentials_in_outputs(tmp_path, data_root, monkeypatch):
    from dfcil_core.run import sequence

    secret = "AKIADFCILSECRETVALUE42"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret + "x")
    cfg = config.load(preset="tiny", overrides=["data.num_classes=4", "data.train_per_class=16",
                                                "data.test_per_class=8", "synthesis.steps=2", "methods=[base,abd]",
                                                "train.epochs=1", "train.milestones=[1]"])
    sequence.run(cfg, tmp_path)
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p


# ------------------------------------------------------------------ S3 fault injection


@pytest.mark.slow
def test_s3_server_stopped_mid_run_fails_clearly_with_outputs_intact(tmp_path, data_root):
    import boto3

    from tests.s3_server import S3Server

    server = S3Server()
    server.start()
    env = {**os.environ, **server.env()}
    try:
        boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                     aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket="dfcil")
        out = tmp_path / "run"
        proc = subprocess.Popen([*_dfcil(out), "--results", "s3://dfcil/results"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: (out / "models" / "ce" / "task_1.pt").exists(), proc)
        server.stop()  # the object store goes away while the run is training
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        server.stop()
    assert proc.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("dfcil: error: results sink: ") and "Traceback" not in stderr
    # every local output is there and complete
    assert (out / "metrics.json").is_file() and (out / "results" / "runs.csv").is_file()
    assert "abd" in (out / "metrics.json").read_text()
    assert not list(out.rglob("*.tmp"))
    # credentials never reach logs or outputs
    for text in (stdout, stderr):
        assert env["AWS_SECRET_ACCESS_KEY"] not in text and env["AWS_ACCESS_KEY_ID"] not in text
    for p in out.rglob("*"):
        if p.is_file():
            assert env["AWS_SECRET_ACCESS_KEY"].encode() not in p.read_bytes()


def test_sigterm_during_synthesis_stops_at_the_next_generator_step(monkeypatch):
    """The inversion loop honours SIGTERM too (it used to run to the end and get killed)."""
    import torch

    from dfcil_core.foundations import config as config_mod
    from dfcil_core.foundations.errors import StopRequested
    from dfcil_core.method.models import Generator, IncrementalClassifier
    from dfcil_core.method.runtime import SigtermFlag
    from dfcil_core.method.synthesis import synthesize_generator

    cfg = config_mod.load(preset="tiny").synthesis
    teacher = IncrementalClassifier("resnet32", 32, 2).eval()
    gen = Generator(cfg.z_dim, 32)
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    done = []
    monkeypatch.setattr(SigtermFlag, "requested", False)

    def after(step: int) -> None:
        done.append(step)
        if step == 1:
            SigtermFlag.requested = True  # as the handler does when SIGTERM arrives

    with pytest.raises(StopRequested, match="stopped at generator step 2 of 4"):
        synthesize_generator(gen, opt, teacher, 2, cfg, on_step=after)
    assert done == [0, 1]
    assert not [m for m in teacher.modules() if m._forward_hooks]  # BN-statistics hooks removed
