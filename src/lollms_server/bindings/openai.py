"""OpenAI-compatible binding: a lean relay on httpx, with msgspec parsing the answers.

Works with OpenAI itself and any server speaking its API: vLLM, LM Studio, llama.cpp's
server, OpenRouter, or another lollms_server. The hot path builds no per-chunk model: the
upstream's Server-Sent Events are split here and each chunk is decoded by msgspec into a few
small typed structs (measured faster than orjson into dicts, and than the ``openai`` SDK by
far). A plain-``http`` upstream's answers are parsed by httptools (C) on the binding's own
keep-alive connections rather than by h11 (:class:`_Plain`). A client that does not stream
gets a non-streamed upstream call (``BindingRequest.stream``).

One total deadline per request (``timeout``) covers connecting, retrying and the whole
answer. Connection errors, 429 and 5xx are retried (``max_retries``, honouring Retry-After)
only before the first event is yielded, i.e. before anything reached the client; a stream
that breaks later ends with an error. Upstream errors are mapped into the server's error
tree: 401/403 -> ``binding_auth_error`` (502: the *upstream* key is wrong, not the client's),
429 and 5xx -> 503 with the upstream's Retry-After, an unreachable server ->
``binding_unavailable`` naming the URL. Upstream text reaches clients only with this
instance's secrets (key, header values, URL credentials) replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import math
import os
import random
import socket
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpcore
import httptools
import httpx
import msgspec
from pydantic import Field, SecretStr, model_validator
from typing_extensions import TypeVar

from lollms_server.bindings.base import Binding, BindingConfig, Capabilities
from lollms_server.bindings.events import (
    Event,
    Finished,
    MediaOutput,
    TextDelta,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.media import media_options, prompt_of
from lollms_server.bindings.types import BindingContext, BindingRequest, Message, ModelInfo
from lollms_server.errors import (
    BadRequest,
    BindingAuthError,
    BindingUnavailable,
    GenerationFailed,
    LollmsError,
    NotFound,
)
from lollms_server.security.redact import Redactor, header_secrets, safe_url, url_secrets

__all__ = ["OpenAIBinding", "OpenAIConfig"]

_MEDIA_OPTIONS = {
    "tti": ("width", "height", "steps", "guidance", "negative_prompt", "n", "format"),
    "tts": ("voice", "speed"),
}
USER_AGENT = "lollms-server"
BACKOFF_FIRST_S = 0.5  # then doubled per retry, up to BACKOFF_MAX_S (the SDK's schedule)
BACKOFF_MAX_S = 8.0


def _image_mime(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


EXTRA_PARAMETERS = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "response_format",
        "reasoning_effort",
    }
)


class OpenAIConfig(BindingConfig):
    base_url: str = Field("https://api.openai.com/v1", description="The API's /v1 URL.")
    api_key: SecretStr | None = Field(None, description="Key sent upstream (or api_key_env).")
    api_key_env: str | None = Field(None, description="Environment variable holding the key.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    timeout: float = Field(
        300.0,
        gt=0,
        description="Seconds one request may take in all: connecting, retries and the whole "
        "answer (then 503, or an error event once a stream has started).",
    )
    max_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of connection errors, 429 and 5xx before anything reached the "
        "client (waiting as the upstream's Retry-After says, within timeout); 0 passes them "
        "to the client at once.",
    )
    models: list[str] = Field(
        default_factory=list, description="Model ids, for servers without GET /models."
    )
    context_size: int | None = Field(None, ge=1, description="Reported context size.")
    max_concurrency: int = Field(16, ge=1, description="Requests run at once upstream.")
    vision: bool = Field(True, description="Send image inputs (for vision models).")
    modalities: list[Literal["ttt", "tti", "tts"]] = Field(
        default=["ttt"],
        description="What the upstream serves: ttt (chat and "
        "completions), tti (/images/generations), tts (/audio/speech).",
    )
    default_voice: str | None = Field(
        None,
        description="Speech voice when a request names "
        "none (OpenAI-compatible speech requires one).",
    )

    @model_validator(mode="after")
    def _one_credential(self) -> OpenAIConfig:
        if _has_userinfo(self.base_url) and (self.api_key is not None or self.api_key_env):
            raise ValueError(
                "base_url carries credentials (user:password@) and api_key or api_key_env is "
                "set too: the upstream would receive only the URL's (as HTTP Basic), never the "
                "key. Keep one of them."
            )
        return self


def _has_userinfo(url: str) -> bool:
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:  # not a URL at all: reported when it is used
        return False


OpenAIConfigT = TypeVar("OpenAIConfigT", bound=OpenAIConfig, covariant=True, default=OpenAIConfig)


# -- the upstream's answers, as msgspec decodes them (unknown fields are skipped) ----------
class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallPart(msgspec.Struct):
    index: int | None = None  # streamed fragments carry it; a whole message's calls do not
    id: str | None = None
    function: _Function | None = None


class _Delta(msgspec.Struct):
    """A streamed ``delta``, or a whole answer's ``message``."""

    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_ToolCallPart] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    message: _Delta | None = None
    text: str | None = None  # completions
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Chunk(msgspec.Struct):
    """One streamed chunk, or a whole (non-streamed) answer: they share this shape."""

    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: Any = None


class _Image(msgspec.Struct):
    b64_json: str | None = None


class _Images(msgspec.Struct):
    data: list[_Image] | None = None


class _Model(msgspec.Struct):
    id: str


class _Models(msgspec.Struct):
    data: list[_Model] = []


_CHUNK = msgspec.json.Decoder(_Chunk)
_IMAGES = msgspec.json.Decoder(_Images)
_MODELS = msgspec.json.Decoder(_Models)
_ANY = msgspec.json.Decoder()


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


_ENCODE = msgspec.json.Encoder(enc_hook=_enc_hook).encode


class _SSE:
    """Server-Sent Events: the ``data`` of each complete event in the bytes fed so far, up
    to OpenAI's ``[DONE]`` (comments, ``event:`` and ``id:`` lines carry nothing here)."""

    __slots__ = ("_data", "_rest", "done")

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[bytes] = []
        self.done = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if self.done:
            return []
        lines = (self._rest + chunk if self._rest else chunk).split(b"\n")
        self._rest = lines.pop()
        out: list[bytes] = []
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if line[:5] == b"data:":
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif not line and self._data:
                data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                self._data = []
                if data[:6] == b"[DONE]":
                    self.done = True
                    break
                out.append(data)
        return out


class _Deadline:
    """One request's total time: what is left of it, and a watchdog that cuts the upstream
    connection when it passes, so that a read in progress fails at once (one timer per
    request; nothing per chunk)."""

    __slots__ = ("_loop", "_timer", "at", "expired", "seconds")

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self.seconds = seconds
        self.at = self._loop.time() + seconds
        self.expired = False
        self._timer: asyncio.TimerHandle | None = None

    def left(self) -> float:
        return self.at - self._loop.time()

    def guard(self, response: httpx.Response) -> None:
        self._timer = self._loop.call_at(self.at, self._cut, response)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _cut(self, response: httpx.Response) -> None:
        if response.is_closed:  # its connection may serve another request by now
            return
        self.expired = True
        _shut(response)


def _shut(response: httpx.Response) -> None:
    """Shut the TCP connection under ``response`` down (through a duplicate descriptor:
    uvloop's transport sockets refuse ``shutdown``); its pending read then fails."""
    stream = response.extensions.get("network_stream")
    sock = None if stream is None else stream.get_extra_info("socket")
    if sock is None:
        return
    with (
        contextlib.suppress(OSError),
        socket.fromfd(sock.fileno(), sock.family, sock.type) as dup,
    ):
        dup.shutdown(socket.SHUT_RDWR)


KEEPALIVE_S = 5.0  # an idle upstream connection is closed after this (httpx's default)


class _Pool:
    """Keep-alive connections to the upstream, for httpx's transport: the idle ones on a
    stack (the most recently used taken first), and only the one taken is checked. httpcore's
    own pool scans every connection, polling each idle socket, twice per request: with a few
    dozen connections that took a fifth of the relay's CPU."""

    def __init__(self, keepalive: int) -> None:
        self._ssl = httpx.create_ssl_context()
        self._keepalive = keepalive
        self._idle: list[httpcore.AsyncHTTPConnection] = []  # and _Plain ones

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        while True:
            connection = await self._take(request.url.origin)
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                await connection.aclose()
                continue  # it was closed meanwhile: take another one
            except BaseException:
                await connection.aclose()
                raise
            assert isinstance(response.stream, AsyncIterable)
            return httpcore.Response(
                response.status,
                headers=response.headers,
                content=_Lent(response.stream, connection, self),
                extensions=response.extensions,
            )

    async def _take(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.can_handle_request(origin) and not connection.has_expired():
                return connection
            await connection.aclose()
        if origin.scheme == b"http":
            return _Plain(origin)  # type: ignore[return-value]
        return httpcore.AsyncHTTPConnection(
            origin, ssl_context=self._ssl, keepalive_expiry=KEEPALIVE_S
        )

    async def give_back(self, connection: httpcore.AsyncHTTPConnection) -> None:
        if connection.is_idle() and len(self._idle) < self._keepalive:
            self._idle.append(connection)
        else:
            await connection.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()


class _Lent:
    """A response's body; closing it gives its connection back to the pool."""

    def __init__(
        self, stream: AsyncIterable[bytes], connection: httpcore.AsyncHTTPConnection, pool: _Pool
    ) -> None:
        self._stream = stream
        self._connection = connection
        self._pool = pool

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        try:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()
        finally:
            await self._pool.give_back(self._connection)


_BACKEND = httpcore.AnyIOBackend()  # what httpcore picks under asyncio
READ_BYTES = 65536


class _Plain:
    """One keep-alive HTTP/1.1 connection to a plain-``http`` upstream, its answers parsed by
    httptools (llhttp, in C) instead of httpcore's h11: h11 took about half of the relay's CPU
    per streamed chunk. It has the interface the pool and httpx use of httpcore's connection
    and raises httpcore's errors (the network stream's own: connect, read and write errors
    and timeouts; ``RemoteProtocolError`` for a malformed or cut answer). One read may carry
    several HTTP chunks: they come out as one piece. TLS upstreams keep httpcore's connection.
    """

    __slots__ = ("_expire_at", "_origin", "_state", "_stream")

    def __init__(self, origin: httpcore.Origin) -> None:
        self._origin = origin
        self._stream: httpcore.AsyncNetworkStream | None = None
        self._state = "new"  # new -> active -> idle -> active ... -> closed
        self._expire_at: float | None = None

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self._origin

    def is_idle(self) -> bool:
        return self._state == "idle"

    def has_expired(self) -> bool:
        """Idle past the keep-alive time, or closed by the server (an idle socket that is
        readable can only be at its end)."""
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        return (
            self._state == "idle"
            and self._stream is not None
            and bool(self._stream.get_extra_info("is_readable"))
        )

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        if self._state not in ("new", "idle"):
            raise httpcore.ConnectionNotAvailable()
        self._state, self._expire_at = "active", None
        timeouts = request.extensions.get("timeout", {})
        answer = _Parsed()
        parser = answer.parser = httptools.HttpResponseParser(answer)
        try:
            if self._stream is None:
                self._stream = await _BACKEND.connect_tcp(
                    self._origin.host.decode("ascii"),
                    self._origin.port,
                    timeout=timeouts.get("connect"),
                )
            stream = self._stream
            body = b""
            if request.stream is not None:
                assert isinstance(request.stream, AsyncIterable)
                body = b"".join([part async for part in request.stream])
            head = [b"%s %s HTTP/1.1\r\n" % (request.method, request.url.target)]
            head += [b"%s: %s\r\n" % (name, value) for name, value in request.headers]
            await stream.write(b"".join(head) + b"\r\n" + body, timeout=timeouts.get("write"))
            read_timeout = timeouts.get("read")
            while not answer.headed:
                data = await stream.read(READ_BYTES, timeout=read_timeout)
                if not data:
                    raise httpcore.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                _feed(parser, data)
        except BaseException:
            await self.aclose()
            raise
        return httpcore.Response(
            parser.get_status_code(),
            headers=answer.headers,
            content=_PlainBody(self, parser, answer, read_timeout),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": answer.reason,
                "network_stream": stream,
            },
        )

    def _done(self, reusable: bool) -> bool:
        """The answer was read to its end (``reusable``: and the connection may serve
        another): whether it is idle now."""
        if reusable and self._state == "active":
            self._state = "idle"
            self._expire_at = time.monotonic() + KEEPALIVE_S
            return True
        return False

    async def aclose(self) -> None:
        self._state = "closed"
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()


def _feed(parser: httptools.HttpResponseParser, data: bytes) -> None:
    try:
        parser.feed_data(data)
    except httptools.HttpParserError as exc:
        raise httpcore.RemoteProtocolError(f"Malformed HTTP answer: {exc}") from None


class _Parsed:
    """httptools' callbacks for one answer: its head, the body pieces not yet taken, its end."""

    __slots__ = (
        "complete",
        "headed",
        "headers",
        "keep_alive",
        "parser",
        "pieces",
        "reason",
        "sized",
    )

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.headed = self.complete = self.keep_alive = False
        self.sized = False  # a content-length or chunked body (else: it ends with the stream)
        self.pieces: list[bytes] = []

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self.sized = True

    def on_headers_complete(self) -> None:
        self.headed = True

    def on_body(self, data: bytes) -> None:
        self.pieces.append(data)

    def on_message_complete(self) -> None:
        self.complete = True
        # Asked here: once the parser has moved past the answer, it always says False.
        self.keep_alive = self.parser is not None and self.parser.should_keep_alive()


class _PlainBody:
    """The body of one answer on a :class:`_Plain` connection, piece by piece."""

    __slots__ = ("_answer", "_connection", "_parser", "_timeout", "_reusable")

    def __init__(
        self,
        connection: _Plain,
        parser: httptools.HttpResponseParser,
        answer: _Parsed,
        timeout: float | None,
    ) -> None:
        self._connection = connection
        self._parser = parser
        self._answer = answer
        self._timeout = timeout
        self._reusable = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        answer, parser, pieces = self._answer, self._parser, self._answer.pieces
        stream = self._connection._stream
        assert stream is not None
        try:
            while True:
                if pieces:
                    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    pieces.clear()
                    yield data
                if answer.complete:
                    break
                data = await stream.read(READ_BYTES, timeout=self._timeout)
                if not data:
                    if not answer.sized:
                        break  # a body that ends when the connection does
                    raise httpcore.RemoteProtocolError(
                        "The server closed the connection in the middle of the answer."
                    )
                _feed(parser, data)
            self._reusable = answer.complete and answer.keep_alive
        except BaseException:
            await self._connection.aclose()
            raise

    async def aclose(self) -> None:
        if not self._connection._done(self._reusable):
            await self._connection.aclose()


class _Transport(httpx.AsyncHTTPTransport):
    """httpx's transport (its conversions and error mapping) on :class:`_Pool`."""

    def __init__(self, keepalive: int) -> None:
        super().__init__()
        self._pool = _Pool(keepalive)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class _Failure:
    """A failed attempt: the error to raise if no retry follows."""

    error: LollmsError
    retriable: bool
    retry_after: float | None = None


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the upstream asks to wait (``retry-after-ms``, ``retry-after`` in seconds or
    as an HTTP date), or None."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(headers.get("retry-after", ""))
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return retry_after
    jitter = 1 - 0.25 * random.random()  # noqa: S311 (spreads retries; not a secret)
    return min(BACKOFF_FIRST_S * 2.0**attempt, BACKOFF_MAX_S) * jitter


def _is_json(response: httpx.Response) -> bool:
    """Whether a streamed request got one whole JSON answer (a server that ignores
    ``stream``) rather than events."""
    return str(response.headers.get("content-type", "")).startswith("application/json")


def _error_message(body: bytes) -> str:
    """``Error code``'s detail as the SDK gave it: the upstream's ``error.message`` when the
    body is OpenAI's error JSON, else the body's text."""
    try:
        data = _ANY.decode(body)
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace").strip()[:2000]
    error = data.get("error", data) if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message:
        return message
    return body.decode("utf-8", "replace").strip()[:2000]


class OpenAIBinding(Binding[OpenAIConfigT]):
    name: ClassVar[str] = "openai"
    holds_models: ClassVar[bool] = False  # a client of a remote server
    description: ClassVar[str] = "Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, ...)."
    modalities: ClassVar[frozenset[str]] = frozenset({"ttt", "tti", "tts"})
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True, vision=True, structured_output=True, tools=True
    )
    extra_parameters: ClassVar[frozenset[str] | None] = EXTRA_PARAMETERS

    def __init__(self, config: OpenAIConfigT, context: BindingContext) -> None:
        super().__init__(config, context)
        self._client: httpx.AsyncClient | None = None
        self._urls: dict[str, httpx.URL] = {}
        self.redact = Redactor(self._secrets())
        self._upstream = safe_url(config.base_url)
        self._where = f"'{self.instance_name}' ({self._upstream})"

    def _secrets(self) -> list[str]:
        """What must never come back from the upstream: key, header values, URL credentials."""
        key = self._key() if self.config.api_key is not None or self.config.api_key_env else None
        return [key or "", *header_secrets(self.config.headers), *url_secrets(self.config.base_url)]

    def _key(self) -> str:
        if self.config.api_key is not None:
            return self.config.api_key.get_secret_value()
        if self.config.api_key_env:
            return os.environ.get(self.config.api_key_env, "")
        return "none"  # keyless local servers (what the openai SDK sent)

    def client(self) -> httpx.AsyncClient:
        """The instance's HTTP client (a keep-alive pool), made on first use."""
        if self._client is None:
            key = self._key()
            headers = {
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **({"Authorization": f"Bearer {key}"} if key else {}),
                **self.config.headers,
            }
            self._client = httpx.AsyncClient(
                headers=headers,
                timeout=self.config.timeout,
                follow_redirects=True,
                # No bound on connections: the scheduler bounds requests (max_concurrency).
                transport=_Transport(keepalive=max(20, self.config.max_concurrency)),
            )
        return self._client

    def _url(self, path: str) -> httpx.URL:
        """``base_url`` + ``/path``, keeping the base's query (Azure's ``?api-key=``) and its
        credentials (sent as HTTP Basic)."""
        url = self._urls.get(path)
        if url is None:
            try:
                base = httpx.URL(self.config.base_url)
            except httpx.InvalidURL:
                raise BindingUnavailable(
                    f"The base_url of '{self.instance_name}' is not a URL: {self._upstream}"
                ) from None
            url = base.copy_with(path=base.path.rstrip("/") + "/" + path)
            self._urls[path] = url
        return url

    def first_event_wait(self, request: BindingRequest) -> float:
        """How long a stream may wait for this binding's first event before its response
        starts: the whole deadline (and a second for its error to arrive), as retries and
        their errors all come before it."""
        return self.config.timeout + 1.0

    # -- models ----------------------------------------------------------------------------
    async def list_models(self) -> list[ModelInfo]:
        names = list(self.config.models)
        if not names:
            body = await self._fetch("GET", "models", None)
            try:
                names = [m.id for m in _MODELS.decode(body).data]
            except msgspec.DecodeError as exc:
                raise self._invalid(exc) from None
        return [
            ModelInfo(
                name=n,
                context_size=self.config.context_size,
                details={"base_url": self._upstream},
            )
            for n in names
        ]

    def serves(self) -> frozenset[str]:
        return frozenset(self.config.modalities)

    def max_concurrency(self, model: str) -> int:
        return self.config.max_concurrency

    def memory_estimate(self, model: str) -> int | None:
        return 0  # served elsewhere: takes nothing from this machine's budget

    async def load(self, model: str) -> None:
        return None  # nothing to load here: the upstream server owns the model

    async def unload(self, model: str) -> None:
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- generation ------------------------------------------------------------------------
    def check_request(self, request: BindingRequest) -> None:
        if request.generation_type in _MEDIA_OPTIONS:
            options = media_options(request, _MEDIA_OPTIONS[request.generation_type])
            prompt_of(request)
            if request.generation_type == "tts" and not (
                options.voice or self.config.default_voice
            ):
                raise BadRequest(
                    "OpenAI-compatible speech needs a voice: give parameters."
                    "voice, or set default_voice.",
                    param="parameters.voice",
                )
            return
        if not self.config.vision and any(m.media for m in request.messages):
            raise BadRequest(
                f"Binding instance '{self.instance_name}' is configured without "
                "vision (vision = false).",
                param="input_data",
            )

    def _message(self, message: Message) -> dict[str, Any]:
        if message.tool_calls or message.tool_call_id:
            out: dict[str, Any] = {"role": message.role, "content": message.content or None}
            if message.tool_calls:
                out["tool_calls"] = [dict(c) for c in message.tool_calls]
            if message.tool_call_id:
                out["tool_call_id"] = message.tool_call_id
            return out
        if not message.media:
            return {"role": message.role, "content": message.content}
        parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
        for media in message.media:
            if media.kind != "image":
                raise BadRequest(
                    f"Only images can be sent upstream, not {media.kind}.", param="input_data"
                )
            url = f"data:{media.mime_type};base64,{base64.b64encode(media.data).decode()}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        return {"role": message.role, "content": parts}

    def _params(self, request: BindingRequest) -> dict[str, Any]:
        """The request's body fields; ``extra_body`` holds non-OpenAI ones (merged in)."""
        p = request.params
        out: dict[str, Any] = {"model": request.model, "stream": request.stream}
        for name, value in (
            ("temperature", p.temperature),
            ("top_p", p.top_p),
            ("max_tokens", p.max_tokens),
            ("seed", p.seed),
        ):
            if value is not None:
                out[name] = value
        if p.stop:
            out["stop"] = list(p.stop)
        if request.tools:
            out["tools"] = [dict(t) for t in request.tools]
            if request.tool_choice is not None:
                out["tool_choice"] = request.tool_choice
        extra_body: dict[str, Any] = {}
        if p.top_k is not None:
            extra_body["top_k"] = p.top_k
        if p.repeat_penalty is not None:
            extra_body["repeat_penalty"] = p.repeat_penalty
        if request.json_schema is not None:
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": dict(request.json_schema)},
            }
        out.update(request.extra)
        if extra_body:
            out["extra_body"] = extra_body
        return out

    def _body(self, request: BindingRequest) -> dict[str, Any]:
        """The whole JSON body of a chat or completion request."""
        body = self._params(request)
        body.update(body.pop("extra_body", None) or {})  # as the SDK merged extra_body
        if request.raw_prompt is not None:
            body["prompt"] = request.raw_prompt
            return body
        body["messages"] = [self._message(m) for m in request.messages]
        if body.get("stream"):
            body["stream_options"] = {"include_usage": True}
        return body

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        if request.generation_type == "tti":
            outputs = await self._images(request)
        elif request.generation_type == "tts":
            outputs = await self._speech(request)
        else:
            async for event in self._text(request):
                yield event
            return
        for output in outputs:
            yield output
        yield Usage(0, 0)
        yield Finished("stop", {"upstream": self._upstream})

    async def _images(self, request: BindingRequest) -> list[MediaOutput]:
        options = media_options(request)
        body: dict[str, Any] = {"model": request.model, "prompt": prompt_of(request)}
        body["n"] = options.n
        if options.width and options.height:
            body["size"] = f"{options.width}x{options.height}"
        if not request.model.startswith("gpt-image"):  # those always answer b64_json and
            body["response_format"] = "b64_json"  # refuse the parameter
        for key, value in (
            ("negative_prompt", options.negative_prompt),
            ("num_inference_steps", options.steps),
            ("guidance_scale", options.guidance),
            ("seed", request.params.seed),
            ("output_format", options.format),
        ):
            if value is not None:
                body[key] = value
        try:
            items = _IMAGES.decode(await self._fetch("POST", "images/generations", body)).data
        except msgspec.DecodeError as exc:
            raise self._invalid(exc) from None
        outputs = []
        for index, item in enumerate(items or ()):
            if not item.b64_json:
                raise GenerationFailed("The upstream server returned no b64_json image.")
            data = base64.b64decode(item.b64_json)
            outputs.append(MediaOutput(data, _image_mime(data), "image", {"index": index}))
        return outputs

    async def _speech(self, request: BindingRequest) -> list[MediaOutput]:
        options = media_options(request)
        voice = options.voice or self.config.default_voice
        body: dict[str, Any] = {
            "model": request.model,
            "input": prompt_of(request),
            "voice": voice or "",
            "response_format": "wav",
        }
        if options.speed is not None:
            body["speed"] = options.speed
        audio = await self._fetch("POST", "audio/speech", body)
        return [MediaOutput(audio, "audio/wav", "audio", {"voice": voice})]

    async def _text(self, request: BindingRequest) -> AsyncIterator[Event]:
        deadline = _Deadline(self.config.timeout)
        path = "chat/completions" if request.raw_prompt is None else "completions"
        response = await self._open("POST", path, self._body(request), deadline)
        answer = _Answer(request.raw_prompt is not None, self)
        try:
            deadline.guard(response)
            if request.stream and not _is_json(response):
                async for event in self._relay(response, answer):
                    yield event
            else:
                body = await response.aread()
                deadline.cancel()
                for event in answer.add(_CHUNK.decode(body)):
                    yield event
            for event in answer.end():
                yield event
        except LollmsError:
            raise
        except Exception as exc:
            raise self._broken(exc, deadline) from None
        finally:
            deadline.cancel()
            await response.aclose()

    async def _relay(self, response: httpx.Response, answer: _Answer) -> AsyncIterator[Event]:
        """The events of a streamed answer, chunk by chunk. The body is read to its end
        (after ``[DONE]`` too), so that the connection goes back to the pool."""
        sse = _SSE()
        body = response.stream  # the raw pieces: httpx's decoding layers serve only...
        if "content-encoding" in response.headers:  # ...a compressed body
            body = response.aiter_bytes()  # type: ignore[assignment]
        assert isinstance(body, AsyncIterable)
        async for data in body:
            for payload in sse.feed(data):
                for event in answer.add(_CHUNK.decode(payload)):
                    yield event

    # -- HTTP: one deadline, retries before the first byte ---------------------------------
    async def _fetch(self, method: str, path: str, body: dict[str, Any] | None) -> bytes:
        """The whole body of a successful request (retried as :meth:`_open` does)."""
        deadline = _Deadline(self.config.timeout)
        response = await self._open(method, path, body, deadline)
        try:
            deadline.guard(response)
            return await response.aread()
        except Exception as exc:
            raise self._broken(exc, deadline) from None
        finally:
            deadline.cancel()
            await response.aclose()

    async def _open(
        self, method: str, path: str, body: dict[str, Any] | None, deadline: _Deadline
    ) -> httpx.Response:
        """The upstream's successful response, its body not read yet. Connection errors,
        429 and 5xx are retried while ``max_retries`` and the deadline allow; then the
        mapped error is raised (before the caller yielded anything)."""
        content = None if body is None else _ENCODE(body)
        attempt = 0
        while True:
            outcome = await self._attempt(method, path, content, deadline)
            if isinstance(outcome, httpx.Response):
                return outcome
            wait = _backoff(attempt, outcome.retry_after)
            if not outcome.retriable or attempt >= self.config.max_retries:
                raise outcome.error
            if wait >= deadline.left():
                raise outcome.error
            await asyncio.sleep(wait)
            attempt += 1

    async def _attempt(
        self, method: str, path: str, content: bytes | None, deadline: _Deadline
    ) -> httpx.Response | _Failure:
        client = self.client()
        left = deadline.left()
        if left <= 0:
            return _Failure(self._timed_out(), retriable=False)
        request = client.build_request(method, self._url(path), content=content, timeout=left)
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            return _Failure(self._timed_out(), retriable=False)
        except httpx.TransportError:
            return _Failure(
                BindingUnavailable(f"Cannot reach the upstream server of {self._where}."),
                retriable=True,
            )
        if response.status_code < 400:
            return response
        try:
            text = await response.aread()
        except httpx.HTTPError:
            text = b""
        finally:
            await response.aclose()
        return self._status_failure(response, text)

    def _status_failure(self, response: httpx.Response, body: bytes) -> _Failure:
        """An upstream error status as the server's error (redacted upstream text)."""
        status, where = response.status_code, self._where
        detail = self.redact(f"Error code: {status} - {_error_message(body)}")
        if status in (401, 403):
            error: LollmsError = BindingAuthError(
                f"The upstream server of {where} refused the binding's API key (HTTP {status})."
            )
        elif status == 404:
            error = NotFound(
                f"The upstream server of {where} answered 404: {detail}", param="model_name"
            )
        elif status == 429 or status >= 500:
            retry = response.headers.get("retry-after")
            error = BindingUnavailable(
                f"The upstream server of {where} answered HTTP {status}.",
                retry_after=int(retry) if retry and retry.isdigit() else None,
            )
            return _Failure(error, retriable=True, retry_after=_retry_after(response.headers))
        elif status in (400, 422):
            error = BadRequest(f"The upstream server of {where} rejected the request: {detail}")
        else:
            error = GenerationFailed(f"The upstream server of {where} failed: {detail}")
        return _Failure(error, retriable=status in (408, 409))

    # -- errors ----------------------------------------------------------------------------
    def _timed_out(self) -> BindingUnavailable:
        return BindingUnavailable(
            f"The upstream server of {self._where} did not answer within the binding's "
            f"timeout ({self.config.timeout:g} s)."
        )

    def _invalid(self, exc: Exception) -> GenerationFailed:
        return GenerationFailed(
            f"The upstream server of {self._where} sent an answer that is not "
            f"OpenAI-compatible: {self.redact(str(exc))}"
        )

    def _broken(self, exc: Exception, deadline: _Deadline) -> LollmsError:
        """The server's error for an answer that failed after its status line came; the
        upstream's text is redacted (and ``exc`` not chained, so no traceback shows it)."""
        if isinstance(exc, LollmsError):
            return exc
        if deadline.expired or isinstance(exc, httpx.TimeoutException):
            return BindingUnavailable(
                f"The upstream server of {self._where} did not finish within the binding's "
                f"timeout ({self.config.timeout:g} s)."
            )
        if isinstance(exc, httpx.TransportError):
            return BindingUnavailable(
                f"The connection to the upstream server of {self._where} broke mid-answer."
            )
        if isinstance(exc, msgspec.DecodeError):
            return self._invalid(exc)
        detail = self.redact(str(exc))
        return GenerationFailed(
            f"Upstream error from {self._where}: {type(exc).__name__}: {detail}"
        )


class _Answer:
    """Folds an upstream's chunks (or its one whole answer) into events: text and thoughts
    as they come; tool calls (streamed in fragments, by index), usage and the finish reason
    at the end."""

    __slots__ = ("binding", "calls", "finish", "raw", "usage")

    def __init__(self, raw: bool, binding: OpenAIBinding[Any]) -> None:
        self.raw = raw
        self.binding = binding
        self.finish = "stop"
        self.usage: _Usage | None = None
        self.calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]

    def add(self, chunk: _Chunk) -> list[Event]:
        if chunk.error:
            raise self._failed(chunk.error)
        if chunk.usage is not None:
            self.usage = chunk.usage
        events: list[Event] = []
        for choice in chunk.choices or ():
            if self.raw:
                if choice.text:
                    events.append(TextDelta(choice.text))
            else:
                delta = choice.delta or choice.message
                if delta is not None:
                    self._delta(delta, events)
            self.finish = choice.finish_reason or self.finish
        return events

    def _delta(self, delta: _Delta, events: list[Event]) -> None:
        thoughts = delta.reasoning_content or delta.reasoning
        if thoughts:
            events.append(ThoughtsDelta(thoughts))
        if delta.content:
            events.append(TextDelta(delta.content))
        for position, part in enumerate(delta.tool_calls or ()):
            index = part.index if part.index is not None else position
            call = self.calls.setdefault(index, ["", "", ""])
            call[0] = part.id or call[0]
            if part.function is not None:
                call[1] += part.function.name or ""
                call[2] += part.function.arguments or ""

    def end(self) -> list[Event]:
        events: list[Event] = [
            ToolCall(call[0] or f"call_{index}", call[1], call[2])
            for index, call in sorted(self.calls.items())
        ]
        if self.usage is not None:
            usage = self.usage
            events.append(Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0))
        events.append(Finished(self.finish, {"upstream": self.binding._upstream}))
        return events

    def _failed(self, error: Any) -> GenerationFailed:
        """An error the upstream sent inside its stream (OpenAI's ``{"error": {...}}``)."""
        message = error.get("message") if isinstance(error, dict) else error
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"
        return GenerationFailed(
            f"The upstream server of {self.binding._where} failed mid-answer: "
            f"{self.binding.redact(message)}"
        )
