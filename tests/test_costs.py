"""Cost sheet arithmetic: steps per run from the config, shared θ(1) and generators counted once."""

from __future__ import annotations

import pytest

from dfcil_core.foundations import config
from dfcil_core.lab.costs import StepSeconds, run_steps, table_cost


def test_run_steps_of_the_tiny_profile_by_hand():
    cfg = config.load(preset="tiny")  # 2 tasks x 2 classes, 32 images/class, batch 32, 2 epochs, 4 gen steps
    s = run_steps(cfg)
    # CE: θ(1) shared (4) + upper bound t2 on 4 classes (8) + base t2 (4) + lwf_mc's and ABD's own θ(1)
    # (4 each) + Naive Rehearsal t2 on 64 new images and 64 draws (8) + BiC's stage 2 on 12 held-out
    # images, fewer than a batch (0) = 32.
    # KD (the teacher's forward too): lwf, lwf_mc t2 (4 each) + LwF + coreset t2 (8) + E2E t2: phase A on
    # 64 new + 64 coreset (8) and phase B on the coreset (4) + BiC stage 1 on 128 - 12 images (6) = 34.
    # replay: lwf_syn, deepinversion, abd, rdfcil at t2 (4 each); generators: ce t2 (shared by lwf_syn,
    # deepinversion, rdfcil) and abd t2; DGR: its θ(1) and t2 (4 each).
    assert s == type(s)(ce=32, replay=16, generator=8, kd=34, dgr=8)
    assert run_steps(cfg, methods=["abd"]) == type(s)(4, 4, 4)
    with pytest.raises(ValueError, match="no seconds per DGR step"):
        s.seconds(StepSeconds(ce=1.0, replay=1.0, generator=1.0, device="no dgr"))


def test_table_cost_gpu_hours_and_wall_bounds():
    cfg = config.load(preset="tiny", overrides=["methods=[base,abd]"])
    sec = StepSeconds(ce=3600.0, replay=7200.0, generator=1800.0, device="test")
    # base: θ(1) + t2, 4 CE steps each; abd: its own θ(1) (4 CE), 4 generator and 4 replay steps
    c = table_cost([cfg], seeds=2, s=sec, gpus=[1, 100])
    per_run = (4 + 4 + 4) * 1.0 + 4 * 0.5 + 4 * 2.0  # hours
    assert c["gpu_hours"] == pytest.approx(2 * per_run)
    assert c["wall_hours"][1] == pytest.approx(2 * per_run)
    assert c["wall_hours"][100] == pytest.approx(4 * 1.0 + 4 * 0.5 + 4 * 2.0)  # the ABD chain bounds it


def test_run_steps_count_each_datasets_images_per_class():
    # Tiny-ImageNet: 10 classes x 500 images per task, batch 128 -> 39 steps x 250 epochs, 20 tasks
    tiny = run_steps(config.load(preset="paper-tinyimagenet-20", overrides=["methods=[base]"]))
    assert tiny == type(tiny)(ce=20 * 39 * 250, replay=0, generator=0)
    # ImageNet-50: 10 classes x 1,300 images per task, batch 256 -> 50 steps x 100 epochs, 5 tasks;
    # the upper bound on every class so far: 13,000 t images -> 50, 101, 152, 203, 253 steps per epoch
    imnet = config.load(preset="paper-imagenet50-5", overrides=["methods=[base,upper_bound]"])
    assert run_steps(imnet, methods=["base"]).ce == 5 * 50 * 100
    assert run_steps(imnet).ce == 5 * 50 * 100 - 50 * 100 + (50 + 101 + 152 + 203 + 253) * 100  # θ(1) shared


def test_projected_step_seconds_scale_cifars_gpu_figures_by_the_cpu_ratio():
    from benchmarks.cost_sheet import projected

    gpu = StepSeconds(ce=0.01, replay=0.02, generator=0.04, kd=0.012, device="GPU X; note")
    cpu = {"device": "CPU Y", "date": "2026-12-06", "datasets": {
        "cifar100": {"ce": 1.0, "replay": 2.0, "generator": 4.0, "kd": 1.2, "dgr": 6.0},
        "tinyimagenet": {"ce": 4.0, "replay": 6.0, "generator": 20.0, "kd": 6.0}}}
    p = projected(gpu, cpu, "tinyimagenet")
    assert (p.ce, p.replay, p.generator, p.kd, p.dgr) == pytest.approx((0.04, 0.06, 0.2, 0.06, None))
    assert p.device.startswith("PROJECTED: GPU X x CPU ratios (CPU Y, 2026-12-06)")
    assert projected(gpu, cpu, "cifar100") is gpu
