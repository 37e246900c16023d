"""The narrow port through which personality scripts reach the server.

Scripts (workflow scripts and zoo processors) generate text and media, call functions and
ask what a binding takes, and nothing else: they receive a :class:`GenerationPort`, not the
service, so the personalities package never imports the generation service.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lollms_server.bindings.events import Event, MediaOutput
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

    async def context_size(self, binding_name: str | None, model_name: str | None) -> int | None:
        """The model's context size in tokens (``[defaults]`` pick what is not named); None
        when the binding does not know it."""
        ...

    async def tokenize(
        self, binding_name: str | None, model_name: str | None, text: str
    ) -> list[int] | None:
        """Token ids of ``text`` with the model's tokenizer; None when the binding has none."""
        ...

    async def detokenize(
        self, binding_name: str | None, model_name: str | None, tokens: list[int]
    ) -> str | None:
        """The text of ``tokens`` (from :meth:`tokenize`); None when the binding has no
        tokenizer."""
        ...

    async def generate_media(self, request: GenerationRequest) -> list[MediaOutput]:
        """Run one image, video, music or speech generation (``request.generation_type``;
        ``[defaults]`` pick the binding and model the request does not name) and return the
        files it made."""
        ...

    def data_folder(self) -> Path:
        """The folder under which personality scripts keep their files (``[personalities]
        data_folder``, resolved)."""
        ...
