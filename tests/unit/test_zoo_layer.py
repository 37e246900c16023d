"""Pieces of the zoo compatibility layer on their own: fitting prompts to a context, the
pipmaster stand-in, context details, function-call parsing, the per-request workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lollms_server.bindings.types import Message
from lollms_server.personalities.zoo.fit import Tokens, answer_room, fit_messages


class WordPort:
    """A port whose model counts one token per word (or has no tokenizer)."""

    def __init__(self, tokenizer: bool = True) -> None:
        self.tokenizer = tokenizer
        self.calls = 0
        self.vocab: list[str] = []

    async def tokenize(self, binding: Any, model: Any, text: str) -> list[int] | None:
        self.calls += 1
        if not self.tokenizer:
            return None
        ids = []
        for word in text.split():
            if word not in self.vocab:
                self.vocab.append(word)
            ids.append(self.vocab.index(word))
        return ids

    async def detokenize(self, binding: Any, model: Any, ids: list[int]) -> str | None:
        return " ".join(self.vocab[i] for i in ids) if self.tokenizer else None


def _words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


async def test_short_prompts_are_not_tokenized() -> None:
    port = WordPort()
    messages = (Message("system", "Be brief."), Message("user", "Hi"))
    fitted, used = await fit_messages(messages, 100, Tokens(port, None, None))  # type: ignore[arg-type]
    assert fitted == messages and used <= 100 and port.calls == 0


async def test_oldest_turns_go_first_then_the_largest_part_loses_its_middle() -> None:
    tokens = Tokens(WordPort(), None, None)  # type: ignore[arg-type]
    messages = (
        Message("system", "Rules. " + _words(200, "doc")),
        Message("user", _words(30, "old")),
        Message("assistant", _words(30, "older")),
        Message("user", "the question"),
    )
    fitted, used = await fit_messages(messages, 120, tokens)
    assert [m.role for m in fitted] == ["system", "user"]  # the history went
    assert fitted[-1].content == "the question"
    system = fitted[0].content
    assert system.startswith("Rules. doc0") and system.endswith("doc199")  # head and end
    assert "[...]" in system and used <= 120


async def test_bindings_without_a_tokenizer_are_counted_by_words() -> None:
    port = WordPort(tokenizer=False)
    tokens = Tokens(port, None, None)  # type: ignore[arg-type]
    fitted, used = await fit_messages((Message("user", _words(300, "w")),), 50, tokens)
    assert tokens.approximate and used <= 50
    assert fitted[0].content.startswith("w0 ") and fitted[0].content.endswith("w299")


def test_answer_room() -> None:
    assert answer_room(2048, 64) == 64
    assert answer_room(2048, 4096) == 1024  # at most half the context
    assert answer_room(2048, None) == 512 and answer_room(512, None) == 128


def test_pipmaster_stand_in_checks_but_never_installs(caplog: pytest.LogCaptureFixture) -> None:
    from lollms_server.personalities.zoo import pipmaster as pm

    assert pm.is_installed("pyyaml") and pm.is_installed("PyYAML", ">=5")
    assert not pm.is_installed("pyyaml", "<1")
    assert pm.get_installed_version("lollms-test-absent-z") is None
    assert pm.ensure_packages(["pyyaml"]) is True  # nothing to do, nothing refused
    assert pm.install("pyyaml") is False  # an install is refused even when present
    assert pm.ensure_packages({"pyyaml": ">=1", "lollms-test-absent-z": None}) is False
    assert "installing lollms-test-absent-z (pipmaster.ensure_packages) was refused" in (
        caplog.text
    )
    assert "Version" in (pm.get_package_info("pyyaml") or "")
    with pytest.raises(AttributeError, match="'pipmaster.async_install' is not provided"):
        pm.async_install  # noqa: B018


def test_context_details_text_fields_are_strings() -> None:
    from lollms_server.personalities.zoo.lollms.prompting import LollmsContextDetails

    details = LollmsContextDetails(prompt="hi")
    joined = "".join(
        [
            details.conditionning,
            details.documentation,
            details.user_description,
            details.positive_boost,
            details.negative_boost,
            details["extra"],
            details.discussion_messages,
        ]
    )
    assert joined == "" and details.function_calls == [] and details.knowledge == ""
    with pytest.raises(AttributeError, match="LollmsContextDetails has no 'nothing'"):
        details.nothing  # noqa: B018
    details["discussion_messages"] = "more"
    assert details.get("discussion_messages") == "more"


def test_function_calls_are_read_and_run() -> None:
    from lollms_server.personalities.zoo.calls import execute_function_calls, extract_function_calls

    text = (
        'Sure.\n```function\n{"function_name": "add", "function_parameters": {"a": 1, "b": 2}}\n'
        '```\n```json\n{"not": "a call"}\n```\n```function\n{"name": "boom", "arguments": []}\n```'
    )
    calls = extract_function_calls(text)
    assert calls == [
        {"function_name": "add", "function_parameters": {"a": 1, "b": 2}},
        {"function_name": "boom", "function_parameters": []},
    ]

    def boom() -> None:
        raise ValueError("no")

    definitions = [
        {"function_name": "add", "function": lambda a, b: a + b},
        {"function_name": "boom", "function": boom},
    ]
    results = execute_function_calls([*calls, {"function_name": "nope"}], definitions)
    assert results == [3, "Error calling boom: ValueError: no", "Function nope not found."]


def test_workspace_keeps_what_the_processor_wrote(tmp_path: Path) -> None:
    from lollms_server.personalities.zoo.runtime import Workspace, file_url

    workspace = Workspace(tmp_path / "data", "cat/name", "request-1")
    workspace.open()
    upload = workspace.discussion / "image_0.png"
    upload.write_bytes(b"client's")
    workspace.add_input(upload)
    (workspace.discussion / "images").mkdir()
    workspace.close()
    assert not workspace.discussion.exists()  # inputs and empty folders removed
    kept = Workspace(tmp_path / "data", "cat/name", "request-2")
    kept.open()
    (kept.discussion / "out.txt").write_text("made")
    kept.close()
    assert (kept.discussion / "out.txt").read_text() == "made"
    assert file_url(kept.discussion / "out.txt") == (
        "/api/v1/personality_files/cat/name/discussions/request-2/out.txt"
    )
    with pytest.raises(ValueError, match="not under the personalities' data folder"):
        file_url(tmp_path / "elsewhere.txt")
    with pytest.raises(ValueError, match="leaves the data folder"):
        Workspace(tmp_path / "data", "../escape", "request-3")
