"""The binding SDK's public surface is pinned: a change to it is a deliberate change here."""

from __future__ import annotations

import ast
from pathlib import Path

import lollms_server.bindings as sdk
from lollms_server.bindings import Binding, BindingConfig
from lollms_server.bindings.registry import BindingRegistry
from lollms_server.bindings.testing import ScriptedBinding, ScriptedConfig

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {
    "BadRequest", "Binding", "BindingConfig", "BindingContext", "BindingRequest",
    "BindingUnavailable", "Capabilities", "ConfigT", "EmbeddingResult", "Emit", "Event",
    "Finished", "GenerationFailed", "MediaOptions", "MediaOutput", "MediaPart", "Message",
    "ModelInfo", "ModelNotFound", "SamplingParams", "Step", "TextDelta", "ThoughtsDelta",
    "ToolCall", "UnsupportedCapability", "Usage", "encode_image", "encode_mp4", "encode_wav",
    "input_image", "media_options", "prompt_of", "run_stoppable", "stream_thread",
}  # fmt: skip


def test_public_surface_is_pinned() -> None:
    assert set(sdk.__all__) == PUBLIC
    assert all(hasattr(sdk, name) for name in sdk.__all__)


def test_config_class_comes_from_the_generic_parameter() -> None:
    class MyConfig(BindingConfig):
        level: int = 3

    class Mine(Binding[MyConfig]):
        name = "mine"

    class Derived(Mine):
        name = "derived"

    assert Mine.Config is MyConfig and Derived.Config is MyConfig
    assert ScriptedBinding.Config is ScriptedConfig
    assert Binding.Config is BindingConfig


def test_echo_example_uses_only_the_sdk_and_loads() -> None:
    path = ROOT / "zoos" / "bindings" / "echo_binding.py"
    imported = {
        node.module
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and "lollms_server" in node.module
    }
    assert imported == {"lollms_server.bindings"}
    registry = BindingRegistry()
    registry.discover_folder(path.parent)
    source = registry.get("echo")
    assert source is not None and source.cls is not None
    assert source.cls.Config.model_json_schema()["properties"]["prefix"]["default"] == ""


def test_every_builtin_binding_has_its_own_config() -> None:
    registry = BindingRegistry()
    registry.discover_entry_points()
    for source in registry.all():
        assert source.cls is not None, source.error
        assert source.cls.Config is not BindingConfig or source.name == "vllm", source.name
