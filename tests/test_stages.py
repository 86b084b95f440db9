"""The stage functions and `dfcil run` on a tiny profile of real CIFAR-100."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dfcil_core import __main__ as cli
from dfcil_core.foundations import atomic_io, config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.presets import PRESETS
from dfcil_core.method.metrics import AccuracyMatrix
from dfcil_core.run import artifacts, evaluate_stage, sequence, synthesize_stage, train_stage

TINY = ["data.num_classes=4", "data.train_per_class=24", "data.test_per_class=10", "synthesis.steps=3"]


def tiny_cfg(*extra: str) -> config.Config:
    return config.load(preset="tiny", overrides=[*TINY, *extra])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("tiny")
    doc = sequence.run(tiny_cfg(), out)
    return out, doc


def test_run_writes_every_contracted_output(tiny_run):
    out, doc = tiny_run
    cfg = tiny_cfg()
    lay = artifacts.Layout(out)
    assert json.loads(lay.split_meta().read_text())["class_order"] == [23, 8, 11, 7]
    for t in (1, 2):
        z = np.load(lay.task_file(t))
        assert z["train_x"].dtype == np.uint8 and z["train_x"].shape == (48, 3, 32, 32)
        assert set(z["train_y"].tolist()) == ({0, 1} if t == 1 else {2, 3})
    for m in cfg.methods:
        assert lay.model(m, 2).is_file()
        a = AccuracyMatrix.from_dict(json.loads((out / "eval" / m / "accuracy_matrix.json").read_text()))
        assert a.values.shape == (2, 2)
        assert (out / "eval" / m / "accuracy_matrix.png").stat().st_size > 1000
        assert (out / "eval" / m / "training_losses.png").stat().st_size > 1000
    assert (out / "models" / "ce" / "task_1.pt").is_file()  # θ(1) shared by the CE methods
    assert not (out / "models" / "base" / "task_1.pt").exists()
    assert (out / "generators" / "ce" / "task_2.pt").is_file()  # generator shared too
    assert (out / "generators" / "ce" / "samples_task_2.png").stat().st_size > 1000
    replay = artifacts.read_stage_log(out, "synthesize_ce_t2")["replay"]  # what the replay draws, per old task
    assert replay["samples"] == 1000 and replay["classes"] == 2 and 1 <= replay["classes_drawn"] <= 2
    assert replay["share_by_task"] == [1.0]  # one old task: every draw is one of its classes
    for name in ("mid.png", "mmd.png", "omega_per_task.png", "accuracy_per_task.png", "diagnosis.json"):
        assert (out / "eval" / name).is_file()
    # Section 5 on every replaying method: all real test images of tasks 1 and 2, 1,000 synthetic ones
    assert set(doc["diagnosis"]) == {"lwf_syn", "deepinversion", "abd", "rdfcil"}
    for d in doc["diagnosis"].values():
        assert d["images"] == {"real_t1": 20, "syn_t1": 1000, "real_t2": 20}  # 2 classes x 10
    assert set(doc["methods"]) == set(cfg.methods)
    assert doc["methods"]["upper_bound"]["omega"] == pytest.approx(100.0)
    runs = (out / "results" / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + len(cfg.methods)
    assert runs[0].startswith("name,dataset,n_tasks,method,ablation,seed,train_seed,top_k,a_n,omega")
    row = pd.read_csv(out / "results" / "runs.csv").iloc[0]
    for col in ("cpu_model", "cpu_isa", "threads", "gpu", "torch", "device_class"):  # the device fingerprint
        assert col in row.index
    assert row["gpu"] == "none" and row["device_class"].startswith(f"cpu {row['cpu_isa']} | ")
    # the class that trained each model is on its stage records, and the results row names it
    trained = artifacts.read_stage_log(out, "train_abd_t2")["device_class"]
    assert artifacts.read_stage_log(out, "synthesize_abd_t2")["device_class"] == trained == row["device_class"]
    # ABD has its own θ(1) and generator (the authors' task 1: CE over every head row)
    assert (out / "models" / "abd" / "task_1.pt").is_file() and (out / "generators" / "abd" / "task_2.pt").is_file()
    abd_t2 = atomic_io.load_torch(lay.model("abd", 2))
    meta = abd_t2["meta"]
    # one head row per CIFAR-100 class, as the authors' code, though the run learns 4
    assert abd_t2["state_dict"]["head.weight"].shape == (100, 64)
    assert meta["config_hash"] == artifacts.model_hash(cfg, "abd", 2) and meta["seed"] == 0
    assert "models/abd/task_1.pt" in meta["inputs"] and "generators/abd/task_2.pt" in meta["inputs"]
    # one flat metrics file per method (DVC rows), and the HTML page
    assert set(json.loads((out / "metrics" / "abd.json").read_text())) >= {"a_n", "old_acc", "new_acc"}
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 5


def test_checkpoints_keep_the_loss_terms_per_epoch(tiny_run):
    out, _ = tiny_run
    history = atomic_io.load_torch(artifacts.Layout(out).model("abd", 2))["history"]
    assert set(history["terms"]) == {"local_ce", "ft_ce", "feature_kd"}
    for e, loss in enumerate(history["loss"]):
        assert sum(v[e] for v in history["terms"].values()) == pytest.approx(loss, rel=1e-4)


def test_feature_diagnosis_embeds_with_eval_mode_batchnorm(tiny_run, monkeypatch):
    """θ(2) and the generator run in eval mode, as replay and accuracy use them: train-mode BatchNorm
    would normalise each sample by its own statistics and hide the shifts MID measures (it did, and
    DeepInversion's MID then fell below ABD's on some CPUs)."""
    import torch

    from dfcil_core.run import feature_diagnosis as diagnosis

    out, doc = tiny_run
    modes: list[bool] = []

    def recording(load):
        def wrapped(*args, **kwargs):
            module = load(*args, **kwargs)
            module.register_forward_pre_hook(lambda m, _: modes.append(m.training))
            return module
        return wrapped

    monkeypatch.setattr(diagnosis, "load_model", recording(diagnosis.load_model))
    monkeypatch.setattr(diagnosis, "load_generator", recording(diagnosis.load_generator))
    again = diagnosis.feature_diagnosis(tiny_cfg(), "deepinversion", out, torch.device("cpu"))
    assert modes and not any(modes)
    assert again == doc["diagnosis"]["deepinversion"]  # the evaluate stage's numbers, reproduced


def test_first_task_accuracy_is_the_first_matrix_cell(tiny_run):
    out, _ = tiny_run
    cfg = tiny_cfg()
    acc = evaluate_stage.first_task_accuracy(cfg, out)
    assert set(acc) == set(cfg.methods)
    for m in cfg.methods:
        a = AccuracyMatrix.from_dict(json.loads((out / "eval" / m / "accuracy_matrix.json").read_text()))
        assert acc[m] == a.values[0, 0]
    first = json.loads((out / "eval" / "first_task.json").read_text())
    assert first["task1_acc"] == acc and first["tasks"] == cfg.data.n_tasks  # its protocol, for the fidelity table
    assert first["trained_on"] == {m: first["device_class"] for m in acc}  # trained and evaluated here
    split_only = out.parent / (out.name + "-split-only")  # the run's split, no model yet
    shutil.copytree(out / "split", split_only / "split", dirs_exist_ok=True)
    with pytest.raises(DfcilError, match=r"no θ\(1\) of abd to evaluate; train task 1 first"):
        evaluate_stage.first_task_accuracy(cfg, split_only, ["abd"])


def test_same_seed_gives_identical_accuracy_matrices(tiny_run, tmp_path):
    out, doc = tiny_run
    doc2 = sequence.run(tiny_cfg(), tmp_path)
    for m in doc["methods"]:
        a = (out / "eval" / m / "accuracy_matrix.json").read_text()
        assert a == (tmp_path / "eval" / m / "accuracy_matrix.json").read_text()
    assert doc2["methods"] == doc["methods"]


def test_rerun_reuses_outputs(tiny_run):
    out, _ = tiny_run
    before = {p: p.stat().st_mtime_ns for p in (out / "models").rglob("*.pt")}
    sequence.run(tiny_cfg(), out)
    assert {p: p.stat().st_mtime_ns for p in (out / "models").rglob("*.pt")} == before


def test_checkpoint_from_another_config_is_refused(tiny_run):
    out, _ = tiny_run
    with pytest.raises(DfcilError, match="made under another config"):
        train_stage.train(tiny_cfg("train.epochs=3"), "base", 2, out)
    with pytest.raises(DfcilError, match="another config"):
        train_stage.train(tiny_cfg("seed=1"), "base", 1, out)


def test_stage_argument_errors(tiny_run):
    out, _ = tiny_run
    with pytest.raises(DfcilError, match="task: 3 is outside 1..2"):
        train_stage.train(tiny_cfg(), "base", 3, out)
    with pytest.raises(DfcilError, match="does not replay"):
        synthesize_stage.synthesize(tiny_cfg(), "base", 2, out)
    with pytest.raises(DfcilError, match="task must be >= 2"):
        synthesize_stage.synthesize(tiny_cfg(), "abd", 1, out)


def test_missing_input_is_named(tmp_path):
    with pytest.raises(DfcilError, match="missing input: .*split/meta.json"):
        train_stage.train(tiny_cfg(), "base", 1, tmp_path)


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfcil_core", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args,message", [
    (["run", "--preset", "tiny", "-S", "methods=[ewc]"], "methods: unknown method 'ewc'"),
    (["run", "--preset", "tiny", "-S", "data.n_tasks=3"], "data.n_tasks: 3 tasks do not divide 4 classes"),
    (["run", "--preset", "tiny", "-S", "data.dataset=svhn"], "data.dataset: Input should be"),
    (["run", "--preset", "tiny", "-S", "train.epochs=-1"], "train.epochs: Input should be greater than or equal to 1"),
    (["run", "--preset", "tiny", "-S", "train.lr=fast"], "train.lr: Input should be a valid number"),
    (["run", "--preset", "tiny", "-S", "train.epoch=3"], "train.epoch: unknown key"),
    (["run", "--preset", "tiny", "-S", "data.num_classes=120"], "data.num_classes: 120 > the 100 classes of cifar100"),
    (["run", "--preset", "tiny", "-S", "model.head_size=3"], "model.head_size: 3 rows cannot hold the run's 4 classes"),
    (["run", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--preset", "tiny", "--method", "ewc", "--task", "1"], "unknown method 'ewc'"),
])
def test_cli_bad_input_one_line_exit_2(args, message, tmp_path, capsys):
    code = cli.main([*args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("dfcil: error: ") and message in err[0], err


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config_for_all_its_methods(name):
    # every method a preset lists must be runnable on its schedule (e.g. R-DFCIL's head-only phase
    # must leave main-phase epochs): a preset that fails validation is a user's first error
    cfg = config.load(preset=name)
    assert cfg.name == name and cfg.methods
    if "rdfcil" in cfg.methods:
        assert all(cfg.train.epochs_for(t) > cfg.rdfcil.finetune_epochs for t in range(2, cfg.data.n_tasks + 1))


def test_head_rows_default_to_the_dataset_and_enter_the_hash():
    cfg = tiny_cfg()
    assert (cfg.total_classes, cfg.head_rows) == (4, 100)
    assert config.load(preset="tiny", overrides=[*TINY, "data.dataset=cifar10"]).head_rows == 10
    folder = config.load(preset="tiny", overrides=[*TINY, "data.dataset=imagefolder"])
    assert folder.head_rows == 4  # an image folder's class count is the run's
    run_sized = tiny_cfg("model.head_size=4")
    assert run_sized.head_rows == 4
    assert artifacts.model_hash(run_sized, "abd", 1) != artifacts.model_hash(cfg, "abd", 1)


def test_cli_missing_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DFCIL_DATA_ROOT", str(tmp_path / "nowhere"))
    r = _cli("split", "--preset", "tiny", "-S", "data.download=false", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "$DFCIL_DATA_ROOT" in r.stderr


def test_the_trained_device_class_reads_every_stage_of_the_lineage(tmp_path):
    """A lineage trained on 2 threads, its generator inverted on 1 (a record older than `device_class`
    names the count only in `device`) and evaluated on 2: "1+2 threads". A stage without a record (a
    DVC-fetched output) counts as the evaluating class."""
    here, lay = "cpu AVX512 | 2 threads | torch X", artifacts.Layout(tmp_path)
    atomic_io.write_json(lay.stage_log("train_abd_t1"), {"device_class": here})
    atomic_io.write_json(lay.stage_log("synthesize_abd_t2"), {"device": "cpu (x86_64, 1 threads)"})
    assert evaluate_stage.trained_device_class(tmp_path, "abd", 1, here) == here
    assert evaluate_stage.trained_device_class(tmp_path, "abd", 2, here) == "cpu AVX512 | 1+2 threads | torch X"
    # LwF inverts nothing: θ(1) is the shared CE lineage's (train_ce_t1, no record here), θ(2) its own
    atomic_io.write_json(lay.stage_log("train_lwf_t2"), {"device_class": "cpu AVX2 | 2 threads | torch X"})
    assert (evaluate_stage.trained_device_class(tmp_path, "lwf", 2, here)
            == "cpu AVX2 | 2 threads | torch X + cpu AVX512 | 2 threads | torch X")


def test_evaluating_one_method_keeps_the_summary_of_the_others(tiny_run, tmp_path):
    """A second `dfcil run` of one method into a folder keeps the other methods' rows in metrics.json and
    the results tables (they are evaluated again from their models); a method whose models are gone
    leaves the summary."""
    out, doc = tiny_run
    again = tmp_path / "again"
    shutil.copytree(out, again)
    cfg = tiny_cfg()
    evaluate_stage.evaluate(cfg, again, ["base"])
    kept = json.loads((again / "metrics.json").read_text())
    assert set(kept["methods"]) == set(doc["methods"])
    assert kept["methods"]["abd"]["a_n"] == doc["methods"]["abd"]["a_n"]  # the same models, the same numbers
    assert sorted(pd.read_csv(again / "results" / "runs.csv")["method"]) == sorted(doc["methods"])
    (again / "models" / "lwf" / "task_2.pt").unlink()
    evaluate_stage.evaluate(cfg, again, ["base"])
    assert set(json.loads((again / "metrics.json").read_text())["methods"]) == set(doc["methods"]) - {"lwf"}
