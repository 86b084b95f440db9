"""Running the compiled dfcil pipeline in-process with `kfp.local`, as the DVC tests compare it."""

from __future__ import annotations

from pathlib import Path

from dfcil_core.foundations.config import Config


def run_pipeline_locally(cfg: Config, work: Path, monkeypatch) -> Path:
    """Run the pipeline for `cfg` under `work` (subprocess runner, no GPU, no S3) and return the
    one run folder it wrote (the one holding `metrics.json` and `results/`)."""
    from kfp import local

    from pipelines.dfcil_pipeline import build_pipeline

    monkeypatch.chdir(work)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "kfp_root"))
    build_pipeline(cfg, gpu=False, s3_secret=None)()
    found = [p.parent for p in (work / "kfp_root").rglob("metrics.json") if (p.parent / "results").is_dir()]
    assert len(found) == 1, found
    return found[0]
