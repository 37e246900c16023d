"""The binding contract: what every backend (built-in or dropped in by a user) implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeVar

from lollms_server.bindings.events import Event
from lollms_server.bindings.types import (
    BindingContext,
    BindingRequest,
    EmbeddingResult,
    ModelInfo,
)
from lollms_server.errors import ModelNotFound, UnsupportedCapability

__all__ = ["Binding", "BindingConfig", "Capabilities", "ConfigT"]


class BindingConfig(BaseModel):
    """Base of every binding's settings; a ``[bindings.<instance>]`` table validates against it.

    Mark secrets as ``pydantic.SecretStr``: they are then never shown by any endpoint.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    default_model: str | None = None
    isolation: Literal["inline", "process"] = Field(
        "inline",
        description="'process' runs each loaded model in its own host process: "
        "unloading frees its memory and a native crash fails only that model's requests.",
    )
    cancel_grace: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="With isolation = 'process': seconds a cancelled generation may take to "
        "stop (a long diffusion step, say) before its host process is killed, so that a "
        "client who leaves frees the model within a bounded time.",
    )
    keep_alive: float | None = Field(
        None,
        ge=-1,
        description="Seconds an idle model stays loaded ([resources] default); "
        "0 = unload after each request, -1 = never.",
    )
    replicas: int = Field(
        1,
        ge=1,
        le=16,
        description="On a Ray cluster: most copies of each model loaded at once. A new copy "
        "loads (on the node with the most room) when every copy is busy and one fits without "
        "evicting; requests go to the least busy copy.",
    )


ConfigT = TypeVar("ConfigT", bound=BindingConfig, covariant=True, default=BindingConfig)
"""The settings class of a binding: ``class MyBinding(Binding[MyConfig])``."""


def _concrete(arg: Any) -> Any:
    """A type argument as a class: a type variable stands for its default (or its bound)."""
    if isinstance(arg, TypeVar):
        default = getattr(arg, "__default__", None)
        return default if isinstance(default, type) else arg.__bound__
    return arg


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a binding can do beyond plain generation (checked before a request runs)."""

    streaming: bool = True
    tokenizer: bool = False
    tools: bool = False
    vision: bool = False
    embeddings: bool = False
    structured_output: bool = False


class Binding(ABC, Generic[ConfigT]):
    """A backend type. The server creates one instance per ``[bindings.<instance>]`` table.

    Subclass ``Binding[MyConfig]`` (``Config`` is then ``MyConfig``, and ``self.config`` is
    typed as one), set ``name`` (the ``type`` used in config.toml), ``modalities``
    (generation types such as ``{"ttt"}``) and ``capabilities``, and implement the abstract
    methods. Third-party exceptions must be wrapped into ``lollms_server.errors`` types.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    modalities: ClassVar[frozenset[str]] = frozenset({"ttt"})
    capabilities: ClassVar[Capabilities] = Capabilities()
    extra_parameters: ClassVar[frozenset[str] | None] = None
    """Engine options a request may carry in ``BindingRequest.extra`` (None: any; the
    server refuses the others with a 400 before the request runs)."""
    Config: ClassVar[type[BindingConfig]] = BindingConfig
    holds_models: ClassVar[bool] = True
    """Whether loaded models live in this process (False for clients of a remote service:
    openai, ollama; on a cluster those run in every API worker, not in a Ray model host)."""

    def __init__(self, config: ConfigT, context: BindingContext) -> None:
        self.config: ConfigT = config
        self.context = context

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Config" in cls.__dict__:
            return
        for base in getattr(cls, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Binding):
                configs = [
                    a
                    for a in map(_concrete, get_args(base))
                    if isinstance(a, type) and issubclass(a, BindingConfig)
                ]
                if configs:
                    cls.Config = configs[0]
                    return

    @property
    def instance_name(self) -> str:
        """The ``<instance>`` of its ``[bindings.<instance>]`` table."""
        return self.context.instance_name

    @abstractmethod
    async def list_models(self) -> list[ModelInfo]:
        """Models this instance can serve."""

    async def model_info(self, model: str) -> ModelInfo:
        """One model's description (404 naming the models there are)."""
        models = await self.list_models()
        for info in models:
            if info.name == model:
                return info
        raise ModelNotFound(model, self.instance_name, [m.name for m in models])

    @abstractmethod
    async def load(self, model: str) -> None:
        """Make ``model`` ready to generate. Must not block the event loop."""

    @abstractmethod
    async def unload(self, model: str) -> None:
        """Free what ``load`` took."""

    def memory_estimate(self, model: str) -> int | None:
        """Bytes the model needs once loaded, if known before loading."""
        return None

    def memory_used(self, model: str) -> int | None:
        """Bytes the loaded model really takes, when known (wins over the estimate)."""
        return None

    def memory_device(self, model: str) -> str:
        """Which budget the model draws on: ``"cpu"`` (system memory), ``"gpu"`` (GPU 0) or
        ``"gpu:N"``."""
        return "cpu"

    def max_concurrency(self, model: str) -> int:
        """How many requests the engine runs at once for ``model`` (batched slots)."""
        return 1

    def check_request(self, request: BindingRequest) -> None:  # noqa: B027 - optional hook
        """Reject what this binding cannot do, before any response starts (raise BadRequest).

        The default accepts everything; bindings with a fixed set of extra parameters
        override it so that an unsupported parameter is an error, not silently ignored.
        """

    async def embed(self, model: str, texts: list[str]) -> EmbeddingResult:
        """Vectors for ``texts`` (bindings with the ``embeddings`` capability)."""
        raise UnsupportedCapability(
            f"Binding instance '{self.instance_name}' ({self.name}) cannot embed.", param="model"
        )

    def serves(self) -> frozenset[str]:
        """The generation types this instance serves (its ``modalities``, unless its config
        narrows them, as for a remote server that has only some endpoints)."""
        return self.modalities

    def accepts_parameter(self, name: str) -> bool:
        """Whether engine option ``name`` may travel in ``BindingRequest.extra``."""
        return self.extra_parameters is None or name in self.extra_parameters

    def uses_chat_template(self, model: str) -> bool:
        """False for completion-only engines: the server then renders conversations as text
        (with a personality's user/AI prefixes) and sends ``raw_prompt``."""
        return True

    @abstractmethod
    def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        """Produce events for one request; the model is already loaded.

        Closing the iterator early (client gone) must stop the engine's work.
        """

    async def tokenize(self, model: str, text: str) -> list[int]:
        """Token ids of ``text`` (bindings with the ``tokenizer`` capability)."""
        raise UnsupportedCapability(
            f"Binding '{self.name}' has no tokenizer.", param="binding_name"
        )

    async def detokenize(self, model: str, tokens: list[int]) -> str:
        """The text of token ids (bindings with the ``tokenizer`` capability)."""
        raise UnsupportedCapability(
            f"Binding '{self.name}' has no tokenizer.", param="binding_name"
        )

    async def voices(self, model: str) -> list[str] | None:
        """The voice names a speech request may give for ``model`` (a tts binding's speakers).

        None (the default): not known here, a request's voice is passed on as it is (an
        upstream server knows its own). The OpenAI routes map OpenAI's voice names (``alloy``,
        ``nova``...) that are not in this list to the model's default voice.
        """
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release everything (called at shutdown). Default: nothing to release."""
