"""Read the metadata header of a GGUF file (architecture, layers, heads) to size its KV cache.

Only the key/value header is read, stopping as soon as the wanted keys are found. The `gguf`
package reads the same data but maps every tensor first (2.1 s for a 98 MB file here), too
slow for the scheduler, which asks before every first load.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["kv_cache_bytes", "read_metadata"]

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_WANTED = (
    "block_count",
    "embedding_length",
    "attention.head_count",
    "attention.head_count_kv",
    "context_length",
    "attention.key_length",
    "attention.value_length",
)


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO) -> str:
    return fh.read(_read(fh, "<Q")).decode("utf-8", "replace")


def _value(fh: BinaryIO, kind: int) -> Any:
    if kind == _STRING:
        return _string(fh)
    if kind == _ARRAY:
        item, count = _read(fh, "<I"), _read(fh, "<Q")
        if item in _SCALARS:  # skip numbers in one seek
            fh.seek(struct.calcsize(_SCALARS[item]) * count, 1)
        else:
            for _ in range(count):
                _value(fh, item)
        return None
    if kind not in _SCALARS:
        raise ValueError(f"unknown GGUF value type {kind}")
    return _read(fh, _SCALARS[kind])


def read_metadata(path: Path) -> dict[str, Any]:
    """The architecture and the sizing keys (prefix removed) of a GGUF v2/v3 file."""
    out: dict[str, Any] = {}
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ValueError(f"{path.name} is not a GGUF file")
        if _read(fh, "<I") < 2:
            raise ValueError(f"{path.name}: GGUF v1 is not supported")
        _read(fh, "<Q")  # tensor count
        for _ in range(_read(fh, "<Q")):
            key, kind = _string(fh), _read(fh, "<I")
            value = _value(fh, kind)
            if key == "general.architecture":
                out["architecture"] = value
            elif key == "general.size_label" and isinstance(value, str):
                out["size_label"] = value
            elif "architecture" in out and key.startswith(out["architecture"] + "."):
                short = key[len(out["architecture"]) + 1 :]
                if short in _WANTED:
                    out[short] = value
            if "architecture" in out and all(k in out for k in _WANTED[:5]):
                break
    return out


def kv_cache_bytes(meta: dict[str, Any], n_ctx: int, bytes_per_value: int = 2) -> int:
    """Keys and values of ``n_ctx`` tokens for every layer (f16 cache by default)."""
    layers = int(meta["block_count"])
    heads = int(meta["attention.head_count"])
    kv_heads = int(meta.get("attention.head_count_kv") or heads)
    head_dim = int(meta["embedding_length"]) // heads
    key_dim = int(meta.get("attention.key_length") or head_dim)
    value_dim = int(meta.get("attention.value_length") or head_dim)
    return n_ctx * layers * kv_heads * (key_dim + value_dim) * bytes_per_value
