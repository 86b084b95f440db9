"""Device selection, seeding, precision: one code path for CPU and CUDA."""

from __future__ import annotations

import contextlib
import platform
import signal
from collections.abc import Iterator

import torch

from dfcil_core.foundations.config import RuntimeConfig
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.foundations.provenance import FINGERPRINT_COLUMNS


class SigtermFlag:
    """Set by SIGTERM; the training and inversion loops check it between steps."""

    requested = False

    @classmethod
    def install(cls) -> None:
        def handler(_signum: int, _frame: object) -> None:
            cls.requested = True

        with contextlib.suppress(ValueError):  # not the main thread (e.g. inside a test runner thread)
            signal.signal(signal.SIGTERM, handler)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DfcilError("runtime.device: cuda requested but no CUDA device is available")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def device_record(device: torch.device) -> dict[str, str]:
    """What a training stage's log records of the device that ran it: its name and its device class."""
    return {"device": device_name(device), "device_class": str(device_fingerprint(device)["device_class"])}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_fingerprint(device: torch.device) -> dict[str, str | int]:
    """What decides the floating-point trajectory of a run: the CPU's vector ISA (AVX2 vs AVX-512
    kernels), the thread count (reduction order), the GPU model and the torch version. `device_class`
    is what `benchmark compare` gates like against like on (the CPU model is informational)."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    fp: dict[str, str | int] = {"cpu_model": _cpu_model(), "cpu_isa": torch.backends.cpu.get_cpu_capability(),
                                "threads": torch.get_num_threads(), "gpu": gpu, "torch": torch.__version__}
    fp["device_class"] = (f"{gpu} | torch {fp['torch']}" if device.type == "cuda"
                          else f"cpu {fp['cpu_isa']} | {fp['threads']} threads | torch {fp['torch']}")
    assert list(fp) == FINGERPRINT_COLUMNS
    return fp


def configure(rt: RuntimeConfig) -> torch.device:
    if rt.threads:
        torch.set_num_threads(rt.threads)
    device = resolve_device(rt.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def task_seed(seed: int, task: int) -> int:
    """The authors' per-task seed (seed * 100 + task index)."""
    return seed * 100 + task


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """bf16 autocast on CUDA; a no-op on CPU (the CPU path stays fp32 and bit-reproducible)."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def prepare_model(model: torch.nn.Module, device: torch.device, rt: RuntimeConfig) -> torch.nn.Module:
    model = model.to(device)
    if rt.channels_last:  # measured faster for ResNet-32 on both CUDA and this AVX2 CPU
        model = model.to(memory_format=torch.channels_last)
    return model


def compile_module(module: torch.nn.Module, rt: RuntimeConfig, device: torch.device) -> torch.nn.Module:
    """torch.compile `module`'s calls in place when `runtime.compile` asks (static shapes): inductor on
    CUDA and on the CPU alike. `Module.compile` keeps the module's state_dict keys, so a checkpoint
    does not depend on whether its run compiled. The CPU's inductor needs a C++ compiler: without one,
    one line instead of an error deep in the first step."""
    if not rt.compile:
        return module
    if device.type == "cpu":
        from torch._inductor import cpp_builder

        try:
            cpp_builder.get_cpp_compiler()
        except Exception:  # inductor's own search: g++, clang++ ... or $CXX
            raise DfcilError("runtime.compile on the CPU compiles with inductor, which needs a C++ compiler "
                             "(g++ or clang++) and found none; install one or set runtime.compile=false") from None
    module.compile(mode=rt.compile_mode, dynamic=False)
    return module


def compile_features(model: torch.nn.Module, rt: RuntimeConfig, device: torch.device) -> torch.nn.Module:
    """Compile the classifier's feature trunk (the head grows from task to task: it stays eager)."""
    compile_module(model.features, rt, device)
    return model


def fused_if_supported(device: torch.device) -> dict[str, bool]:
    """Single-kernel optimiser steps (torch's fused SGD/Adam) on CPU and CUDA."""
    return {"fused": device.type in ("cpu", "cuda")}


def step_begin(rt: RuntimeConfig) -> None:
    """Mark a new training or inversion step for CUDA graphs (the last replay's outputs may be
    overwritten); nothing for the other modes and for eager runs."""
    if rt.compile and rt.compile_mode == "reduce-overhead":
        torch.compiler.cudagraph_mark_step_begin()
