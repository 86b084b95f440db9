"""What the nightly regression gate runs: its profile, methods, thread count, seeds and files. Light
(no pandas): the `dfcil` parser and the KFP gate pipeline read it."""

from __future__ import annotations

RESULTS_TABLE = "benchmarks/results.csv"  # the scratch results table of every benchmark subcommand
# The nightly gate's protocol (docs/benchmarking.md: its seed spread): the fidelity proxy,
# CIFAR-100 2 tasks x 10 classes with all images, 10 epochs per task, the five methods the fidelity table
# compares with the authors' code but LwF.MC, whose saturating BCE (the reference's) collapses its task 1
# to chance on some seeds (A_N 5.2-21.7 over four; docs/fidelity.md). The 4-class `default` profile of the main job
# is too small to gate on: one run of a replay method there moves by 6-7 points A_N.
# The many-task proxy (`fidelity-proxy-4task`) is not gated: over three seeds its A_N bands allow ABD and
# Base to lose half their mean (docs/benchmarking.md, "The many-task proxy stays out of the gate").
GATE_PROFILE = "fidelity-proxy"
GATE_METHODS = ("base", "lwf", "deepinversion", "abd")
# The thread count is part of the device class (reduction order): pinned, so that a CPU node with more
# cores runs the baseline's numerics (2 threads, the machine the baseline was measured on).
GATE_OVERRIDES = (f"methods=[{','.join(GATE_METHODS)}]", "runtime.threads=2")
GATE_BASELINE = "benchmarks/baseline-fidelity-proxy.csv"
# Every gate run's rows, on any machine, are appended here and committed: `outputs/` is scratch, and a
# device class's band is built from runs of several sessions (about 75 min per seed on a 2-core AVX2
# CPU), so the rows a promote needs must outlive the machine that made them. The baseline's rows are
# a subset of this ledger (tests/test_benchmarking.py).
GATE_LEDGER = "benchmarks/gate-runs.csv"
# The nightly run's training seeds (`train_seed`) at the gate profile's class order (`seed` 0): the
# band is the training noise of one fixed set of tasks; another class order is another benchmark, and
# `compare` refuses to mix them.
GATE_SEEDS = (0, 1, 2)
def gate_run(overrides: list[str]) -> tuple[list[str], list[str]]:
    """The gate's profiles and overrides: its profile, its methods and thread count, then `overrides`."""
    return [GATE_PROFILE], [*GATE_OVERRIDES, *overrides]
