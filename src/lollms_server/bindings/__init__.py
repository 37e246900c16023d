"""The binding SDK: everything a binding author needs, importable from this one module.

A binding is a backend type (an engine, a remote server). Write one as::

    from collections.abc import AsyncIterator
    from typing import ClassVar

    from lollms_server.bindings import (
        Binding, BindingConfig, BindingRequest, Event, Finished, ModelInfo, TextDelta, Usage,
    )

    class EchoConfig(BindingConfig):      # the [bindings.<instance>] table, validated
        prefix: str = ""

    class EchoBinding(Binding[EchoConfig]):   # Config = EchoConfig; self.config is one
        name: ClassVar[str] = "echo"          # the `type` in config.toml

        async def list_models(self) -> list[ModelInfo]:
            return [ModelInfo(name="reverse")]

        async def load(self, model: str) -> None: ...
        async def unload(self, model: str) -> None: ...

        async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
            text = self.config.prefix + request.messages[-1].content[::-1]
            yield TextDelta(text)
            yield Usage(prompt_tokens=1, completion_tokens=1)
            yield Finished("stop")

**The contract.** Four abstract methods: ``list_models``, ``load``, ``unload`` and
``generate`` (one async iterator of events for streaming and non-streaming alike; the model
is loaded when it is called; closing it early must stop the engine's work). Class
attributes: ``name``, ``modalities`` (generation types: ttt, tti, ttv, ttm, tts, stt, embed),
``capabilities`` (:class:`Capabilities`) and ``extra_parameters`` (engine options a request
may carry in ``BindingRequest.extra``; anything else is refused before the request runs).
Optional hooks, each with a safe default: ``memory_estimate`` / ``memory_used`` /
``memory_device`` (for the scheduler's budgets), ``max_concurrency`` (batched slots),
``check_request`` (refuse what cannot work, before a response starts), ``serves`` (narrow
``modalities`` from the config), ``uses_chat_template`` (False for completion-only engines),
``tokenize`` / ``detokenize``, ``embed``, ``close``.

**Rules.** Never block the event loop: run blocking engine calls with :func:`run_stoppable`
or :func:`stream_thread`. Raise the errors exported here (``BadRequest`` for a bad request,
``BindingUnavailable`` for an engine or server that cannot answer, ``GenerationFailed``
when it broke mid-way, ``ModelNotFound``, ``UnsupportedCapability``); any other exception is
wrapped into a 502 by the server. Mark secrets in the config as ``pydantic.SecretStr``. When
a loaded model is lost (an engine process died), call ``self.context.model_lost(model,
reason)``.

**Where bindings come from.** Installed packages (entry-point group
``lollms_server.bindings``) and the ``[paths] bindings`` folder of config.toml (see
``zoos/bindings/echo_binding.py``). ``isolation = "process"`` runs any binding's models in
host processes without changing the binding. ``lollms_server.bindings.testing`` ships
``ScriptedBinding``, a deterministic binding for tests.
"""

from lollms_server.bindings.base import Binding, BindingConfig, Capabilities, ConfigT
from lollms_server.bindings.events import (
    Event,
    Finished,
    MediaOutput,
    Step,
    TextDelta,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.media import (
    MediaOptions,
    encode_image,
    encode_mp4,
    encode_wav,
    input_image,
    media_options,
    prompt_of,
)
from lollms_server.bindings.threads import Emit, run_stoppable, stream_thread
from lollms_server.bindings.types import (
    BindingContext,
    BindingRequest,
    EmbeddingResult,
    MediaPart,
    Message,
    ModelInfo,
    SamplingParams,
)
from lollms_server.errors import (
    BadRequest,
    BindingUnavailable,
    GenerationFailed,
    ModelNotFound,
    UnsupportedCapability,
)

__all__ = [
    "BadRequest",
    "Binding",
    "BindingConfig",
    "BindingContext",
    "BindingRequest",
    "BindingUnavailable",
    "Capabilities",
    "ConfigT",
    "EmbeddingResult",
    "Emit",
    "Event",
    "Finished",
    "GenerationFailed",
    "MediaOptions",
    "MediaOutput",
    "MediaPart",
    "Message",
    "ModelInfo",
    "ModelNotFound",
    "SamplingParams",
    "Step",
    "TextDelta",
    "ThoughtsDelta",
    "ToolCall",
    "UnsupportedCapability",
    "Usage",
    "encode_image",
    "encode_mp4",
    "encode_wav",
    "input_image",
    "media_options",
    "prompt_of",
    "run_stoppable",
    "stream_thread",
]
