"""What the torch-based bindings share: which memory budget a device uses, the default
dtype for it, and giving memory back after an unload. Torch is imported lazily."""

from __future__ import annotations

import contextlib
import gc

__all__ = ["budget_of", "default_dtype", "free_memory"]


def budget_of(device: str) -> str:
    """The scheduler's budget for a torch device: ``cpu`` (Apple's unified memory is system
    memory), ``gpu:N`` for ``cuda:N``, ``gpu`` for the default GPU."""
    if device in ("cpu", "mps"):
        return "cpu"
    return "gpu:" + device.split(":", 1)[1] if device.startswith("cuda:") else "gpu"


def default_dtype(dtype: str, device: str) -> str:
    """``dtype`` unless it is ``auto``: float32 on CPUs, float16 on GPUs."""
    if dtype != "auto":
        return dtype
    return "float32" if device in ("cpu", "mps") else "float16"


def free_memory() -> None:
    """Collect what an unloaded model left, and return cached GPU blocks to the driver."""
    gc.collect()
    with contextlib.suppress(ImportError):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
