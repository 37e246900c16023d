"""A scripted binding: deterministic output with no engine, for tests and plugin authors.

Configure it like any binding (``type = "scripted"``). It answers with ``reply`` (or echoes
the last user message when ``reply`` is empty), one word per chunk, honouring ``max_tokens``
(one token per word) and ``stop``. ``delay_s``, ``fail_after_chunks`` and ``fail_on_load``
script slow and failing backends. The last request it received is kept in ``requests``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import ClassVar

from pydantic import Field, SecretStr

from lollms_server.bindings.base import Binding, BindingConfig, Capabilities
from lollms_server.bindings.events import Event, Finished, TextDelta, ToolCall, Usage
from lollms_server.bindings.types import BindingContext, BindingRequest, ModelInfo
from lollms_server.errors import BindingUnavailable, GenerationFailed, ModelNotFound

__all__ = ["ScriptedBinding", "ScriptedConfig", "ScriptedToolsBinding", "ScriptedToolsConfig"]

_WORD = re.compile(r"\S+\s*|\s+")


class ScriptedConfig(BindingConfig):
    models: list[str] = Field(default_factory=lambda: ["scripted-model"], min_length=1)
    reply: str = ""
    delay_s: float = Field(0.0, ge=0)
    fail_after_chunks: int | None = Field(None, ge=0)
    fail_on_load: bool = False
    load_delay_s: float = Field(0.0, ge=0)
    memory_bytes: dict[str, int] = Field(
        default_factory=dict, description="Declared memory need per model (scheduler tests)."
    )
    measured_bytes: dict[str, int] = Field(
        default_factory=dict,
        description="Memory 'measured' once a model is loaded (replaces "
        "the declared need, as a real binding's measurement does).",
    )
    device: str = "cpu"
    max_concurrency: int = Field(4, ge=1)
    context_size: int = 4096
    chat_template: bool = Field(True, description="False: a completion-only engine (raw text).")
    api_key: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class ScriptedBinding(Binding[ScriptedConfig]):
    name: ClassVar[str] = "scripted"
    description: ClassVar[str] = "Deterministic scripted output, no engine (tests, demos)."
    capabilities: ClassVar[Capabilities] = Capabilities(streaming=True, tokenizer=True)

    def __init__(self, config: ScriptedConfig, context: BindingContext) -> None:
        super().__init__(config, context)
        self.loaded: set[str] = set()
        self.load_count = 0
        self.requests: list[BindingRequest] = []
        self.cancelled = 0
        self.events: list[tuple[str, str]] = []
        self.running = 0
        self.peak_running = 0
        self._vocab: dict[str, int] = {}

    async def list_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(name=m, context_size=self.config.context_size, loaded=m in self.loaded)
            for m in self.config.models
        ]

    def _check(self, model: str) -> None:
        if model not in self.config.models:
            raise ModelNotFound(model, self.instance_name, self.config.models)

    async def load(self, model: str) -> None:
        self._check(model)
        if self.config.fail_on_load:
            raise BindingUnavailable(f"scripted load failure for '{model}'")
        if model in self.loaded:
            raise RuntimeError(f"'{model}' loaded twice")  # the scheduler must prevent this
        await asyncio.sleep(self.config.load_delay_s)
        self.load_count += 1
        self.events.append(("load", model))
        self.loaded.add(model)

    async def unload(self, model: str) -> None:
        self.events.append(("unload", model))
        self.loaded.discard(model)

    def memory_estimate(self, model: str) -> int | None:
        return self.config.memory_bytes.get(model, 0)

    def memory_used(self, model: str) -> int | None:
        return self.config.measured_bytes.get(model) if model in self.loaded else None

    def memory_device(self, model: str) -> str:
        return self.config.device

    def max_concurrency(self, model: str) -> int:
        return self.config.max_concurrency

    def uses_chat_template(self, model: str) -> bool:
        return self.config.chat_template

    def _answer(self, request: BindingRequest) -> str:
        if self.config.reply:
            return self.config.reply
        if request.raw_prompt is not None:
            return request.raw_prompt
        users = [m.content for m in request.messages if m.role == "user"]
        return users[-1] if users else ""

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        self._check(request.model)
        self.requests.append(request)
        params = request.params
        pieces = _WORD.findall(self._answer(request))
        finish = "stop"
        if params.max_tokens is not None and len(pieces) > params.max_tokens:
            pieces, finish = pieces[: params.max_tokens], "length"
        text, emitted = "".join(pieces), 0
        cut = min((i for i in (text.find(s) for s in params.stop if s) if i >= 0), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
            pieces = _WORD.findall(text)
        prompt_tokens = sum(len(_WORD.findall(m.content)) for m in request.messages)
        if request.model not in self.loaded:
            raise GenerationFailed(f"'{request.model}' generated while not loaded")
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        try:
            for piece in pieces:
                if (
                    self.config.fail_after_chunks is not None
                    and emitted >= self.config.fail_after_chunks
                ):
                    raise GenerationFailed("scripted failure in the middle of generation")
                if self.config.delay_s:
                    await asyncio.sleep(self.config.delay_s)
                emitted += 1
                yield TextDelta(piece)
        except (GeneratorExit, asyncio.CancelledError):
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        yield Usage(prompt_tokens=prompt_tokens, completion_tokens=emitted)
        yield Finished(finish)

    async def tokenize(self, model: str, text: str) -> list[int]:
        self._check(model)
        return [self._vocab.setdefault(p, len(self._vocab)) for p in _WORD.findall(text)]

    async def detokenize(self, model: str, tokens: list[int]) -> str:
        self._check(model)
        reverse = {v: k for k, v in self._vocab.items()}
        return "".join(reverse.get(t, "") for t in tokens)


class ScriptedToolsConfig(ScriptedConfig):
    tool_arguments: str = Field('{"city": "Paris"}', description="Arguments of the tool call.")


class ScriptedToolsBinding(ScriptedBinding):
    """Scripted tool calling: with ``tools``, calls the first one; given the tool's result
    (a ``tool`` message), answers with it. For tool round-trip tests."""

    name: ClassVar[str] = "scripted_tools"
    description: ClassVar[str] = "Scripted tool calls (tests of tool round trips)."
    capabilities: ClassVar[Capabilities] = Capabilities(streaming=True, tokenizer=True, tools=True)
    Config: ClassVar[type[BindingConfig]] = ScriptedToolsConfig

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        last = request.messages[-1] if request.messages else None
        if request.tools and (last is None or last.role != "tool"):
            self.requests.append(request)
            function = request.tools[0].get("function", {})
            config = self.config
            assert isinstance(config, ScriptedToolsConfig)
            yield ToolCall(
                f"call_{len(self.requests)}", str(function.get("name", "")), config.tool_arguments
            )
            yield Usage(prompt_tokens=1, completion_tokens=1)
            yield Finished("tool_calls")
            return
        if last is not None and last.role == "tool":
            self.requests.append(request)
            yield TextDelta(f"The tool said: {last.content}")
            yield Usage(prompt_tokens=1, completion_tokens=4)
            yield Finished("stop")
            return
        async for event in super().generate(request):
            yield event
