"""An example drop-in binding: copy this file into the folder named by [paths] bindings.

It answers with the user's last message reversed, one character per chunk. A real binding
would call its engine in ``load`` and ``generate`` (keeping blocking work off the event loop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from lollms_server.bindings.base import Binding, BindingConfig
from lollms_server.bindings.events import Event, Finished, TextDelta, Usage
from lollms_server.bindings.types import BindingRequest, ModelInfo


class EchoConfig(BindingConfig):
    prefix: str = ""


class EchoBinding(Binding):
    name: ClassVar[str] = "echo"
    description: ClassVar[str] = "Reverses the user's message (example plugin)."
    Config: ClassVar[type[BindingConfig]] = EchoConfig

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(name="reverse")]

    async def load(self, model: str) -> None:
        return None

    async def unload(self, model: str) -> None:
        return None

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        config: EchoConfig = self.config  # type: ignore[assignment]
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        answer = config.prefix + last[::-1]
        for char in answer:
            yield TextDelta(char)
        yield Usage(prompt_tokens=len(last), completion_tokens=len(answer))
        yield Finished("stop")
