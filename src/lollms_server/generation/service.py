"""GenerationService: the one path from any API front end to a binding.

Front ends translate their wire format into a :class:`GenerationRequest`, call
:meth:`GenerationService.start` (which resolves binding and model and loads the model, so
that every such error happens before a response starts), then either stream the run's events
or :func:`collect` them. Request types live in ``requests``, the run in ``run``, resolution in
``resolve``; scripts reach the service only through ``port.GenerationPort``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import Event, MediaOutput
from lollms_server.bindings.manager import BindingManager
from lollms_server.bindings.types import BindingRequest, EmbeddingResult, Message
from lollms_server.config import Settings
from lollms_server.errors import (
    BadRequest,
    GenerationFailed,
    UnsupportedCapability,
    WorkflowTimeout,
)
from lollms_server.functions.model import FunctionDef
from lollms_server.functions.registry import CallResult, FunctionRegistry
from lollms_server.generation.requests import GenerationRequest
from lollms_server.generation.resolve import Resolver, Target
from lollms_server.generation.run import CollectedOutput, GenerationRun, Run, collect
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
from lollms_server.personalities.scripted import Body, ScriptLoader
from lollms_server.resources.scheduler import Scheduler

if TYPE_CHECKING:
    from lollms_server.personalities.zoo.isolated import ProcessorPool

__all__ = [
    "CollectedOutput",
    "GenerationRequest",
    "GenerationRun",
    "GenerationService",
    "Run",
    "check_capabilities",
    "collect",
]


_MEDIA_TYPES = frozenset({"tti", "ttv", "ttm", "tts"})


def check_capabilities(binding: Binding, request: BindingRequest) -> None:
    """The one check of a request against what its binding can do (input media, tools,
    structured output, media and engine options), before the binding's own
    ``check_request``."""
    _check_options(binding, request)
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
    uses_tools = request.tools or any(m.tool_calls or m.tool_call_id for m in request.messages)
    if uses_tools and not binding.capabilities.tools:
        raise UnsupportedCapability(
            f"Binding instance '{binding.instance_name}' cannot call tools.", param="tools"
        )


def _check_options(binding: Binding, request: BindingRequest) -> None:
    media = sorted(request.media.model_fields_set)
    if media and request.generation_type not in _MEDIA_TYPES:
        raise BadRequest(
            f"Parameter(s) {', '.join(media)} do not apply to '{request.generation_type}'.",
            param=f"parameters.{media[0]}",
        )
    if request.json_schema is not None and not binding.capabilities.structured_output:
        raise UnsupportedCapability(
            f"Binding instance '{binding.instance_name}' cannot constrain output to a schema.",
            param="json_schema",
        )
    accepted = binding.extra_parameters
    unknown = sorted(set(request.extra) - accepted) if accepted is not None else []
    if unknown:
        offered = ", ".join(sorted(accepted or ())) or "none"
        raise BadRequest(
            f"Unknown parameter(s) for {binding.name}: {', '.join(unknown)}. Besides the common "
            f"ones it accepts: {offered}.",
            param=f"parameters.{unknown[0]}",
        )


class GenerationService:
    """Starts generations (single runs, tool loops, personality scripts) and embeddings."""

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
        self.resolver = Resolver(settings, bindings, self.personalities)
        self._processors: ProcessorPool | None = None  # zoo processors' processes, once used

    async def close(self) -> None:
        """Stop what the service started itself (spare processor processes)."""
        if self._processors is not None:
            await self._processors.close()

    def _processor_pool(self) -> ProcessorPool:
        if self._processors is None:
            from lollms_server.personalities.zoo.isolated import ProcessorPool

            spares = self.settings.personalities.processor_spares
            self._processors = ProcessorPool(spares, self.data_folder())
        return self._processors

    # -- names ------------------------------------------------------------------------------
    async def resolve(
        self, generation_type: str, binding_name: str | None, model_name: str | None
    ) -> tuple[Binding, str]:
        """Pick the binding instance and model: request, then config defaults, then binding."""
        return await self.resolver.resolve(generation_type, binding_name, model_name)

    async def find_model(self, name: str, generation_type: str = "ttt") -> tuple[str, str]:
        """``(instance, model)`` for a client's model id (see ``Resolver.find_model``)."""
        return await self.resolver.find_model(name, generation_type)

    def alias_personality(self, model_name: str) -> str | None:
        """The personality a configured alias selects (``[aliases] x = {personality=...}``)."""
        return self.settings.alias(model_name)[1]

    # -- generation -------------------------------------------------------------------------
    async def start(self, request: GenerationRequest) -> Run:
        """Resolve, check and queue ``request``; every such error is raised here, before
        a response starts. Scripted personalities and tool loops give a WorkflowRun."""
        personality = self.resolver.personality(request)
        if personality is not None:
            request = self.resolver.recommended(request, personality)
            if personality.runs_script:
                _check_script_request(request, personality)
                target = await self.resolver.target(request)
                return await self._script_run(request, replace(target, personality=personality))
        if request.functions and request.tool_choice != "none":
            _check_tools_request(request)
            functions = [self.functions.get(name) for name in dict.fromkeys(request.functions)]
            target = await self.resolver.target(request, personality)
            return self._tool_loop_run(request, target, functions)
        request = replace(request, functions=())
        return await self._single_run(request, await self.resolver.target(request, personality))

    def personalize(self, request: GenerationRequest, target: Target) -> GenerationRequest:
        """``request`` with the personality's system prompt, stops and sampling applied."""
        binding, personality = target.binding, target.personality
        assert personality is not None
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
        if request.raw_prompt is not None or not binding.uses_chat_template(target.model):
            raw, messages = render_lollms_prompt(messages, personality), ()
        return replace(request, messages=messages, raw_prompt=raw, params=params, extra=extra)

    def _rendered(self, request: GenerationRequest, target: Target) -> GenerationRequest:
        if request.generation_type != "ttt":
            return request
        if target.personality is not None:
            return self.personalize(request, target)
        if not target.binding.uses_chat_template(target.model) and request.raw_prompt is None:
            return replace(request, raw_prompt=render_plain_prompt(request.messages), messages=())
        return request

    async def _single_run(self, request: GenerationRequest, target: Target) -> GenerationRun:
        """One generation on one binding (a personality applied, no script, no tools)."""
        started = time.perf_counter()
        binding, model = target.binding, target.model
        request = self._rendered(request, target)
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
            media=request.media,
            json_schema=request.json_schema,
        )
        check_capabilities(binding, binding_request)
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
        self,
        request: GenerationRequest,
        personality: Personality | None = None,
        target: Target | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Start one generation and yield its events (the lease lives as long as this).
        ``target``, when the caller already resolved it, is used as is."""
        if target is None:
            target = await self.resolver.target(request, personality)
        run = await self._single_run(request, target)
        iterator = run.__aiter__()
        try:
            async for event in iterator:
                yield event
        finally:
            await iterator.aclose()  # type: ignore[attr-defined]
            run.close()

    def _tool_loop_run(
        self, request: GenerationRequest, target: Target, functions: list[FunctionDef]
    ) -> WorkflowRun:
        binding, model = target.binding, target.model
        fixed = replace(request, binding_name=binding.instance_name, model_name=model)
        rounds = request.max_tool_rounds or self.settings.functions.max_tool_rounds

        def run_events(step: GenerationRequest) -> AsyncGenerator[Event, None]:
            return self.events(step, target=target)

        loop = ToolLoop(fixed, binding, functions, self.functions, rounds, run_events)
        return WorkflowRun(
            request_id=f"gen-{uuid.uuid4().hex}",
            binding=binding,
            model=model,
            body=loop,
            label="The tool-calling loop",
            timeout=self.settings.functions.loop_timeout,
        )

    async def _script_run(self, request: GenerationRequest, target: Target) -> WorkflowRun:
        personality = target.personality
        assert personality is not None and personality.script is not None
        binding, model = target.binding, target.model
        fixed = replace(request, binding_name=binding.instance_name, model_name=model)
        timeout = self.settings.personalities.script_timeout
        body: Body
        on_close = None
        if personality.script.kind == "zoo":  # imported, built and run in its own process
            from lollms_server.personalities.zoo.isolated import ProcessorProcess, ZooRunner

            limits = self.settings.personalities.processor_limits()
            process = ProcessorProcess(personality, fixed, self, limits, self._processor_pool())
            body = runner = ZooRunner(process)
            on_close = runner.kill
            try:  # built, and its settings checked, before the response starts
                await asyncio.wait_for(runner.prepare(), timeout)
            except asyncio.TimeoutError:
                raise WorkflowTimeout(
                    f"The script of personality '{personality.id}' was not ready in {timeout:g} s."
                ) from None
        else:
            module = await self.scripts.load(personality.script.path, timeout)  # top-level code
            body = self.scripts.body(personality, module, fixed, self)
        return WorkflowRun(
            request_id=f"gen-{uuid.uuid4().hex}",
            binding=binding,
            model=model,
            body=body,
            label=f"The script of personality '{personality.id}'",
            timeout=timeout,
            on_close=on_close,
        )

    # -- the port scripts use (GenerationPort) ----------------------------------------------
    async def call_function(self, name: str, arguments: Mapping[str, Any]) -> CallResult:
        """Call a server function by name."""
        return await self.functions.call(name, dict(arguments))

    def function_names(self) -> list[str]:
        """The server functions a script may call."""
        return [f.name for f in self.functions.all()]

    def takes_parameter(self, binding_name: str | None, name: str) -> bool:
        """Whether the binding instance accepts engine option ``name``."""
        if binding_name not in self.bindings.active_names():
            return True
        return self.bindings.get(binding_name).accepts_parameter(name)

    async def context_size(self, binding_name: str | None, model_name: str | None) -> int | None:
        """The model's context size in tokens, when its binding knows it."""
        binding, model = await self.resolve("ttt", binding_name, model_name)
        return (await binding.model_info(model)).context_size

    async def tokenize(
        self, binding_name: str | None, model_name: str | None, text: str
    ) -> list[int] | None:
        """Token ids of ``text`` (None: the binding has no tokenizer)."""
        binding, _ = await self.resolve("ttt", binding_name, model_name)
        if not binding.capabilities.tokenizer:
            return None
        async with self.loaded_model(binding_name, model_name) as (binding, model):
            return await binding.tokenize(model, text)

    async def detokenize(
        self, binding_name: str | None, model_name: str | None, tokens: list[int]
    ) -> str | None:
        """The text of ``tokens`` (None: the binding has no tokenizer)."""
        binding, _ = await self.resolve("ttt", binding_name, model_name)
        if not binding.capabilities.tokenizer:
            return None
        async with self.loaded_model(binding_name, model_name) as (binding, model):
            return await binding.detokenize(model, tokens)

    async def generate_media(self, request: GenerationRequest) -> list[MediaOutput]:
        """The files of one media generation (tti, ttv, ttm, tts)."""
        if request.generation_type not in _MEDIA_TYPES:
            raise BadRequest(
                f"generate_media makes {', '.join(sorted(_MEDIA_TYPES))}, "
                f"not '{request.generation_type}'.",
                param="generation_type",
            )
        async with aclosing(self.events(request)) as events:
            return [event async for event in events if isinstance(event, MediaOutput)]

    def data_folder(self) -> Path:
        """Where personality scripts keep their files (``[personalities] data_folder``)."""
        return self.settings.resolve_path(self.settings.personalities.data_folder)

    # -- other work on models ---------------------------------------------------------------
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


def _check_script_request(request: GenerationRequest, personality: Personality) -> None:
    if request.functions or request.tools:
        raise BadRequest(
            f"Personality '{personality.id}' runs its own script; its script calls functions "
            "itself (context.call_function).",
            param="functions",
        )
    if request.generation_type != "ttt":
        raise BadRequest(
            "A scripted personality answers generation_type 'ttt' requests.",
            param="generation_type",
        )


def _check_tools_request(request: GenerationRequest) -> None:
    if request.tools:
        raise BadRequest(
            "Give either client-defined 'tools' or server 'functions', not both.",
            param="functions",
        )
    if request.generation_type != "ttt":
        raise BadRequest("Functions need generation_type 'ttt'.", param="functions")
    if request.raw_prompt is not None:
        raise BadRequest("Functions need a conversation, not 'raw_prompt'.", param="raw_prompt")
