"""The authors' entry point on the CPU (through ../shared/reference/cpu.py), their BiC included: its
bias layer builds its parameters on "cuda", so a CPU one takes its place; nothing else changes.

    python benchmarks/reference_run.py run_dfcil.py --dataset CIFAR100 --gpuid -1 ... --learner_name BIC
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
    script = os.path.join(cpu.REF, sys.argv[1])
    sys.argv = [script] + sys.argv[2:]
    runpy.run_path(script, run_name="__main__")
