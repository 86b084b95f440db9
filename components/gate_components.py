"""KFP components of the regression-gate pipeline: run a profile, compare with the baseline, gate."""

import os
from types import SimpleNamespace

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Output

DEFAULT_IMAGE = os.environ.get("DFCIL_IMAGE", "ghcr.io/dfcil/dfcil:0.1.0")


def empty_table(table: Output[Dataset]):
    """The start of the benchmark table chain."""
    from dfcil_core.lab.gate import TABLE_COLUMNS

    with open(table.path, "w") as f:
        f.write(",".join(TABLE_COLUMNS) + "\n")


def run_profile(profile: str, overrides: list, table_in: Input[Dataset], table: Output[Dataset]):
    """Run one preset end to end (all stages) and append its rows to the table."""
    import shutil
    import tempfile
    from pathlib import Path

    from dfcil_core.lab.gate import run_profiles

    shutil.copy(table_in.path, table.path)
    with tempfile.TemporaryDirectory() as tmp:
        run_profiles([profile], Path(tmp), list(overrides), Path(table.path))


def compare(table: Input[Dataset], baseline_json: str, report: Output[HTML], summary: Output[Markdown]) -> bool:
    """Mean over seeds vs the baseline (rows as JSON records); the HTML report embeds the plots.
    Returns True on a regression."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    import pandas as pd

    from dfcil_core.lab import gate

    current = pd.read_csv(table.path)
    baseline = pd.DataFrame(json.loads(baseline_json))
    comp = gate.compare(current, baseline)
    with tempfile.TemporaryDirectory() as tmp:
        paths = gate.write_reports(comp, current, baseline, Path(tmp))
        shutil.copy(paths["html"], report.path)
        shutil.copy(paths["markdown"], summary.path)
    return comp.failed


def gate(regressed: bool):
    """Fail the run on a regression, after the report is stored."""
    if regressed:
        raise SystemExit("dfcil benchmark: REGRESSION against the baseline (see the compare report)")


def make_components(image: str = DEFAULT_IMAGE) -> SimpleNamespace:
    return SimpleNamespace(**{fn.__name__: dsl.component(base_image=image)(fn)
                              for fn in (empty_table, run_profile, compare, gate)})
