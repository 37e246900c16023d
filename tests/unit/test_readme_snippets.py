"""Every binding config snippet in README.md is valid and creates a working instance."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lollms_server.app import build_registry
from lollms_server.bindings.manager import BindingManager
from lollms_server.config import load_config

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = README.split("## Binding configuration examples", 1)[1].split("\n## ", 1)[0]
SNIPPETS = re.findall(r"```toml\n(.*?)```", SECTION, re.S)


def test_every_builtin_binding_has_a_snippet() -> None:
    types = {re.search(r'type = "(\w+)"', s).group(1) for s in SNIPPETS}  # type: ignore[union-attr]
    assert types == {
        "llamacpp",
        "openai",
        "vllm",
        "ollama",
        "transformers",
        "scripted",
        "diffusers",
        "musicgen",
        "piper",
        "hf_embeddings",
        "asr",
    }


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.split("]")[0][10:])
async def test_snippet_validates_and_instantiates(snippet: str, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(snippet)
    settings = load_config(path)
    manager = BindingManager.from_settings(settings, build_registry(settings))
    (name,) = manager.names()
    binding = manager.get(name)
    assert binding.name in snippet
    # Those that list models without a running server must list some.
    if binding.name in ("scripted", "openai", "llamacpp", "musicgen", "piper"):
        assert [m.name for m in await binding.list_models()]
