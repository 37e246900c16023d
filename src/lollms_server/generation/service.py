"""GenerationService: the one path from any API front end to a binding.

Front ends translate their wire format into a :class:`GenerationRequest`, call
:meth:`GenerationService.start` (which resolves binding and model and loads the model, so
that every such error happens before a response starts), then either stream the run's events
or :func:`collect` them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import (
    Event,
    Finished,
    MediaOutput,
    Step,
    TextDelta,
    TextReplace,
    ThoughtsDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from lollms_server.bindings.manager import BindingManager
from lollms_server.bindings.types import BindingRequest, EmbeddingResult, Message, SamplingParams
from lollms_server.config import Settings
from lollms_server.errors import (
    AmbiguousName,
    BadRequest,
    GenerationFailed,
    LollmsError,
    NotFound,
    UnsupportedCapability,
    UnsupportedGenerationType,
    WorkflowTimeout,
)
from lollms_server.functions.registry import FunctionRegistry
from lollms_server.generation.thinking import ThinkSplitter
from lollms_server.generation.tools import ToolLoop
from lollms_server.generation.workflow import WorkflowRun
from lollms_server.personalities.model import Personality
from lollms_server.personalities.prompting import (
    apply_sampling,
    render_lollms_prompt,
    render_plain_prompt,
    system_prompt,
    with_system,
)
from lollms_server.personalities.registry import PersonalityRegistry
from lollms_server.personalities.scripted import ScriptLoader
from lollms_server.resources.scheduler import Lease, Scheduler

__all__ = [
    "CollectedOutput",
    "GenerationRequest",
    "GenerationRun",
    "GenerationService",
    "Run",
    "collect",
]


@dataclass(frozen=True)
class GenerationRequest:
    generation_type: str = "ttt"
    binding_name: str | None = None
    model_name: str | None = None
    messages: tuple[Message, ...] = ()
    raw_prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    personality: str | None = None
    queue_timeout: float | None = None
    keep_alive: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: Any = None
    language: str | None = None  # a personality's translation
    user_name: str | None = None  # fills {{user_name}} in a personality's conditioning
    functions: tuple[str, ...] = ()  # server functions the model may call
    max_tool_rounds: int | None = None
    personality_config: Mapping[str, Any] = field(default_factory=dict)  # script settings


@dataclass
class GenerationRun:
    """A started generation: where it runs, and its events (iterate once)."""

    request_id: str
    binding: Binding
    model: str
    request: BindingRequest
    started: float
    queue_ms: float
    lease: Lease
    first_token_ms: float | None = None
    outcome: str = "cancelled"
    completion_tokens: int = 0
    _iterator: AsyncGenerator[Event, None] | None = field(default=None, init=False, repr=False)
    _first: asyncio.Future[Event] | None = field(default=None, init=False, repr=False)

    def __aiter__(self) -> AsyncIterator[Event]:
        if self._first is not None:
            assert self._iterator is not None
            return _Primed(self._first, self._iterator)
        self._iterator = self._iterate()
        return self._iterator

    async def prime(self, wait: float) -> None:
        """Wait up to ``wait`` seconds for the first event before a stream's response starts:
        an engine that refuses the request at once (a prompt over its context, a grammar it
        cannot parse) then raises here, and the client gets a 4xx instead of a 200 whose
        stream holds an error event. A first event that takes longer (a long prompt) is
        awaited by the stream itself; nothing is lost either way."""
        self._iterator = self._iterate()
        self._first = asyncio.ensure_future(self._iterator.__anext__())
        try:
            await asyncio.wait({self._first}, timeout=wait)
        except BaseException:
            await self.aclose()
            raise
        if self._first.done() and not self._first.cancelled():
            error = self._first.exception()
            if error is not None and not isinstance(error, StopAsyncIteration):
                await self.aclose()
                raise error

    def first_ready(self) -> bool:
        """Whether :meth:`prime` already holds the first piece of output (text, thoughts or a
        tool call), so that a stream can send its headers together with it."""
        first = self._first
        return (
            first is not None
            and first.done()
            and not first.cancelled()
            and first.exception() is None
            and type(first.result()) in (TextDelta, ThoughtsDelta, ToolCall)
        )

    async def _iterate(self) -> AsyncGenerator[Event, None]:
        splitter = ThinkSplitter()
        source = self.binding.generate(self.request)
        try:
            async for event in source:
                if type(event) is TextDelta:
                    if self.first_token_ms is None:
                        self.first_token_ms = (time.perf_counter() - self.started) * 1000
                    for piece in splitter.feed(event.text):
                        yield piece
                    continue
                if type(event) is Finished:
                    self.outcome = "completed"
                    for piece in splitter.flush():
                        yield piece
                elif type(event) is Usage:
                    self.completion_tokens = event.completion_tokens
                yield event
        except Exception:
            self.outcome = "failed"
            raise
        finally:
            try:
                await source.aclose()  # type: ignore[attr-defined]
            finally:
                self.close()

    def close(self) -> None:
        """Release the lease (idempotent); also for a run that was never iterated."""
        if self.lease.released:
            return
        self.lease.release()
        metrics = self.lease.scheduler.metrics
        instance = self.binding.instance_name
        metrics.requests.labels(outcome=self.outcome).inc()
        metrics.generation_time.labels(binding=instance).observe(
            time.perf_counter() - self.started - self.queue_ms / 1000
        )
        if self.completion_tokens:
            metrics.tokens.labels(binding=instance).inc(self.completion_tokens)

    async def aclose(self) -> None:
        """Close the events' generator (stopping the binding's generation at once, not when
        the garbage collector finds it) and release the lease."""
        first = self._first
        if first is not None and not first.done():  # primed, its first event still coming
            first.cancel()  # runs the generator's finally (engine stopped, lease released)
            with contextlib.suppress(BaseException):
                await first
        iterator = self._iterator
        if iterator is not None and getattr(iterator, "ag_running", False):
            return  # another task is in it: its own finally releases the lease
        try:
            if iterator is not None:
                with contextlib.suppress(Exception):  # already closed
                    await iterator.aclose()
        finally:
            self.close()

    def timings(self) -> dict[str, float | None]:
        total = (time.perf_counter() - self.started) * 1000
        return {
            "queue_ms": round(self.queue_ms, 3),
            "first_token_ms": None
            if self.first_token_ms is None
            else round(self.first_token_ms, 3),
            "total_ms": round(total, 3),
        }


class _Primed:
    """A primed run's events: the first from :meth:`GenerationRun.prime`, then the run's own
    generator, handed on directly (no extra generator frame on the per-token path)."""

    def __init__(self, first: asyncio.Future[Event], rest: AsyncGenerator[Event, None]) -> None:
        self._first: asyncio.Future[Event] | None = first
        self._rest = rest

    def __aiter__(self) -> _Primed:
        return self

    def __anext__(self) -> Awaitable[Event]:
        first, self._first = self._first, None
        if first is not None:
            return first  # awaiting it raises StopAsyncIteration for an empty run
        return self._rest.__anext__()


Run = GenerationRun | WorkflowRun


@dataclass
class CollectedOutput:
    text: str = ""
    thoughts: str = ""
    media: list[MediaOutput] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


async def collect(events: AsyncIterator[Event]) -> CollectedOutput:
    """Gather a whole run into one result (for clients that did not ask for a stream)."""
    out = CollectedOutput()
    text: list[str] = []
    thoughts: list[str] = []
    async for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, TextReplace):
            text[:] = [event.text]
        elif isinstance(event, ToolResult):
            out.tool_results.append(event)
        elif isinstance(event, Step):
            out.steps.append(event)
        elif isinstance(event, ThoughtsDelta):
            thoughts.append(event.text)
        elif isinstance(event, MediaOutput):
            out.media.append(event)
        elif isinstance(event, ToolCall):
            out.tool_calls.append(event)
        elif isinstance(event, Usage):
            out.usage = event
        elif isinstance(event, Finished):
            out.finish_reason = event.finish_reason
            out.metadata.update(event.metadata)
    out.text, out.thoughts = "".join(text), "".join(thoughts)
    return out


class GenerationService:
    def __init__(
        self,
        settings: Settings,
        bindings: BindingManager,
        scheduler: Scheduler,
        personalities: PersonalityRegistry | None = None,
        functions: FunctionRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.bindings = bindings
        self.scheduler = scheduler
        self.personalities = personalities or PersonalityRegistry([])
        self.functions = functions or FunctionRegistry([])
        self.scripts = ScriptLoader()

    async def resolve(
        self, generation_type: str, binding_name: str | None, model_name: str | None
    ) -> tuple[Binding, str]:
        """Pick the binding instance and model: request, then config defaults, then binding."""
        default_binding, default_model = self.settings.defaults.for_type(generation_type)
        name = binding_name or default_binding
        if not name:
            raise BadRequest(
                f"No binding_name given and no default for '{generation_type}' "
                f"([defaults] {generation_type}_binding). Active instances: "
                f"{', '.join(self.bindings.active_names()) or 'none'}.",
                param="binding_name",
            )
        binding = self.bindings.get(name)
        if generation_type not in binding.serves():
            raise UnsupportedGenerationType(
                f"Binding instance '{name}' ({binding.name}) does not support "
                f"generation_type '{generation_type}'; it supports: "
                f"{', '.join(sorted(binding.serves()))}.",
                param="generation_type",
            )
        model = model_name
        if not model and name == default_binding:
            model = default_model
        model = model or binding.config.default_model
        if not model:
            listed = await binding.list_models()
            if not listed:
                raise BadRequest(f"Binding instance '{name}' lists no models.", param="model_name")
            model = listed[0].name
        return binding, model

    async def find_model(self, name: str, generation_type: str = "ttt") -> tuple[str, str]:
        """``(instance, model)`` for a client's model id.

        Accepted: ``instance/model``; an instance name (its default model); ``default``;
        or a bare model name served by exactly one instance (409 when several serve it).
        """
        instances = self.bindings.active_names()
        name, _ = self.settings.alias(name)
        head, sep, tail = name.partition("/")
        if sep and head in instances:
            return head, tail
        if name in instances:
            _, model = await self.resolve(generation_type, name, None)
            return name, model
        if name in ("", "default"):
            binding, model = await self.resolve(generation_type, None, None)
            return binding.instance_name, model
        holders: list[str] = []
        for instance in instances:
            binding = self.bindings.get(instance)
            if generation_type not in binding.serves():
                continue
            try:
                models = await binding.list_models()
            except LollmsError:
                continue
            if any(m.name == name for m in models):
                holders.append(instance)
        if len(holders) == 1:
            return holders[0], name
        if holders:
            raise AmbiguousName(
                f"Model '{name}' is served by several binding instances; name one of: "
                f"{', '.join(f'{h}/{name}' for h in holders)}.",
                param="model",
            )
        raise NotFound(
            f"Model '{name}' not found. Use 'instance/model' ids as listed by GET /v1/models.",
            param="model",
        )

    def alias_personality(self, model_name: str) -> str | None:
        """The personality a configured alias selects (``[aliases] x = {personality=...}``)."""
        return self.settings.alias(model_name)[1]

    async def start(self, request: GenerationRequest) -> Run:
        """Resolve, check and queue ``request``; every such error is raised here, before
        a response starts. Scripted personalities and tool loops give a WorkflowRun."""
        personality = self._personality(request)
        if personality is not None:
            request = self._recommended_target(request, personality)
            if personality.runs_script:
                if request.functions or request.tools:
                    raise BadRequest(
                        f"Personality '{personality.id}' runs its own script; "
                        "its script calls functions itself (context."
                        "call_function).",
                        param="functions",
                    )
                if request.generation_type != "ttt":
                    raise BadRequest(
                        "A scripted personality answers generation_type 'ttt' requests.",
                        param="generation_type",
                    )
                return await self._start_script(request, personality)
        if request.functions and request.tool_choice != "none":
            return await self._start_tools(request, personality)
        return await self.start_single(replace(request, functions=()), personality)

    def _personality(self, request: GenerationRequest) -> Personality | None:
        if not request.personality:
            if request.language:
                raise BadRequest(
                    "'language' selects a personality's translation; name a personality too.",
                    param="language",
                )
            return None
        found = self.personalities.get(request.personality)
        return self.personalities.localized(found, request.language)

    def _recommended_target(
        self, request: GenerationRequest, personality: Personality
    ) -> GenerationRequest:
        """A personality's recommended binding (when it names an active instance) is used
        when the request names neither a binding nor a model (a model may live elsewhere)."""
        binding = personality.recommended_binding
        if (
            request.binding_name
            or request.model_name
            or not binding
            or binding not in self.bindings.active_names()
        ):
            return request
        return replace(request, binding_name=binding, model_name=personality.recommended_model)

    def personalize(
        self, request: GenerationRequest, binding: Binding, model: str, personality: Personality
    ) -> GenerationRequest:
        """``request`` with the personality's system prompt, stops and sampling applied."""
        system = system_prompt(personality, user_name=request.user_name)
        params, extra = apply_sampling(request.params, dict(request.extra), personality)
        extra = {
            k: v for k, v in extra.items() if k in request.extra or binding.accepts_parameter(k)
        }
        messages = request.messages
        if request.raw_prompt is not None:
            messages = (*messages, Message(role="user", content=request.raw_prompt))
        messages = with_system(messages, system)
        raw = None
        if request.raw_prompt is not None or not binding.uses_chat_template(model):
            raw, messages = render_lollms_prompt(messages, personality), ()
        return replace(request, messages=messages, raw_prompt=raw, params=params, extra=extra)

    async def start_single(
        self, request: GenerationRequest, personality: Personality | None = None
    ) -> GenerationRun:
        """One generation on one binding (a personality applied, no script, no tools)."""
        started = time.perf_counter()
        binding, model = await self.resolve(
            request.generation_type, request.binding_name, request.model_name
        )
        await binding.model_info(model)  # 404 naming what exists, before any loading
        if personality is not None and request.generation_type == "ttt":
            request = self.personalize(request, binding, model, personality)
        elif (
            not binding.uses_chat_template(model)
            and request.raw_prompt is None
            and request.generation_type == "ttt"
        ):
            request = replace(
                request, raw_prompt=render_plain_prompt(request.messages), messages=()
            )
        has_media = any(m.media for m in request.messages)
        if has_media and request.generation_type in ("tts", "ttm", "ttv"):
            raise UnsupportedCapability(
                f"'{request.generation_type}' takes text only.", param="input_data"
            )
        if request.generation_type == "ttt" and not binding.capabilities.vision and has_media:
            raise UnsupportedCapability(
                f"Binding instance '{binding.instance_name}' takes no image, audio or video input.",
                param="input_data",
            )
        binding_request = BindingRequest(
            model=model,
            generation_type=request.generation_type,
            messages=request.messages,
            raw_prompt=request.raw_prompt,
            params=request.params,
            extra=request.extra,
            keep_alive=request.keep_alive,
            tools=request.tools,
            tool_choice=request.tool_choice,
        )
        uses_tools = request.tools or any(m.tool_calls or m.tool_call_id for m in request.messages)
        if uses_tools and not binding.capabilities.tools:
            raise UnsupportedCapability(
                f"Binding instance '{binding.instance_name}' cannot call tools.", param="tools"
            )
        binding.check_request(binding_request)
        before = time.perf_counter()
        lease = await self.scheduler.acquire(
            binding, model, queue_timeout=request.queue_timeout, keep_alive=request.keep_alive
        )
        return GenerationRun(
            request_id=f"gen-{uuid.uuid4().hex}",
            binding=binding,
            model=model,
            request=binding_request,
            started=started,
            queue_ms=(time.perf_counter() - before) * 1000,
            lease=lease,
        )

    async def events(
        self, request: GenerationRequest, personality: Personality | None = None
    ) -> AsyncGenerator[Event, None]:
        """Start one generation and yield its events (the lease lives as long as this)."""
        run = await self.start_single(request, personality)
        iterator = run.__aiter__()
        try:
            async for event in iterator:
                yield event
        finally:
            await iterator.aclose()  # type: ignore[attr-defined]
            run.close()

    async def _start_tools(
        self, request: GenerationRequest, personality: Personality | None
    ) -> WorkflowRun:
        if request.tools:
            raise BadRequest(
                "Give either client-defined 'tools' or server 'functions', not both.",
                param="functions",
            )
        if request.generation_type != "ttt":
            raise BadRequest("Functions need generation_type 'ttt'.", param="functions")
        if request.raw_prompt is not None:
            raise BadRequest("Functions need a conversation, not 'raw_prompt'.", param="raw_prompt")
        functions = [self.functions.get(name) for name in dict.fromkeys(request.functions)]
        binding, model = await self.resolve("ttt", request.binding_name, request.model_name)
        await binding.model_info(model)
        fixed = replace(request, binding_name=binding.instance_name, model_name=model)
        rounds = request.max_tool_rounds or self.settings.functions.max_tool_rounds

        def run_events(step: GenerationRequest) -> AsyncGenerator[Event, None]:
            return self.events(step, personality)

        loop = ToolLoop(fixed, binding, functions, self.functions, rounds, run_events)
        return WorkflowRun(
            request_id=f"gen-{uuid.uuid4().hex}",
            binding=binding,
            model=model,
            body=loop,
            label="The tool-calling loop",
            timeout=self.settings.functions.loop_timeout,
        )

    async def _start_script(
        self, request: GenerationRequest, personality: Personality
    ) -> WorkflowRun:
        binding, model = await self.resolve("ttt", request.binding_name, request.model_name)
        await binding.model_info(model)
        fixed = replace(request, binding_name=binding.instance_name, model_name=model)
        assert personality.script is not None
        timeout = self.settings.personalities.script_timeout
        module = await self.scripts.load(personality.script.path, timeout)  # top-level code
        body = self.scripts.body(personality, module, fixed, self)
        prepare = getattr(body, "prepare", None)
        if prepare is not None:  # zoo processors: built, and their settings checked, now
            try:
                await asyncio.wait_for(prepare(), timeout)
            except asyncio.TimeoutError:
                raise WorkflowTimeout(
                    f"The script of personality '{personality.id}' was not ready in {timeout:g} s."
                ) from None
        return WorkflowRun(
            request_id=f"gen-{uuid.uuid4().hex}",
            binding=binding,
            model=model,
            body=body,
            label=f"The script of personality '{personality.id}'",
            timeout=self.settings.personalities.script_timeout,
        )

    async def embed(
        self,
        texts: list[str],
        binding_name: str | None,
        model_name: str | None,
        queue_timeout: float | None = None,
    ) -> tuple[Binding, str, EmbeddingResult]:
        """Vectors for ``texts`` from an embedding binding (``[defaults] embed_binding``)."""
        if not texts:
            raise BadRequest("Nothing to embed: give at least one text.", param="input")
        binding, model = await self.resolve("embed", binding_name, model_name)
        await binding.model_info(model)
        lease = await self.scheduler.acquire(binding, model, queue_timeout=queue_timeout)
        work = asyncio.ensure_future(binding.embed(model, texts))
        work.add_done_callback(lambda _: lease.release())  # only once the model is free
        try:
            result = await asyncio.shield(work)
        except asyncio.CancelledError:
            work.cancel()  # the binding stops between batches; the lease goes when it has
            raise
        if len(result.vectors) != len(texts):
            raise GenerationFailed(
                f"'{binding.instance_name}' returned {len(result.vectors)} "
                f"vectors for {len(texts)} texts."
            )
        return binding, model, result

    @asynccontextmanager
    async def loaded_model(
        self, binding_name: str | None, model_name: str | None
    ) -> AsyncIterator[tuple[Binding, str]]:
        """Binding and model for tokenizer calls, holding a lease while in use."""
        binding, model = await self.resolve("ttt", binding_name, model_name)
        await binding.model_info(model)
        lease = await self.scheduler.acquire(binding, model)
        try:
            yield binding, model
        finally:
            lease.release()
