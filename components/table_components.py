"""KFP components of the paper-tables fan-out: a seed per branch, collecting the branches' result
tables, and `dfcil tables` over them. Each calls one dfcil_core function."""

from types import SimpleNamespace
from typing import List  # noqa: UP035 (KFP reads typing.List in artifact annotations)

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Output

from components.stage_components import DEFAULT_IMAGE


def with_seed(config_yaml: str, seed: int) -> str:
    """The branch's config: the same params with class-order seed `seed`."""
    from dfcil_core.drivers.kfp_workspace import config_with_seed

    return config_with_seed(config_yaml, seed)


def collect_runs(results: Input[List[Dataset]], runs: Output[Dataset]):  # noqa: UP006
    """runs.csv of every branch of one fan-out, concatenated."""
    from dfcil_core.lab.paper_tables import collect_runs as collect

    collect([r.path for r in results], runs.path)


def concat_runs(runs_a: Input[Dataset], runs_b: Input[Dataset], runs: Output[Dataset]):
    """Two collections of runs, concatenated (one fan-out per task split)."""
    from dfcil_core.lab.paper_tables import collect_runs as collect

    collect([runs_a.path, runs_b.path], runs.path)


def paper_tables(runs: Input[Dataset], tables: Output[Dataset], report: Output[HTML]):
    """Table 1 / Table 3 shaped Markdown, CSV and HTML beside the paper's values."""
    import shutil

    from dfcil_core.lab.paper_tables import tables_step

    page = tables_step(runs.path, tables.path)
    shutil.copy(page, report.path)


def make_table_components(image: str = DEFAULT_IMAGE) -> SimpleNamespace:
    return SimpleNamespace(**{fn.__name__: dsl.component(base_image=image)(fn)
                              for fn in (with_seed, collect_runs, concat_runs, paper_tables)})

