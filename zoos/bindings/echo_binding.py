"""An example drop-in binding: copy this file into the folder named by [paths] bindings.

It answers with the user's last message reversed, one character per chunk. A real binding
would call its engine in ``load`` and ``generate`` (keeping blocking work off the event loop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from lollms_server.bindings import (
    Binding,
    BindingConfig,
    BindingRequest,
    Event,
    Finished,
    ModelInfo,
    TextDelta,
    Usage,
)


class EchoConfig(BindingConfig):
    prefix: str = ""


class EchoBinding(Binding[EchoConfig]):
    name: ClassVar[str] = "echo"
    description: ClassVar[str] = "Reverses the user's message (example plugin)."

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(name="reverse")]

    async def load(self, model: str) -> None:
        return None

    async def unload(self, model: str) -> None:
        return None

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        answer = self.config.prefix + last[::-1]
        for char in answer:
            yield TextDelta(char)
        yield Usage(prompt_tokens=len(last), completion_tokens=len(answer))
        yield Finished("stop")
