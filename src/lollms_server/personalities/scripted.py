"""Scripted personalities: load their script and run it as a workflow.

Two forms:

- lollms_server's own: the personality's ``script`` key names a file in its folder exposing
  ``async def run_workflow(prompt, params, context)``; ``context`` is a
  :class:`WorkflowContext`. It returns text, a ``MediaOutput`` (or a list), ``None`` (having
  sent its output through ``context``), or an async iterator of text pieces and events.
- the zoo's: ``scripts/processor.py`` with ``class Processor(APScript)``, run through the
  compatibility layer in :mod:`lollms_server.personalities.zoo`.

Scripts are imported only from personality folders found below the configured roots.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import sys
import threading
import traceback
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lollms_server.bindings.events import (
    Event,
    MediaOutput,
    Step,
    TextDelta,
    TextReplace,
    Usage,
)
from lollms_server.bindings.types import MediaOptions, Message, SamplingParams
from lollms_server.errors import WorkflowTimeout, WorkflowUnavailable
from lollms_server.generation.requests import GenerationRequest
from lollms_server.generation.workflow import Emit
from lollms_server.personalities.model import Personality
from lollms_server.personalities.prompting import bound_sampling
from lollms_server.plugins import import_unique
from lollms_server.security.redact import scrub

if TYPE_CHECKING:
    from lollms_server.generation.port import GenerationPort

__all__ = ["FunctionCallError", "ScriptLoader", "WorkflowContext", "describe_failure"]

logger = logging.getLogger("lollms_server.personalities")

Body = Callable[[Emit], Awaitable[None]]


class FunctionCallError(Exception):
    """A function called by a script failed; the message says why."""


class WorkflowContext:
    """What a script gets: the request, the personality and the server's services."""

    def __init__(
        self,
        service: GenerationPort,
        request: GenerationRequest,
        personality: Personality,
        emit: Emit,
    ) -> None:
        self.service = service
        self.request = request
        self.personality = personality
        self._emit = emit
        self._text = ""
        # stream_text iterators the script has not finished: each holds a lease (a slot)
        self._streams: list[AsyncGenerator[str, None]] = []

    # -- output ----------------------------------------------------------------------------
    async def emit(self, event: Event) -> None:
        """Send any event (``TextDelta``, ``MediaOutput``, ``Step``...) to the client."""
        if isinstance(event, TextDelta):
            self._text += event.text
        elif isinstance(event, TextReplace):
            self._text = event.text
        await self._emit(event)

    async def send(self, text: str) -> None:
        """Append ``text`` to the answer."""
        await self.emit(TextDelta(text))

    async def set_content(self, text: str) -> None:
        """Make ``text`` the whole answer (sent as a delta when it extends what was sent)."""
        if text.startswith(self._text):
            if text != self._text:
                await self.emit(TextDelta(text[len(self._text) :]))
        else:
            await self.emit(TextReplace(text))

    async def step_start(self, text: str) -> None:
        await self.emit(Step("step_start", text))

    async def step_end(self, text: str, ok: bool = True) -> None:
        await self.emit(Step("step_end", text, ok=ok))

    async def step(self, text: str) -> None:
        await self.emit(Step("step", text))

    async def info(self, text: str) -> None:
        await self.emit(Step("info", text))

    async def warning(self, text: str) -> None:
        await self.emit(Step("warning", text))

    # -- services --------------------------------------------------------------------------
    def _request(
        self,
        prompt: str | None,
        messages: tuple[Message, ...] | None,
        generation_type: str,
        binding: str | None,
        model: str | None,
        params: Mapping[str, Any],
    ) -> GenerationRequest:
        sampling = {
            k: v
            for k, v in params.items()
            if k in {f.name for f in dataclasses.fields(SamplingParams)}
        }
        if isinstance(sampling.get("stop"), list | str):
            stop = sampling["stop"]
            sampling["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        extra = {k: v for k, v in params.items() if k not in sampling}
        convo = messages if messages is not None else (Message("user", prompt or ""),)
        same = binding is None or binding == self.request.binding_name
        chosen = SamplingParams(**sampling)
        if generation_type == "ttt":  # the client's limits bound every generation
            chosen = bound_sampling(chosen, self.request.params)
        return dataclasses.replace(
            self.request,
            generation_type=generation_type,
            binding_name=binding or self.request.binding_name,
            model_name=model or (self.request.model_name if same else None),
            messages=convo,
            raw_prompt=None,
            params=chosen,
            extra=extra,
            personality=None,
            functions=(),
            tools=(),
            tool_choice=None,
        )

    def stream_text(
        self,
        prompt: str | None = None,
        *,
        messages: tuple[Message, ...] | None = None,
        binding: str | None = None,
        model: str | None = None,
        use_personality: bool = True,
        **params: Any,
    ) -> AsyncIterator[str]:
        """Generate text piece by piece (the personality's conditioning applies unless
        ``use_personality=False``); nothing reaches the client unless the script sends it."""
        request = self._request(prompt, messages, "ttt", binding, model, params)
        personality = self.personality if use_personality else None

        async def pieces() -> AsyncGenerator[str, None]:
            await self._close_streams(keep=stream)
            try:
                async with contextlib.aclosing(self.service.events(request, personality)) as events:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            yield event.text
                        elif isinstance(event, Usage):
                            await self._emit(event)  # counted in the run's usage
            finally:
                with contextlib.suppress(ValueError):
                    self._streams.remove(stream)

        stream = pieces()
        self._streams.append(stream)
        return stream

    async def _close_streams(self, keep: AsyncGenerator[str, None] | None = None) -> None:
        """Close the streams the script left unfinished (a ``break`` out of ``async for``)
        before a new generation: each holds a slot, and a model with one slot would wait
        on itself until the script's timeout."""
        for stream in [s for s in self._streams if s is not keep]:
            self._streams.remove(stream)
            if not getattr(stream, "ag_running", False):
                await stream.aclose()

    async def generate(self, prompt: str | None = None, **kwargs: Any) -> str:
        """The whole generated text (same arguments as :meth:`stream_text`)."""
        return "".join([piece async for piece in self.stream_text(prompt, **kwargs)])

    async def generate_media(
        self,
        prompt: str,
        generation_type: str = "tti",
        *,
        binding: str | None = None,
        model: str | None = None,
        **params: Any,
    ) -> list[MediaOutput]:
        """Images, audio or video from a media binding (``[defaults]`` picks one);
        ``params``: media options (``width``, ``height``, ``steps``, ``negative_prompt``,
        ``voice``...) and ``seed``."""
        options = {k: v for k, v in params.items() if k in MediaOptions.model_fields}
        unknown = sorted(set(params) - set(options) - {"seed"})
        if unknown:
            raise TypeError(f"generate_media got unknown option(s): {', '.join(unknown)}")
        request = GenerationRequest(
            generation_type=generation_type,
            binding_name=binding,
            model_name=model,
            messages=(Message("user", prompt),),
            params=SamplingParams(seed=params.get("seed")),
            media=MediaOptions(**options),
            queue_timeout=self.request.queue_timeout,
        )
        await self._close_streams()
        return await self.service.generate_media(request)

    async def call_function(self, name: str, **arguments: Any) -> Any:
        """Call a server function; ``FunctionCallError`` when it fails."""
        result = await self.service.call_function(name, arguments)
        if not result.ok:
            raise FunctionCallError(f"{name}: {result.error}")
        return result.value

    @property
    def functions(self) -> list[str]:
        return self.service.function_names()


def describe_failure(exc: BaseException, script: Path) -> str:
    """``Type: message (script.py line N)``: why a script failed, for its error and the log.
    The line is the last one run in the script's own folder; URL credentials are scrubbed
    and nothing else (no locals, no environment) is shown."""
    where = ""
    folder = script.parent.parent if script.parent.name == "scripts" else script.parent
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename).is_relative_to(folder):
            where = f" ({Path(frame.filename).name} line {frame.lineno})"
            break
    return scrub(f"{type(exc).__name__}: {exc}{where}")


async def _deliver(result: Any, context: WorkflowContext) -> None:
    if result is None:
        return
    if isinstance(result, str):
        await context.send(result)
    elif isinstance(result, MediaOutput):
        await context.emit(result)
    elif isinstance(result, list | tuple):
        for item in result:
            await _deliver(item, context)
    elif hasattr(result, "__aiter__"):
        async for item in result:
            await _deliver(item, context)
    elif isinstance(result, Event.__args__):
        await context.emit(result)
    else:
        await context.send(str(result))


class ScriptLoader:
    """Imports scripts once (again when the file changes) and builds workflow bodies."""

    def __init__(self) -> None:
        self._modules: dict[Path, tuple[float, ModuleType]] = {}
        self._locks: dict[Path, threading.Lock] = {}  # one per script: imports run in parallel
        self._guard = threading.Lock()  # for the two dicts
        self._pool: ThreadPoolExecutor | None = None

    async def load(self, path: Path, timeout: float) -> ModuleType:
        """The script's module, its top-level code run in a thread of its own, never on the
        event loop, and waited for at most ``timeout`` seconds (504 past it)."""
        with self._guard:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(4, thread_name_prefix="lollms-script-import")
            pool = self._pool
        future = asyncio.get_running_loop().run_in_executor(pool, self.module, path)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise WorkflowTimeout(
                f"The script {path.name} did not finish loading in {timeout:g} s."
            ) from None

    def module(self, path: Path) -> ModuleType:
        """The script's module, imported once per version of the file. Blocking (it runs the
        module's top-level code): called from a worker thread."""
        with self._guard:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            try:
                mtime = path.stat().st_mtime
            except OSError as exc:
                raise WorkflowUnavailable(
                    f"script {path.name} cannot be read: {exc.strerror}"
                ) from None
            with self._guard:
                cached = self._modules.get(path)
            if cached is not None and cached[0] == mtime:
                return cached[1]
            try:
                module = self._import(path)
            except BaseException as exc:  # SystemExit in a script must not stop the server
                reason = describe_failure(exc, path)
                logger.warning("the script %s failed to load: %s", path, reason)
                raise WorkflowUnavailable(
                    f"The script {path.name} failed to load: {reason}"
                ) from None
            if cached is not None:
                sys.modules.pop(cached[1].__name__, None)
            with self._guard:
                self._modules[path] = (mtime, module)
            return module

    def _import(self, path: Path) -> ModuleType:
        if path.name == "processor.py" and path.parent.name == "scripts":
            # `lollms-server check` only: the server runs zoo processors in their own process
            from lollms_server.personalities.zoo import import_processor

            return import_processor(path)
        return import_unique(path, "lollms_server_personality_scripts")

    def body(
        self,
        personality: Personality,
        module: ModuleType,
        request: GenerationRequest,
        service: GenerationPort,
    ) -> Body:
        """The workflow of ``personality`` from its loaded ``module`` (see :meth:`load`)."""
        assert personality.script is not None
        if personality.script.kind == "zoo":  # see lollms_server.personalities.zoo.isolated
            raise WorkflowUnavailable("zoo processors run in a process of their own")
        workflow = getattr(module, "run_workflow", None)
        if workflow is None or not inspect.iscoroutinefunction(workflow):
            raise WorkflowUnavailable(
                f"The script of personality '{personality.id}' has no "
                "'async def run_workflow(prompt, params, context)'."
            )

        async def run(emit: Emit) -> None:
            context = WorkflowContext(service, request, personality, emit)
            prompt = next(
                (m.content for m in reversed(request.messages) if m.role == "user"),
                request.raw_prompt or "",
            )
            params = {
                **dataclasses.asdict(request.params),
                **request.extra,
                **request.personality_config,
            }
            await _deliver(await workflow(prompt, params, context), context)

        return run
