"""Code and data load only from the configured folders: a symbolic link leading out of one is
reported and skipped, never imported or served."""

from __future__ import annotations

from pathlib import Path

import pytest

from lollms_server.bindings.registry import BindingRegistry
from lollms_server.functions.registry import FunctionRegistry
from lollms_server.personalities.registry import PersonalityRegistry

RAN = "import os\nos.environ['LOLLMS_CONTAINMENT_RAN'] = '{}'\n"


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("LOLLMS_CONTAINMENT_RAN", raising=False)
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def test_binding_plugins_linking_outside_are_not_imported(
    tmp_path: Path, outside: Path, monkeypatch
) -> None:
    (outside / "evil.py").write_text(RAN.format("module"))
    (outside / "evilpkg").mkdir()
    (outside / "evilpkg" / "__init__.py").write_text(RAN.format("package"))
    plugins = tmp_path / "bindings"
    plugins.mkdir()
    (plugins / "evil.py").symlink_to(outside / "evil.py")
    (plugins / "evilpkg").symlink_to(outside / "evilpkg")
    registry = BindingRegistry()
    registry.discover_folder(plugins)
    assert "LOLLMS_CONTAINMENT_RAN" not in __import__("os").environ
    errors = {s.name: s.error for s in registry.all() if s.error}
    assert set(errors) == {"evil", "evilpkg"}
    assert all("outside the configured bindings folder" in e for e in errors.values())


def test_function_modules_linking_outside_are_not_imported(tmp_path: Path, outside: Path) -> None:
    (outside / "evil_fn.py").write_text(RAN.format("function"))
    functions = tmp_path / "functions"
    functions.mkdir()
    (functions / "evil_fn.py").symlink_to(outside / "evil_fn.py")
    registry = FunctionRegistry.discover([functions])
    assert "LOLLMS_CONTAINMENT_RAN" not in __import__("os").environ
    assert [p["reason"] for p in registry.problems] == [
        "links outside the configured functions folder: not loaded"
    ]


@pytest.mark.parametrize("name", ["SOUL.md", "config.yaml"])
def test_personality_files_linking_outside_are_not_served(
    tmp_path: Path, outside: Path, name: str
) -> None:
    (outside / "secret.txt").write_text("name: secret\nTOP-SECRET-CONTENT\n")
    folder = tmp_path / "personalities" / "cat" / "leaky"
    folder.mkdir(parents=True)
    (folder / name).symlink_to(outside / "secret.txt")
    registry = PersonalityRegistry.discover([tmp_path / "personalities"])
    assert registry.all() == []
    assert [p.reason for p in registry.problems] == [f"{name} links outside the personality folder"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('a: &a ["x", "x"]\nb: &b [*a, *a]\nname: bomb\n', "aliases"),
        ("name: bin\nblob: !!binary /w==\n", "binary"),
    ],
)
def test_personality_yaml_that_cannot_be_served_is_refused(
    tmp_path: Path, text: str, reason: str
) -> None:
    """A few lines of nested YAML aliases expand to gigabytes; !!binary cannot be JSON."""
    folder = tmp_path / "personalities" / "cat" / "odd"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(text)
    registry = PersonalityRegistry.discover([tmp_path / "personalities"])
    assert registry.all() == []
    assert reason in registry.problems[0].reason


def test_roots_with_the_same_name_keep_every_personality(tmp_path: Path) -> None:
    roots = []
    for index in range(3):
        folder = tmp_path / f"r{index}" / "zoo" / "cat" / "p"
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(f"name: p{index}\n")
        roots.append(tmp_path / f"r{index}" / "zoo")
    registry = PersonalityRegistry.discover(roots)
    assert sorted(p.name for p in registry.all()) == ["p0", "p1", "p2"]


def test_a_root_that_is_itself_a_personality(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "name: solo\nuser_message_prefix: '!@>User:'\nai_message_prefix: ' Assistant: '\n"
    )
    found = PersonalityRegistry.discover([tmp_path]).all()
    assert [p.name for p in found] == ["solo"]
    # Prefixes written as whole lollms headers are reduced to the name.
    assert (found[0].user_message_prefix, found[0].ai_message_prefix) == ("User", "Assistant")
