"""One behaviour suite, run against every binding that can run here."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import pytest
import pytest_asyncio

from lollms_server.app import create_app
from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import Event, Finished, TextDelta, Usage
from lollms_server.bindings.hf_embeddings import HFEmbeddingsBinding, HFEmbeddingsConfig
from lollms_server.bindings.hf_transformers import TransformersBinding, TransformersConfig
from lollms_server.bindings.hosted import HostedBinding, hosted
from lollms_server.bindings.llamacpp import LlamaCppBinding, LlamaCppConfig
from lollms_server.bindings.ollama import OllamaBinding, OllamaConfig
from lollms_server.bindings.openai import OpenAIBinding, OpenAIConfig
from lollms_server.bindings.testing import ScriptedBinding, ScriptedConfig
from lollms_server.bindings.types import BindingContext, BindingRequest, Message, SamplingParams
from lollms_server.config import load_config
from lollms_server.errors import ModelNotFound, UnsupportedCapability
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread
from tests.llama_support import MODEL_NAME, needs_llama
from tests.transformers_support import build_tiny_encoder, build_tiny_model, needs_transformers

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROMPT = "List the numbers from one to thirty, separated by spaces, in words please."


def _scripted() -> tuple[Binding, str]:
    context = BindingContext("scripted", Path("/nonexistent"))
    return ScriptedBinding(ScriptedConfig(), context), "scripted-model"


def _llamacpp() -> tuple[Binding, str]:
    config = LlamaCppConfig(n_ctx=2048, n_parallel=2, system_prompt="You are helpful.")
    return LlamaCppBinding(config, BindingContext("llm", Path("/nonexistent"))), MODEL_NAME


@contextmanager
def _openai_to_lollms() -> Iterator[tuple[Binding, str]]:
    """The openai binding in front of a real lollms_server (itself on the scripted binding)."""
    folder = Path(tempfile.mkdtemp())
    (folder / "config.toml").write_text(BASE_CONFIG)
    app = create_app(load_config(folder / "config.toml"))
    with serve_in_thread(app) as url:
        config = OpenAIConfig(base_url=url + "/v1", api_key=API_KEY, context_size=4096)
        yield OpenAIBinding(config, BindingContext("up", folder)), "fake/scripted-model"


@contextmanager
def _transformers() -> Iterator[tuple[Binding, str]]:
    folder = Path(tempfile.mkdtemp())
    build_tiny_model(folder / "tiny-llama")
    config = TransformersConfig()
    yield TransformersBinding(config, BindingContext("hf", folder)), "tiny-llama"


@contextmanager
def _ollama_to_lollms() -> Iterator[tuple[Binding, str]]:
    """The ollama binding in front of lollms_server's Ollama-compatible /api (a real peer)."""
    folder = Path(tempfile.mkdtemp())
    (folder / "config.toml").write_text(BASE_CONFIG)
    app = create_app(load_config(folder / "config.toml"))
    with serve_in_thread(app) as url:
        config = OllamaConfig(host=url, api_key=API_KEY)
        yield OllamaBinding(config, BindingContext("oll", folder)), "fake/scripted-model"


@contextmanager
def _openai_to_llamacpp_server() -> Iterator[tuple[Binding, str]]:
    """The openai binding in front of llama.cpp's own HTTP server (xllamacpp), SmolLM2."""
    import secrets

    import xllamacpp

    from tests.llama_support import EMBEDDED

    key = secrets.token_urlsafe(16)
    params = xllamacpp.CommonParams()
    params.model.path = str(EMBEDDED)
    params.model_alias = {"smol"}
    params.n_ctx, params.n_parallel, params.verbosity = 2048, 2, 0
    params.api_keys = [key]
    server = xllamacpp.Server(params)
    config = OpenAIConfig(base_url=server.listening_address + "/v1", api_key=key, context_size=2048)
    try:
        yield OpenAIBinding(config, BindingContext("llama-server", Path("/none"))), "smol"
    finally:
        del server


@contextmanager
def _hosted(factory: Factory) -> Iterator[tuple[Binding, str]]:
    """``hosted(X)``: the same binding with its model in a host process (isolation)."""
    made = factory()
    with made if isinstance(made, AbstractContextManager) else nullcontext(made) as pair:
        binding, model = pair
        yield hosted(type(binding))(binding.config, binding.context), model


Factory = Callable[[], "tuple[Binding, str] | AbstractContextManager[tuple[Binding, str]]"]
FACTORIES = [
    pytest.param(_scripted, id="scripted"),
    pytest.param(_llamacpp, id="llamacpp", marks=needs_llama),
    pytest.param(_openai_to_lollms, id="openai-lollms_server"),
    pytest.param(_ollama_to_lollms, id="ollama-lollms_server"),
    pytest.param(_transformers, id="transformers", marks=needs_transformers),
    pytest.param(_openai_to_llamacpp_server, id="openai-llamacpp_server", marks=needs_llama),
]
HOSTED = [
    pytest.param(functools.partial(_hosted, _scripted), id="hosted-scripted"),
    pytest.param(functools.partial(_hosted, _llamacpp), id="hosted-llamacpp", marks=needs_llama),
    pytest.param(functools.partial(_hosted, _openai_to_lollms), id="hosted-openai-lollms_server"),
    pytest.param(
        functools.partial(_hosted, _transformers),
        id="hosted-transformers",
        marks=needs_transformers,
    ),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=FACTORIES + HOSTED)
async def loaded(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Binding, str]]:
    made = request.param()
    with made if isinstance(made, AbstractContextManager) else nullcontext(made) as pair:
        binding, model = pair
        await binding.load(model)
        yield binding, model
        await binding.unload(model)
        await binding.close()


def _request(model: str, **params: object) -> BindingRequest:
    return BindingRequest(
        model=model,
        messages=(Message("user", PROMPT),),
        params=SamplingParams(temperature=0.0, top_k=1, seed=1, **params),  # type: ignore[arg-type]
    )


async def _events(binding: Binding, request: BindingRequest) -> list[Event]:
    return [event async for event in binding.generate(request)]


def _text(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_lists_its_model(loaded: tuple[Binding, str]) -> None:
    binding, model = loaded
    names = [m.name for m in await binding.list_models()]
    assert model in names
    info = await binding.model_info(model)
    assert info.context_size and info.context_size >= 2048
    with pytest.raises(ModelNotFound):
        await binding.model_info("no-such-model")


async def test_generate_streams_text_then_usage_then_finished(loaded) -> None:
    binding, model = loaded
    events = await _events(binding, _request(model, max_tokens=12))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3  # really streamed, not one blob
    assert _text(events).strip()
    assert isinstance(events[-1], Finished)
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage and usage[-1].completion_tokens >= 1


async def test_max_tokens_honoured(loaded) -> None:
    binding, model = loaded
    events = await _events(binding, _request(model, max_tokens=5))
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.completion_tokens == 5
    assert events[-1] == Finished("length", events[-1].metadata)  # type: ignore[union-attr]


async def test_stop_sequence_honoured(loaded) -> None:
    binding, model = loaded
    full = _text(await _events(binding, _request(model, max_tokens=24)))
    assert len(full) >= 12, full
    middle = len(full) // 2
    stop = full[middle : middle + 3]
    expected = full[: full.index(stop)]
    stopped = await _events(binding, _request(model, max_tokens=24, stop=(stop,)))
    assert _text(stopped) == expected
    assert stopped[-1].finish_reason == "stop"  # type: ignore[union-attr]


async def test_tokenize_roundtrip(loaded) -> None:
    binding, model = loaded
    if not binding.capabilities.tokenizer:
        with pytest.raises(UnsupportedCapability):
            await binding.tokenize(model, "Hello")
        return
    tokens = await binding.tokenize(model, "Hello world, how are you? ")
    assert len(tokens) >= 3 and all(isinstance(t, int) for t in tokens)
    assert await binding.detokenize(model, tokens) == "Hello world, how are you? "


async def test_closing_the_stream_early_leaves_binding_usable(loaded) -> None:
    binding, model = loaded
    stream = binding.generate(_request(model, max_tokens=200))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    events = await _events(binding, _request(model, max_tokens=3))
    assert isinstance(events[-1], Finished)


# -- hosted(X) answers every hook as X does ------------------------------------------------


async def test_hosted_wrapper_handles_every_hook_itself() -> None:
    """No hook of the contract is left to the base class's default in the wrapper: a hook
    added to Binding must be forwarded (to the local instance or the host) explicitly."""
    hooks = {
        name
        for name, value in vars(Binding).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    } - {"instance_name", "Config"}
    assert hooks - set(vars(HostedBinding)) == set()


def _scripted_completion_only() -> tuple[Binding, str]:
    config = ScriptedConfig(chat_template=False)
    return ScriptedBinding(config, BindingContext("raw", Path("/nonexistent"))), "scripted-model"


def _openai_images_only() -> tuple[Binding, str]:
    config = OpenAIConfig(base_url="http://127.0.0.1:9/v1", models=["m"], modalities=["tti"])
    return OpenAIBinding(config, BindingContext("img", Path("/nonexistent"))), "m"


@pytest.mark.parametrize(
    "factory",
    [
        pytest.param(_scripted_completion_only, id="scripted-completion-only"),
        pytest.param(_openai_images_only, id="openai-tti-only"),
        pytest.param(_llamacpp, id="llamacpp", marks=needs_llama),
    ],
)
async def test_hosted_answers_local_hooks_as_the_binding(
    factory: Callable[[], tuple[Binding, str]],
) -> None:
    plain, model = factory()
    wrapped = hosted(type(plain))(plain.config, plain.context)
    assert wrapped.serves() == plain.serves()
    assert wrapped.uses_chat_template(model) == plain.uses_chat_template(model)
    assert wrapped.capabilities == plain.capabilities and wrapped.modalities == plain.modalities
    assert wrapped.memory_estimate(model) == plain.memory_estimate(model)
    assert wrapped.memory_device(model) == plain.memory_device(model)
    assert wrapped.max_concurrency(model) == plain.max_concurrency(model)
    for name in ("json_schema", "voice", "n_probs", "grammar", "no_such_option"):
        assert wrapped.accepts_parameter(name) == plain.accepts_parameter(name), name


@pytest.mark.parametrize("mark", [pytest.param(0, marks=needs_transformers)])
async def test_hosted_embeddings_match_inline(tmp_path: Path, mark: int) -> None:
    encoder = build_tiny_encoder(tmp_path / "encoder")
    config = HFEmbeddingsConfig(models={"tiny": str(encoder)}, max_length=16)
    context = BindingContext("emb", tmp_path)
    plain, wrapped = (
        HFEmbeddingsBinding(config, context),
        hosted(HFEmbeddingsBinding)(config, context),
    )
    texts = ["The capital of France is Paris.", "Write a story about the sea."]
    try:
        await plain.load("tiny")
        await wrapped.load("tiny")
        inline, remote = await plain.embed("tiny", texts), await wrapped.embed("tiny", texts)
    finally:
        await plain.close()
        await wrapped.close()
    assert remote.tokens == inline.tokens and remote.truncated == inline.truncated
    for a, b in zip(inline.vectors, remote.vectors, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5


async def test_the_host_wire_carries_every_field_of_a_request() -> None:
    """A field added to BindingRequest and forgotten by the wire fails here."""
    from dataclasses import fields

    from lollms_server.bindings.hosted import wire
    from lollms_server.bindings.types import MediaOptions, MediaPart

    request = BindingRequest(
        model="m",
        generation_type="tti",
        messages=(
            Message("user", "hi", (MediaPart("image", b"\x89PNG", "image/png"),)),
            Message("assistant", "", (), ({"id": "c1", "type": "function"},), None),
            Message("tool", "42", (), (), "c1"),
        ),
        raw_prompt="raw",
        params=SamplingParams(0.5, 0.9, 40, 1.1, 12, 7, ("x",)),
        extra={"min_p": 0.1},
        keep_alive=3.0,
        tools=({"type": "function", "function": {"name": "f"}},),
        tool_choice="auto",
        media=MediaOptions(width=64, height=32, steps=3, voice="joe"),
        json_schema={"type": "object"},
        stream=False,
    )
    assert all(getattr(request, f.name) != f.default for f in fields(request) if f.default)
    back = wire.request_from_wire(wire.decode(wire.encode(wire.request_to_wire(request))))
    assert back == request
    assert back.media.model_fields_set == request.media.model_fields_set
