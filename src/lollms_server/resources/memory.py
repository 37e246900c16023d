"""Memory budgets: sizes from config ("24GiB", "auto") and detection of what the machine has."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

__all__ = [
    "DeviceBudget",
    "detect_gpu_memory",
    "detect_system_memory",
    "format_bytes",
    "gpu_device",
    "parse_size",
]

logger = logging.getLogger(__name__)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int | float) -> int:
    """Bytes from ``1073741824``, ``"1GiB"``, ``"512 MB"``... Raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '24GiB' or a number of bytes")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return int(value)
    match = _SIZE.match(value)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"'{value}' is not a size (examples: '24GiB', '512MiB', '8GB')")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


def detect_system_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def detect_gpu_memory() -> tuple[list[tuple[int, str]], str]:
    """``([(total bytes, name) per GPU], note)`` through NVML; an empty list when none."""
    try:
        import pynvml
    except ImportError:
        return [], "no GPU detected (nvidia-ml-py is not installed: pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
        try:
            gpus = []
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                name = pynvml.nvmlDeviceGetName(handle)
                gpus.append(
                    (
                        int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                        name.decode() if isinstance(name, bytes) else str(name),
                    )
                )
            return gpus, "detected (NVML)" if gpus else "no GPU detected (NVML lists none)"
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # NVML raises its own error types when no driver is present
        return [], f"no GPU detected ({type(exc).__name__}: {exc})"


def gpu_device(name: str) -> str:
    """Normalise a device name: ``gpu``/``cuda`` -> ``gpu:0``, ``cuda:1`` -> ``gpu:1``."""
    if name in ("gpu", "cuda"):
        return "gpu:0"
    for prefix in ("cuda:", "gpu:"):
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return f"gpu:{int(name[len(prefix) :])}"
    return name


@dataclass
class DeviceBudget:
    """What one device may hold: ``total`` minus ``margin``; ``used`` is the reserved part."""

    name: str
    total: int
    margin: int
    source: str
    used: int = 0

    @property
    def capacity(self) -> int:
        return max(0, self.total - self.margin)

    @property
    def free(self) -> int:
        return self.capacity - self.used
