"""The replay comparisons end to end on a tiny profile of real CIFAR-100: the coreset and VAE
artefacts, their contracts (the coreset never holds more than `coreset.size`, its references are
real images of the classes it names), re-runs that do nothing, phases that resume after a kill, and
BiC's evaluation switch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dfcil_core.foundations import atomic_io, config, registry
from dfcil_core.method.coreset import Coreset
from dfcil_core.run import artifacts, coreset_stage, evaluate_stage, sequence

REPLAY = ["rehearsal", "lwf_coreset", "e2e", "bic", "dgr"]
SMALL = ["data.num_classes=6", "data.n_tasks=3", "data.train_per_class=24", "data.test_per_class=10",
         "coreset.size=20", f"methods=[{','.join(REPLAY)}]"]


def _cfg(*extra: str) -> config.Config:
    return config.load(preset="tiny", overrides=[*SMALL, *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("replay")
    doc = sequence.run(_cfg(), out)
    return out, doc


def test_every_replay_method_runs_and_keeps_its_artefacts(run):
    out, doc = run
    lay = artifacts.Layout(out)
    assert set(doc["methods"]) == set(REPLAY)
    for name in ("random", "e2e", "bic"):  # kept after tasks 1 and 2, none after the last
        assert [p.name for p in sorted((out / "coresets" / name).iterdir())] == ["task_1.json", "task_2.json"]
    assert not (out / "coresets" / "rehearsal").exists()  # Naive Rehearsal and LwF + coreset share one
    assert sorted(p.name for p in (out / "vaes" / "dgr").iterdir()) == ["task_1.pt", "task_2.pt", "task_3.pt"]
    assert (out / "models" / "dgr" / "task_1.pt").is_file()  # DGR trains its own θ(1)
    for m in ("rehearsal", "lwf_coreset", "e2e", "bic"):
        assert registry.lineage(m, 1) == "ce" and lay.model(m, 3).is_file()
    # E2E's history has its two phases; BiC's checkpoint carries a bias layer per task from the second
    e2e = atomic_io.load_torch(lay.model("e2e", 3))
    assert sorted(set(e2e["history"]["phase"])) == ["A", "B"]
    bic = atomic_io.load_torch(lay.model("bic", 3))
    assert [layer[:2] for layer in bic["carry"]["logit_bias"]] == [[2, 4], [4, 6]]
    assert "carry" not in atomic_io.load_torch(lay.model("bic", 1))  # the shared θ(1) carries nothing


@pytest.mark.parametrize("method", ["rehearsal", "e2e", "bic"])
def test_coresets_hold_at_most_their_size_of_real_images_of_the_named_classes(run, method):
    out, _ = run
    lay = artifacts.Layout(out)
    for task in (1, 2):
        doc = json.loads(lay.coreset(method, task).read_text())
        kept = Coreset.from_json(doc)
        assert len(kept) <= 20 and sorted(set(kept.labels.tolist())) == list(range(2 * task))
        assert doc["config_hash"] == artifacts.coreset_hash(_cfg(), method, task)
        for t, rows in ((t, kept.refs[kept.refs[:, 0] == t, 1]) for t in np.unique(kept.refs[:, 0])):
            y = atomic_io.load_npz(lay.task_file(int(t)))["train_y"]
            assert (y[rows] == kept.labels[kept.refs[:, 0] == t]).all()
        if registry.method(method).coreset.selection != "random":  # ranked: no entry twice
            assert len({tuple(r) for r in kept.refs.tolist()}) == len(kept)
    stage = json.loads(lay.coreset("e2e", 2).read_text())["stage"]
    assert stage == "train"  # E2E's coreset after task 2 is ranked between its phases
    assert json.loads(lay.coreset("bic", 2).read_text())["stage"] == "coreset"


def test_a_rerun_does_nothing(run):
    out, _ = run
    files = [p for d in ("models", "coresets", "vaes") for p in (out / d).rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files}
    sequence.run(_cfg(), out)
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_a_coreset_stage_refuses_what_it_does_not_make(run):
    from dfcil_core.foundations.errors import DfcilError

    out, _ = run
    with pytest.raises(DfcilError, match="coreset: method 'base' keeps no coreset"):
        coreset_stage.select_coreset(_cfg("methods=[base]"), "base", 1, out)
    with pytest.raises(DfcilError, match="e2e's coreset of task 2 is written by its training stage"):
        coreset_stage.select_coreset(_cfg(), "e2e", 2, out)
    with pytest.raises(DfcilError, match="made under another config"):
        coreset_stage.select_coreset(_cfg("coreset.size=18"), "rehearsal", 1, out)


def test_bic_evaluates_raw_logits_unless_asked_to_apply_its_layers(tmp_path, data_root):
    """A held-out set big enough for a step moves BiC's new layer. The authors evaluate without the
    layers (the default), `bic.apply_at_eval` with them: with a layer that pushes the new classes'
    logits far up, every test image goes to a new class under the switch, and nothing changes without."""
    sets = ["methods=[bic]", "data.n_tasks=2", "data.num_classes=4", "coreset.size=40", "bic.holdout=0.9",
            "train.batch_size=16"]
    cfg = _cfg(*sets)
    sequence.run(cfg, tmp_path)
    path = artifacts.Layout(tmp_path).model("bic", 2)
    ckpt = atomic_io.load_torch(path)
    (start, end, alpha, beta), = ckpt["carry"]["logit_bias"]
    assert (start, end) == (2, 4) and (alpha, beta) != (1.0, 0.0)  # stage 2 stepped: away from the identity
    raw = json.loads((tmp_path / "eval" / "bic" / "accuracy_matrix.json").read_text())
    ckpt["carry"]["logit_bias"] = [[2, 4, 1.0, -1000.0]]
    atomic_io.save_torch(path, ckpt)
    evaluate_stage.evaluate(cfg, tmp_path)
    assert json.loads((tmp_path / "eval" / "bic" / "accuracy_matrix.json").read_text()) == raw
    evaluate_stage.evaluate(_cfg(*sets, "bic.apply_at_eval=true"), tmp_path)
    applied = json.loads((tmp_path / "eval" / "bic" / "accuracy_matrix.json").read_text())
    assert raw["values"][1][1] > 0 and applied["values"][1][1] == 0.0  # after task 2: no new-class image right


def _dfcil(out: Path, *extra: str) -> list[str]:
    sets = [a for o in [*SMALL, "methods=[e2e]", "data.n_tasks=2", "data.num_classes=4", "train.epochs=2",
                        "coreset.size=64", "train.batch_size=16", "e2e.phase_b_epochs=20", "train.checkpoint_every=1",
                        *extra] for a in ("-S", o)]
    return [sys.executable, "-m", "dfcil_core", "run", "--preset", "tiny", *sets, "--out", str(out)]


@pytest.mark.slow
def test_e2e_killed_in_its_second_phase_resumes_to_the_same_matrix(tmp_path, data_root):
    """SIGKILL after an in-task checkpoint of phase B exists; the re-run resumes inside phase B (the
    coreset ranked before it comes back from the checkpoint) and ends where an uninterrupted run ends."""
    ref = tmp_path / "uninterrupted"
    subprocess.run(_dfcil(ref), check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_dfcil(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def in_phase_b() -> bool:
        for p in (out / "models" / "e2e").glob("task_2.*.partial.pt") if (out / "models" / "e2e").is_dir() else []:
            try:
                return atomic_io.load_torch(p)["phase"] == 1
            except Exception:  # noqa: BLE001 (replaced while being read: look again)
                return False
        return False

    deadline = time.monotonic() + 300
    while not in_phase_b():
        assert proc.poll() is None, "the run ended before phase B was checkpointed"
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling a file condition, bounded by the deadline
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert not (out / "models" / "e2e" / "task_2.pt").exists()
    done = subprocess.run(_dfcil(out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr and " at B epoch " in done.stderr
    matrix = Path("eval") / "e2e" / "accuracy_matrix.json"
    assert (out / matrix).read_text() == (ref / matrix).read_text()
