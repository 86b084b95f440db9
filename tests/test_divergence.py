"""A diverged run never becomes a number: the training loop and the inversion stop with one line,
nothing of the diverged task is written, evaluation refuses non-finite weights, and every reader of
results rows refuses a row whose metrics are no result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from dfcil_core.__main__ import main
from dfcil_core.foundations import atomic_io, config
from dfcil_core.foundations.errors import DfcilError, Diverged
from dfcil_core.run import artifacts, split_stage, synthesize_stage, train_stage
from dfcil_core.run.checkpoints import load_model
from dfcil_core.run.results_table import check_metrics, read_runs

SMALL = ["data.num_classes=4", "data.train_per_class=24", "data.test_per_class=10", "synthesis.steps=3",
         "methods=[base]"]


def _cfg(*extra: str) -> config.Config:
    return config.load(preset="tiny", overrides=[*SMALL, *extra])


def _dfcil(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfcil_core", *args], capture_output=True, text=True)


def test_a_diverged_run_stops_writes_nothing_of_its_task_and_a_sane_rerun_equals_a_clean_run(tmp_path, data_root):
    out = tmp_path / "run"
    sets = [a for o in SMALL for a in ("-S", o)]
    r = _dfcil("run", "--preset", "tiny", *sets, "-S", "train.lr=100000", "--out", str(out))
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("dfcil: error:")]
    assert errors == [line for line in r.stderr.splitlines() if "Traceback" in line or line.startswith("dfcil:")]
    assert len(errors) == 1
    # epoch 1 is one step, whose loss is taken before its update: the loss explodes in epoch 2
    assert errors[0].startswith("dfcil: error: train base task 1: the loss diverged in epoch 2 of 2 (a step loss of ")
    assert errors[0].endswith("; bound train.max_loss 1e+06); nothing of task 1 was written. Likely cause: the "
                              "learning rate (train.lr 100000); lower it and re-run")
    # no model (not even an in-task checkpoint), no metrics, no results row; the split stays
    assert not any((out / "models").rglob("*.pt"))
    assert not (out / "metrics.json").exists() and not (out / "results").exists()
    split_bytes = (out / "split" / "task_1.npz").read_bytes()
    # the same command with a sane learning rate continues (the split is reused) and equals a clean run
    assert _dfcil("run", "--preset", "tiny", *sets, "--out", str(out)).returncode == 0
    assert (out / "split" / "task_1.npz").read_bytes() == split_bytes
    clean = tmp_path / "clean"
    assert _dfcil("run", "--preset", "tiny", *sets, "--out", str(clean)).returncode == 0
    for d in (out, clean):
        assert (d / "metrics.json").is_file()
    matrix = Path("eval") / "base" / "accuracy_matrix.json"
    assert (out / matrix).read_text() == (clean / matrix).read_text()
    assert (out / "models" / "ce" / "task_1.pt").read_bytes() == (clean / "models" / "ce" / "task_1.pt").read_bytes()


def test_a_non_finite_loss_is_caught_in_the_epoch_it_appears(tmp_path, data_root):
    cfg = _cfg("train.lr=.inf")
    split_stage.split(cfg, tmp_path)
    with pytest.raises(Diverged, match=r"^train base task 1: the loss diverged in epoch 2 of 2 \(a step loss of nan;"):
        train_stage.train(cfg, "base", 1, tmp_path)
    assert not any((tmp_path / "models").rglob("*.pt"))  # neither θ(1) nor its in-task checkpoint


@pytest.fixture(scope="module")
def first_task(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("first")
    cfg = _cfg("methods=[deepinversion]")
    split_stage.split(cfg, out)
    train_stage.train(cfg, "deepinversion", 1, out)
    return out


def test_the_inversion_stops_on_a_loss_past_its_bound_and_writes_no_generator(first_task):
    cfg = _cfg("methods=[deepinversion]", "synthesis.max_loss=1e-9")
    with pytest.raises(Diverged, match=r"^synthesize deepinversion task 2: the inversion loss diverged by step 1 of 3 "
                                       r"\(a step loss of .*; bound synthesis.max_loss 1e-09\); no generator was "
                                       r"written. Likely cause: .*synthesis.lr 0.001"):
        synthesize_stage.synthesize(cfg, "deepinversion", 2, first_task)
    assert not artifacts.Layout(first_task).generator("deepinversion", 2).exists()
    # the guard changes no output it passes: the same config with the default bound makes the generator
    assert synthesize_stage.synthesize(_cfg("methods=[deepinversion]"), "deepinversion", 2, first_task).is_file()


def test_loading_refuses_non_finite_weights(first_task, tmp_path):
    cfg = _cfg("methods=[deepinversion]")
    path = artifacts.Layout(first_task).model("deepinversion", 1)
    ckpt = atomic_io.load_torch(path)
    ckpt["state_dict"]["head.weight"][0, 0] = float("nan")
    bad = tmp_path / "task_1.pt"
    atomic_io.save_torch(bad, ckpt)
    with pytest.raises(DfcilError, match=r"task_1.pt \(θ\(1\) of deepinversion\) has non-finite weights "
                                         r"\(head.weight\): the run that wrote it diverged; re-train it$"):
        load_model(cfg, bad, "deepinversion", 1, torch.device("cpu"))


def _runs(tmp_path: Path, **metrics) -> Path:
    row = {"name": "tiny", "dataset": "cifar100", "n_tasks": 2, "method": "base", "ablation": "none", "seed": 0,
           "train_seed": 0, "a_n": 30.0, "omega": 80.0, "avg_inc_acc": 50.0, "forgetting": 40.0, "old_acc": 0.0,
           "new_acc": 60.0, "device": "cpu", "device_class": "cpu AVX512 | 2 threads | torch 2.14.1+cu130"}
    good = dict(row, method="upper_bound", omega=100.0, forgetting=-2.0)
    path = tmp_path / "results" / "runs.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([good, {**row, **metrics}]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("metrics,message", [
    ({"a_n": float("nan")}, "row 2 (base) has a_n = nan, no result (non-finite or outside [0, 100])"),
    ({"a_n": 100.5}, "row 2 (base) has a_n = 100.5, no result (non-finite or outside [0, 100])"),
    ({"old_acc": -1.0}, "row 2 (base) has old_acc = -1.0, no result (non-finite or outside [0, 100])"),
    ({"omega": float("inf")}, "row 2 (base) has omega = inf, no result (non-finite); it is refused"),
])
def test_rows_that_are_no_result_are_refused_by_every_reader(tmp_path, metrics, message, capsys):
    import re

    _runs(tmp_path, **metrics)
    with pytest.raises(DfcilError, match="runs.csv: " + re.escape(message)):
        read_runs(tmp_path)
    # `dfcil tables` and the gate's `benchmark add` read through it: one line, exit 2
    for args in (["tables", str(tmp_path), "--out", str(tmp_path / "t")],
                 ["benchmark", "add", str(tmp_path), "--table", str(tmp_path / "ledger.csv")]):
        assert main(args) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "ledger.csv").exists()


def test_absent_optional_metrics_and_omega_above_100_are_results(tmp_path):
    path = _runs(tmp_path, old_acc=float("nan"), omega=100.4, forgetting=-3.0)
    df = read_runs(tmp_path)
    assert len(df) == 2 and check_metrics(df, path) is df


def test_the_gate_ledger_refuses_a_row_that_is_no_result(tmp_path):
    from dfcil_core.lab.gate import read_table

    ledger = tmp_path / "gate.csv"
    rows = [{"profile": "tiny", "dataset": "cifar100", "n_tasks": 2, "method": "base", "seed": 0, "train_seed": t,
             "a_n": a, "device_class": "cpu"} for t, a in ((0, 30.0), (1, float("nan")))]
    pd.DataFrame(rows).to_csv(ledger, index=False)
    with pytest.raises(DfcilError, match=r"gate.csv: row 2 \(base\) has a_n = nan, no result"):
        read_table(ledger)


def test_a_results_sink_never_receives_a_row_that_is_no_result(tmp_path):
    from dfcil_core.drivers.results_sink import S3ResultsSink

    _runs(tmp_path, a_n=float("nan"))
    (tmp_path / "results" / "tasks.csv").write_text("method,seed,train_seed,task,acc_seen,omega_term\n")
    sink = S3ResultsSink.__new__(S3ResultsSink)  # no client: the rows are refused before any upload
    sink.put_new = lambda *a: pytest.fail("uploaded a row that is no result")
    with pytest.raises(DfcilError, match=r"row 2 \(base\) has a_n = nan, no result"):
        sink.append_tables(tmp_path / "results", "run-x")
