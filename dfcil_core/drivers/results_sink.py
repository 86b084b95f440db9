"""Append-only results sink on S3 (boto3). Endpoint and credentials come from the environment,
as boto3 reads them (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION).

Each run writes new objects under `<prefix>/<run_id>/`; an existing key is never overwritten.
Transient errors are retried with backoff (botocore's standard retry mode); permanent ones
become one-line `DfcilError`s. Uploads are single PUTs, so a partial object is never visible.
"""

from __future__ import annotations

import io as _io
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from dfcil_core.foundations.errors import DfcilError
from dfcil_core.run.results_table import RUNS_FILE, TASKS_FILE, check_metrics, read_runs


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise DfcilError(f"results sink: expected s3://bucket/prefix, got {url!r}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise DfcilError(f"results sink: no bucket in {url!r}")
    return bucket, prefix.strip("/")


class S3ResultsSink:
    def __init__(self, url: str, max_attempts: int = 5, connect_timeout: float = 5, read_timeout: float = 30):
        import boto3
        from botocore.config import Config as BotoConfig

        self.bucket, self.prefix = parse_s3_url(url)
        self.client = boto3.client("s3", config=BotoConfig(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout, read_timeout=read_timeout))

    def _key(self, run_id: str, name: str) -> str:
        return "/".join(p for p in (self.prefix, run_id, name) if p)

    def _call(self, what: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "?")
            raise DfcilError(f"results sink: {what} failed on s3://{self.bucket}: {code}") from None
        except BotoCoreError as err:
            raise DfcilError(f"results sink: {what} failed on s3://{self.bucket}: {type(err).__name__}") from None

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put_new(self, run_id: str, name: str, data: bytes) -> str:
        key = self._key(run_id, name)
        if self._call("check", self._exists, key=key):
            raise DfcilError(f"results sink: s3://{self.bucket}/{key} exists; results are append-only")
        self._call("upload", self.client.put_object, Bucket=self.bucket, Key=key, Body=data)
        return key

    def append_tables(self, results_dir: Path, run_id: str | None = None) -> str:
        """Upload runs.csv and tasks.csv of an evaluated run as a new run."""
        run_id = run_id or new_run_id()
        for name in (RUNS_FILE, TASKS_FILE):
            path = Path(results_dir) / name
            if not path.is_file():
                raise DfcilError(f"results sink: missing {path} (run evaluate first)")
            df = read_runs(path, columns=["method", "seed", "train_seed"])
            df.insert(0, "run_id", run_id)
            buf = _io.StringIO()
            df.to_csv(buf, index=False)
            self.put_new(run_id, name, buf.getvalue().encode())
        return run_id

    def list_runs(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/" if self.prefix else ""
        runs: set[str] = set()

        def collect() -> None:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    runs.add(obj["Key"][len(prefix):].split("/", 1)[0])

        self._call("list", collect)
        return sorted(runs)

    def read_table(self, name: str = "runs.csv") -> pd.DataFrame:
        frames = []
        for run in self.list_runs():
            obj = self._call("download", self.client.get_object, Bucket=self.bucket, Key=self._key(run, name))
            frames.append(check_metrics(pd.read_csv(obj["Body"]), f"s3://{self.bucket}/{self._key(run, name)}"))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
