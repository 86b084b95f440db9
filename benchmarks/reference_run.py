"""The authors' entry point on the CPU (through ../shared/reference/cpu.py), their BiC included: its
bias layer builds its parameters on "cuda", so a CPU one takes its place; nothing else changes.

    python benchmarks/reference_run.py run_dfcil.py --dataset CIFAR100 --gpuid -1 ... --learner_name BIC

REFERENCE_CLASS_ORDER=k keeps class order k in every trial (`--rand_split` shuffles with the trial index
otherwise), so trial r is training seed r of that order; the log folder records it in protocol.json,
with the protocol's task count (REFERENCE_PROTOCOL_TASKS, else the run's `--max_task`), for
benchmarks/fidelity_table.py. Every trial writes the device class that runs it into devices.json there.
"""

import os
import runpy
import sys

sys.path.insert(0, os.environ.get("DFCIL_REFERENCE", os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                                     "reference")))
import cpu  # noqa: E402  (makes .cuda() a no-op and puts the authors' code on sys.path)
import learners.kd  # noqa: E402
import models.resnet  # noqa: E402

from dfcil_core.lab.reference_weights import CpuBiasLayer  # noqa: E402

models.resnet.BiasLayer = learners.kd.BiasLayer = CpuBiasLayer

if __name__ == "__main__":
    from pathlib import Path

    import torch
    import trainer  # the authors' module

    from dfcil_core.lab.reference_check import fix_class_order, record_trial_devices, write_protocol
    from dfcil_core.method.runtime import device_fingerprint

    script = os.path.join(cpu.REF, sys.argv[1])
    sys.argv = [script] + sys.argv[2:]
    record_trial_devices(trainer.Trainer, str(device_fingerprint(torch.device("cpu"))["device_class"]))
    if os.environ.get("REFERENCE_CLASS_ORDER"):

        def last_value(flag: str) -> str:  # argparse keeps a repeated flag's last value
            return sys.argv[len(sys.argv) - 1 - sys.argv[::-1].index(flag) + 1]

        order = int(os.environ["REFERENCE_CLASS_ORDER"])
        tasks = int(os.environ.get("REFERENCE_PROTOCOL_TASKS") or last_value("--max_task"))
        write_protocol(Path(last_value("--log_dir")), order, tasks)
        fix_class_order(trainer.Trainer, order)
    runpy.run_path(script, run_name="__main__")
