"""Resolution: which binding instance, model and personality serve a request, decided once.

The order is fixed: what the request names, then the personality's recommendation, then the
``[defaults]`` of config.toml, then the binding's own default model, then its first listed
model. :meth:`Resolver.target` returns the whole answer as one :class:`Target` that the run,
the tool loop and a script then share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lollms_server.bindings.base import Binding
from lollms_server.bindings.manager import BindingManager
from lollms_server.config import Settings
from lollms_server.errors import (
    AmbiguousName,
    BadRequest,
    LollmsError,
    NotFound,
    UnsupportedGenerationType,
)
from lollms_server.generation.requests import GenerationRequest
from lollms_server.personalities.model import Personality
from lollms_server.personalities.registry import PersonalityRegistry

__all__ = ["WELL_KNOWN", "Resolver", "Target", "well_known_type"]

WELL_KNOWN: dict[str, frozenset[str]] = {
    "embed": frozenset(
        {
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
            "nomic-embed-text",
            "mxbai-embed-large",
            "all-minilm",
            "snowflake-arctic-embed",
            "bge-m3",
        }
    ),
    "stt": frozenset({"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"}),
    "tts": frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts"}),
    "tti": frozenset({"dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini"}),
}
"""OpenAI's and Ollama's default model names, per generation type: on a route of that type,
one that no instance serves (and no ``[aliases]`` entry renames) reaches the configured
default of the type."""


def well_known_type(name: str) -> str | None:
    """The generation type of a well-known model name (an Ollama ``:latest`` tag ignored)."""
    bare = name.removesuffix(":latest")
    return next((kind for kind, names in WELL_KNOWN.items() if bare in names), None)


@dataclass(frozen=True)
class Target:
    """Where a request runs: the binding instance, the model (known to exist) and the
    personality (localized), if any."""

    binding: Binding
    model: str
    personality: Personality | None = None


class Resolver:
    """Turns the names in a request into a :class:`Target`."""

    def __init__(
        self, settings: Settings, bindings: BindingManager, personalities: PersonalityRegistry
    ) -> None:
        self.settings = settings
        self.bindings = bindings
        self.personalities = personalities

    def personality(self, request: GenerationRequest) -> Personality | None:
        """The request's personality in the language it asks for (None when none named)."""
        if not request.personality:
            if request.language:
                raise BadRequest(
                    "'language' selects a personality's translation; name a personality too.",
                    param="language",
                )
            return None
        found = self.personalities.get(request.personality)
        return self.personalities.localized(found, request.language)

    def recommended(
        self, request: GenerationRequest, personality: Personality
    ) -> GenerationRequest:
        """A personality's recommended binding (when it names an active instance) is used
        when the request names neither a binding nor a model (a model may live elsewhere)."""
        binding = personality.recommended_binding
        if (
            request.binding_name
            or request.model_name
            or not binding
            or binding not in self.bindings.active_names()
        ):
            return request
        return replace(request, binding_name=binding, model_name=personality.recommended_model)

    async def target(
        self, request: GenerationRequest, personality: Personality | None = None
    ) -> Target:
        """The request's binding and model, checked to exist (404 naming what does)."""
        binding, model = await self.resolve(
            request.generation_type, request.binding_name, request.model_name
        )
        await binding.model_info(model)
        return Target(binding, model, personality)

    async def resolve(
        self, generation_type: str, binding_name: str | None, model_name: str | None
    ) -> tuple[Binding, str]:
        """Pick the binding instance and model: request, then config defaults, then binding."""
        default_binding, default_model = self.settings.defaults.for_type(generation_type)
        name = binding_name or default_binding
        if not name:
            raise BadRequest(
                f"No binding_name given and no default for '{generation_type}' "
                f"([defaults] {generation_type}_binding). Active instances: "
                f"{', '.join(self.bindings.active_names()) or 'none'}.",
                param="binding_name",
            )
        binding = self.bindings.get(name)
        if generation_type not in binding.serves():
            raise UnsupportedGenerationType(
                f"Binding instance '{name}' ({binding.name}) does not support "
                f"generation_type '{generation_type}'; it supports: "
                f"{', '.join(sorted(binding.serves()))}.",
                param="generation_type",
            )
        model = model_name
        if not model and name == default_binding:
            model = default_model
        model = model or binding.config.default_model
        if not model:
            listed = await binding.list_models()
            if not listed:
                raise BadRequest(f"Binding instance '{name}' lists no models.", param="model_name")
            model = listed[0].name
        return binding, model

    async def find_model(self, name: str, generation_type: str = "ttt") -> tuple[str, str]:
        """``(instance, model)`` for a client's model id.

        Accepted: ``instance/model``; an instance name (its default model); ``default``;
        a bare model name served by exactly one instance (409 when several serve it); or,
        served by none, a well-known name of ``generation_type`` (``whisper-1`` on
        transcriptions...): the type's default.
        """
        instances = self.bindings.active_names()
        name, _ = self.settings.alias(name)  # [aliases] first: it may rename a well-known name
        head, sep, tail = name.partition("/")
        if sep and head in instances:
            return head, tail
        if name in instances:
            _, model = await self.resolve(generation_type, name, None)
            return name, model
        if name in ("", "default"):
            binding, model = await self.resolve(generation_type, None, None)
            return binding.instance_name, model
        holders = await self._holders(name, generation_type)
        if len(holders) == 1:
            return holders[0], name
        if not holders and well_known_type(name) == generation_type:
            return await self._type_default(name, generation_type)
        if holders:
            raise AmbiguousName(
                f"Model '{name}' is served by several binding instances; name one of: "
                f"{', '.join(f'{h}/{name}' for h in holders)}.",
                param="model",
            )
        raise NotFound(
            f"Model '{name}' not found. Use 'instance/model' ids as listed by GET /v1/models.",
            param="model",
        )

    async def _type_default(self, name: str, generation_type: str) -> tuple[str, str]:
        """The configured default of ``generation_type``, for the well-known ``name``."""
        if not self.settings.defaults.for_type(generation_type)[0]:
            raise NotFound(
                f"'{name}' stands for the default '{generation_type}' model, and none is "
                f"configured: set [defaults] {generation_type}_binding, or map '{name}' to "
                "'instance/model' in [aliases].",
                param="model",
            )
        binding, model = await self.resolve(generation_type, None, None)
        return binding.instance_name, model

    async def _holders(self, name: str, generation_type: str) -> list[str]:
        holders: list[str] = []
        for instance in self.bindings.active_names():
            binding = self.bindings.get(instance)
            if generation_type not in binding.serves():
                continue
            try:
                models = await binding.list_models()
            except LollmsError:
                continue
            if any(m.name == name for m in models):
                holders.append(instance)
        return holders
