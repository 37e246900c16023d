"""The bridge between a processor's worker thread and the server's event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import mimetypes
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lollms_server.bindings.events import Event, Step, TextDelta, TextReplace, Usage
from lollms_server.bindings.types import MediaOptions, MediaPart, Message, SamplingParams
from lollms_server.generation.requests import GenerationRequest
from lollms_server.generation.workflow import Emit
from lollms_server.personalities.model import Personality
from lollms_server.personalities.prompting import (
    apply_sampling,
    bound_sampling,
    render_lollms_prompt,
    split_lollms_prompt,
    system_prompt,
    with_system,
)
from lollms_server.personalities.zoo.fit import (
    Tokens,
    answer_room,
    count_messages,
    fit_messages,
)

if TYPE_CHECKING:
    from lollms_server.generation.port import GenerationPort

__all__ = ["EXTENSIONS", "Bridge"]

T = TypeVar("T")
EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


def _operation_kind(op: Any) -> str:
    """``MSG_OPERATION_TYPE_STEP_START`` / ``MSG_TYPE_STEP_START`` -> ``STEP_START``."""
    name = getattr(op, "name", "") or ""
    for prefix in ("MSG_OPERATION_TYPE_", "MSG_TYPE_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return "SET_CONTENT"


class Bridge:
    """Thread-side helpers: show text and progress, generate, ask yes/no questions."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        service: GenerationPort,
        request: GenerationRequest,
        personality: Personality,
    ) -> None:
        self.loop = loop
        self._loop_thread = threading.current_thread()  # built on the loop's thread
        self._emit: Emit | None = None  # attached when the run starts
        self.service = service
        self.request = request
        self.personality = personality
        self._text = ""
        self.content_sent = False  # whether the answer's text was set (steps aside)
        self.context_size: int | None = None  # the model's, known once prepared
        self.tokens = Tokens(service, request.binding_name, request.model_name)
        self._usage: list[Usage] = []  # counted before a client was attached

    # -- plumbing --------------------------------------------------------------------------
    def _wait(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` on the loop and wait for it (from the processor's thread; the
        request's end kills the whole process, so nothing here needs stopping)."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result()

    async def prepare(self) -> None:
        """Learn the model's context size (on the event loop, before the processor runs)."""
        self.context_size = await self.service.context_size(
            self.request.binding_name, self.request.model_name
        )

    async def attach(self, emit: Emit) -> None:
        """Send events to ``emit`` from now on (with the usage of what ran before)."""
        self._emit = emit
        pending, self._usage = self._usage, []
        for usage in pending:
            await emit(usage)

    def send(self, event: Event) -> None:
        if self._emit is None:  # the processor's constructor has no client to show it to
            return
        if isinstance(event, TextDelta | TextReplace):
            self.content_sent = True
        self._wait(self._emit(event))

    def step(
        self, kind: str, text: str, ok: bool | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.send(Step(kind, text, ok=ok, data=data or {}))

    def notice(self, kind: str, text: str) -> None:
        """A step for the client once one is attached (a constructor has none); from the
        processor's thread only."""
        if self._emit is not None and threading.current_thread() is not self._loop_thread:
            self.step(kind, text)

    # -- the callback lollms passes to run_workflow ------------------------------------------
    def callback(self, data: Any, op: Any = None, *args: Any, **kwargs: Any) -> bool:
        self.operation(data, op, *args)
        return True

    def operation(self, data: Any, op: Any, *args: Any) -> None:
        kind = _operation_kind(op)
        text = "" if data is None else data if isinstance(data, str) else str(data)
        if kind in ("ADD_CHUNK", "CHUNK"):
            self._text += text
            self.send(TextDelta(text))
        elif kind in ("SET_CONTENT", "FULL", "SET_CONTENT_INVISIBLE_TO_AI", "FULL_INVISIBLE_TO_AI"):
            self._set(text)
        elif kind in (
            "SET_CONTENT_INVISIBLE_TO_USER",
            "FULL_INVISIBLE_TO_USER",
            "FINISHED_MESSAGE",
            "REF",
            "CODE",
        ):
            return
        elif kind in ("STEP_START", "STEP", "INFO", "WARNING", "EXCEPTION"):
            self.step(kind.lower(), text)
        elif kind in ("STEP_END_SUCCESS", "STEP_END_FAILURE", "STEP_END"):
            status = args[0].get("status", True) if args and isinstance(args[0], dict) else True
            self.step("step_end", text, ok=kind != "STEP_END_FAILURE" and bool(status))
        elif kind == "STEP_PROGRESS":
            progress = args[0].get("progress") if args and isinstance(args[0], dict) else None
            self.step("step_progress", text, data={"progress": progress})
        elif kind == "JSON_INFOS":
            self.step("json", "", data={"items": data})
        elif kind == "UI":
            self.step("ui", "", data={"html": text})
        elif kind == "NEW_MESSAGE":
            self._text = ""
            self.step("new_message", "")
            if text:
                self._set(text)

    def _set(self, text: str) -> None:
        if text.startswith(self._text):
            if text != self._text:
                delta, self._text = text[len(self._text) :], text
                self.send(TextDelta(delta))
            return
        self._text = text
        self.send(TextReplace(text))

    # -- request data ----------------------------------------------------------------------
    def prompt_and_history(self) -> tuple[str, str]:
        """The last user message, and what lollms passes as ``previous_discussion_text``:
        the conditioning (and the request's system message), the conversation, then the AI's
        header, so that ``fast_gen(previous_discussion_text)`` answers as the personality."""
        messages = self.request.messages
        last = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        prompt = messages[last].content if last >= 0 else (self.request.raw_prompt or "")
        system = system_prompt(self.personality, user_name=self.request.user_name)
        history = render_lollms_prompt(with_system(messages, system), self.personality)
        return prompt, history

    # -- the model's tokenizer --------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with the request's model (see ``fit.Tokens``)."""
        return self._wait(self.tokens.encode(text))

    def detokenize(self, tokens: list[int]) -> str:
        """The text of ids from :meth:`tokenize`."""
        return self._wait(self.tokens.decode(tokens))

    # -- media -----------------------------------------------------------------------------
    def paint(
        self,
        prompt: str,
        options: MediaOptions,
        seed: int | None,
        images: list[Path],
        folder: Path,
    ) -> tuple[Path, dict[str, Any]]:
        """An image from the server's image binding (``[defaults] tti_binding``), saved in
        ``folder``: its path and what is known of it."""
        parts = tuple(
            MediaPart("image", i.read_bytes(), mimetypes.guess_type(i.name)[0] or "image/png")
            for i in images
        )
        request = GenerationRequest(
            generation_type="tti",
            messages=(Message("user", prompt, media=parts),),
            params=SamplingParams(seed=seed),
            media=options,
            queue_timeout=self.request.queue_timeout,
        )
        outputs = self._wait(self.service.generate_media(request))
        if not outputs:
            raise RuntimeError("the image binding returned no image")
        image = outputs[0]
        folder.mkdir(parents=True, exist_ok=True)
        suffix = EXTENSIONS.get(image.mime_type, ".png")
        index = 0
        while (folder / f"image_{index}{suffix}").exists():
            index += 1
        path = folder / f"image_{index}{suffix}"
        path.write_bytes(image.data)
        return path, {"prompt": prompt, "mime_type": image.mime_type, **image.metadata}

    # -- generation ------------------------------------------------------------------------
    def _generation_request(
        self, prompt: str, max_tokens: int | None, images: list[Any] | None, params: dict[str, Any]
    ) -> GenerationRequest:
        messages = list(
            split_lollms_prompt(
                prompt,
                (self.personality.ai_message_prefix,),
                (self.personality.user_message_prefix,),
            )
        )
        if images:
            media = tuple(MediaPart("image", Path(i).read_bytes(), "image/png") for i in images)
            last = messages[-1]
            messages[-1] = dataclasses.replace(last, media=last.media + media)
        sampling = SamplingParams(
            temperature=params.get("temperature"),
            top_k=params.get("top_k"),
            top_p=params.get("top_p"),
            repeat_penalty=params.get("repeat_penalty"),
            max_tokens=max_tokens,
        )
        sampling, extra = apply_sampling(sampling, {}, self.personality)
        sampling = bound_sampling(sampling, self.request.params)  # the client's limits
        if params.get("repeat_last_n") is not None:
            extra["repeat_last_n"] = params["repeat_last_n"]
        # Only what the binding takes (most zoo configs set repeat_last_n, which
        # OpenAI-compatible servers refuse), as for plain personalities.
        binding_name = self.request.binding_name
        extra = {k: v for k, v in extra.items() if self.service.takes_parameter(binding_name, k)}
        return dataclasses.replace(
            self.request,
            messages=tuple(messages),
            raw_prompt=None,
            params=sampling,
            extra=extra,
            personality=None,
            functions=(),
            tools=(),
            tool_choice=None,
        )

    async def _fitted(self, request: GenerationRequest, context: int) -> GenerationRequest:
        """``request`` cut to the model's context, with room for the answer (see ``fit``)."""
        params = request.params
        room = answer_room(context, params.max_tokens)
        messages, used = await fit_messages(request.messages, context - room, self.tokens)
        if params.max_tokens is not None and used + params.max_tokens > context:
            used = await count_messages(messages, self.tokens)  # "used" was an upper bound
            if used + params.max_tokens > context:
                params = dataclasses.replace(params, max_tokens=max(context - used, 1))
        return dataclasses.replace(request, messages=messages, params=params)

    def _pieces(self, request: GenerationRequest) -> AsyncIterator[str]:
        async def pieces() -> AsyncIterator[str]:
            async with contextlib.aclosing(self.service.events(request)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        yield event.text
                    elif isinstance(event, Usage):  # counted in the run's usage
                        if self._emit is None:
                            self._usage.append(event)
                        else:
                            await self._emit(event)

        return pieces()

    def generate(
        self,
        prompt: str,
        max_tokens: int | None = None,
        *,
        callback: Callable[..., Any] | None = None,
        images: list[Any] | None = None,
        **params: Any,
    ) -> str:
        """Generate through the server; with ``callback``, each piece is passed to it as
        lollms does (``callback(chunk, MSG_OPERATION_TYPE_ADD_CHUNK)``)."""
        from lollms_server.personalities.zoo.lollms.types import MSG_OPERATION_TYPE

        request = self._generation_request(prompt, max_tokens, images, params)
        if self.context_size:
            request = self._wait(self._fitted(request, self.context_size))
        stream = self._pieces(request)
        out: list[str] = []
        try:
            while True:
                try:
                    piece: str = self._wait(stream.__anext__())
                except StopAsyncIteration:
                    break
                out.append(piece)
                if (
                    callback is not None
                    and callback(piece, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_ADD_CHUNK) is False
                ):
                    break
        finally:  # stop the generation now, not when the garbage collector finds it
            if not self.loop.is_closed():
                closing = asyncio.run_coroutine_threadsafe(stream.aclose(), self.loop)  # type: ignore[attr-defined]
                with contextlib.suppress(Exception):
                    closing.result(timeout=5)
        return "".join(out)

    def _ask(self, instruction: str, question: str, context: str, conditioning: str) -> str:
        parts = [f"!@>system:\n{conditioning or 'Answer the question precisely.'}"]
        body = f"Context:\n{context}\n\n" if context else ""
        parts.append(f"!@>user:\n{body}Question: {question}\n{instruction}")
        return self.generate("\n".join(parts), 64, temperature=0.0)

    def yes_no(self, question: str, context: str, conditioning: str, explain: bool) -> Any:
        answer = self._ask("Answer with yes or no only.", question, context, conditioning)
        verdict = answer.strip().lower().lstrip("*\"' ").startswith(("yes", "oui", "true"))
        return {"answer": verdict, "explanation": answer} if explain else verdict

    def multichoice(
        self, question: str, answers: list[str], context: str, conditioning: str, explain: bool
    ) -> Any:
        listing = "\n".join(f"{i}. {a}" for i, a in enumerate(answers))
        reply = self._ask(
            f"Possible answers:\n{listing}\nAnswer with the number of the right answer only.",
            question,
            context,
            conditioning,
        )
        index = next((int(tok) for tok in _numbers(reply) if 0 <= int(tok) < len(answers)), -1)
        return (index, reply) if explain else index


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+", text)
