"""Where a result came from: the device class that trained it, and the commit."""

from __future__ import annotations

import subprocess as sp

import pytest

from dfcil_core.foundations import provenance as pv

AVX2 = "cpu AVX2 | 2 threads | torch 2.14.1"


def test_device_classes_combine_and_lose_only_their_thread_count():
    one, two = "cpu AVX512 | 1 threads | torch 2.14.1", "cpu AVX512 | 2 threads | torch 2.14.1"
    assert pv.combine_device_classes([two, two]) == two
    assert pv.combine_device_classes([two, one, two]) == "cpu AVX512 | 1+2 threads | torch 2.14.1"
    assert pv.combine_device_classes(["cpu AVX512 | 1+2 threads | torch 2.14.1", "cpu AVX512 | 4 threads | torch 2.14.1"]) \
        == "cpu AVX512 | 1+2+4 threads | torch 2.14.1"
    assert pv.combine_device_classes([AVX2, two]) == f"{AVX2} + {two}"  # another ISA: never merged
    assert pv.machine_class("cpu AVX512 | 1+2 threads | torch 2.14.1") == pv.machine_class(one) == "cpu AVX512 | torch 2.14.1"
    assert pv.machine_class("NVIDIA H200 | torch 2.14.1") == "NVIDIA H200 | torch 2.14.1"
    assert pv.thread_counts("cpu AVX512 | 1+2 threads | torch 2.14.1") == [1, 2] and pv.thread_counts("unknown") == []
    assert pv.with_threads(two, 1) == one and pv.with_threads("unknown", 1) == "unknown"
    with pytest.raises(ValueError):
        pv.combine_device_classes([])


def test_the_commit_is_read_once_per_process(monkeypatch):
    """A run of hours records the commit it started from, though the checkout moves under it."""
    heads = iter(["a" * 40, "b" * 40])
    monkeypatch.setattr(pv.subprocess, "run", lambda *a, **k: sp.CompletedProcess(a, 0, stdout=next(heads)))
    pv.git_commit.cache_clear()
    try:
        assert pv.git_commit() == "a" * 12 and pv.git_commit() == "a" * 12
        assert pv.code_version().endswith("+" + "a" * 12)
    finally:
        pv.git_commit.cache_clear()
