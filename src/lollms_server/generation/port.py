"""The narrow port through which personality scripts reach the server.

Scripts (workflow scripts and zoo processors) generate text and media, call functions and
ask what a binding takes, and nothing else: they receive a :class:`GenerationPort`, not the
service, so the personalities package never imports the generation service.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from lollms_server.bindings.events import Event
from lollms_server.generation.requests import GenerationRequest

if TYPE_CHECKING:
    from lollms_server.functions.registry import CallResult
    from lollms_server.personalities.model import Personality

__all__ = ["GenerationPort"]


class GenerationPort(Protocol):
    """What a script may ask of the server."""

    def events(
        self, request: GenerationRequest, personality: Personality | None = None
    ) -> AsyncGenerator[Event, None]:
        """Run one generation (text or media) and yield its events."""
        ...

    async def call_function(self, name: str, arguments: Mapping[str, Any]) -> CallResult:
        """Call a server function by name."""
        ...

    def function_names(self) -> list[str]:
        """The server functions a script may call."""
        ...

    def takes_parameter(self, binding_name: str | None, name: str) -> bool:
        """Whether the binding instance accepts engine option ``name`` (True for an instance
        that is not active: the generation then reports it)."""
        ...
