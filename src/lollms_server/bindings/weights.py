"""How many bytes a checkpoint folder takes once loaded, from its files' headers.

A folder may hold the same weights several times (``model.safetensors`` beside
``pytorch_model.bin``, or an ``fp16`` variant beside the default files): only what
``from_pretrained`` loads by default is counted, one set per folder, and floating-point
tensors are counted at the dtype they will be loaded in.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

__all__ = ["checkpoint_bytes", "local_folder", "models_in", "safetensors_counts"]

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
_STORED_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
_VARIANT = re.compile(r"\.(fp16|fp32|bf16|ema|non_ema)(?=[.-])")
_TORCH_FILES = (".bin", ".pt", ".ckpt", ".pth")


def safetensors_counts(path: Path) -> dict[str, int]:
    """Element counts per stored dtype, read from a .safetensors header (nothing loaded)."""
    with path.open("rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        elements = 1
        for dim in info["shape"]:
            elements *= dim
        counts[info["dtype"]] = counts.get(info["dtype"], 0) + elements
    return counts


def _loaded_files(folder: Path) -> list[Path]:
    """The weight files of one folder that a default ``from_pretrained`` reads."""
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        plain = [p for p in safetensors if not _VARIANT.search(p.name)]
        return plain or safetensors
    torch_files = sorted(p for p in folder.iterdir() if p.suffix in _TORCH_FILES)
    plain = [p for p in torch_files if not _VARIANT.search(p.name)]
    return plain or torch_files


def _folder_bytes(folder: Path, dtype: str | None) -> int:
    total = 0
    for path in _loaded_files(folder):
        if path.suffix != ".safetensors":
            total += path.stat().st_size  # pickled torch files: no cheap header
            continue
        for kind, count in safetensors_counts(path).items():
            floating = kind.startswith(("F", "BF"))
            size = _DTYPE_BYTES[dtype] if dtype and floating else _STORED_BYTES.get(kind, 4)
            total += count * size
    return total


def checkpoint_bytes(folder: Path, dtype: str | None = None, components: bool = False) -> int:
    """Bytes of the checkpoint in ``folder`` loaded as ``dtype`` (None: as stored).

    ``components``: a diffusers pipeline, one checkpoint per subfolder (files at its root,
    such as a single-file export, are not what the pipeline loads)."""
    if not components:
        return _folder_bytes(folder, dtype)
    return sum(_folder_bytes(sub, dtype) for sub in sorted(folder.iterdir()) if sub.is_dir())


def local_folder(source: str, marker: str) -> Path | None:
    """The checkpoint's folder: ``source`` itself, or a hub id's snapshot in the local cache
    (found through ``marker``, a file every such checkpoint has)."""
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cached = try_to_load_from_cache(source, marker)
    return Path(cached).parent if isinstance(cached, str) else None


def models_in(folder: Path, marker: str, configured: dict[str, str]) -> dict[str, str]:
    """Model name -> source: each folder below ``folder`` holding ``marker`` (named by its
    relative path), then the ``configured`` ones (which win)."""
    found: dict[str, str] = {}
    if folder.is_dir():
        for path in sorted(folder.rglob(marker)):
            found[path.parent.relative_to(folder).as_posix()] = str(path.parent)
    found.update(configured)
    return found
