"""OpenAI's and Ollama's well-known model names reach the configured default of their
generation type (on that type's routes only, unless [aliases] says otherwise); OpenAI voice
names reach the voice's default; speech in mp3/opus/aac/flac; embeddings of token arrays.
Real parts: the openai SDK and the ollama client against a live server, a tiny BERT encoder,
the piper joe voice and a tiny Whisper."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import openai
import pytest
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, AUTH, BASE_CONFIG
from tests.diffusers_support import needs_piper
from tests.live import serve_in_thread
from tests.transformers_support import build_tiny_encoder, build_tiny_whisper, needs_transformers

pytestmark = [*needs_transformers, *needs_piper]
DEFAULTS = """
embed_binding = "emb"
embed_model = "tiny"
tts_binding = "voice"
stt_binding = "stt"
"""


NO_TOKENIZER_PLUGIN = '''
"""An embedding binding without a tokenizer (as a remote embedding service may be)."""
from typing import ClassVar

from lollms_server.bindings import Binding, BindingConfig, Capabilities, ModelInfo
from lollms_server.bindings.types import EmbeddingResult


class LengthEmbedder(Binding[BindingConfig]):
    name: ClassVar[str] = "length_embedder"
    modalities: ClassVar[frozenset[str]] = frozenset({"embed"})
    capabilities: ClassVar[Capabilities] = Capabilities(streaming=False, embeddings=True)

    async def list_models(self):
        return [ModelInfo(name="m", modalities=["embed"])]

    async def load(self, model):
        return None

    async def unload(self, model):
        return None

    async def generate(self, request):
        raise NotImplementedError
        yield

    async def embed(self, model, texts):
        return EmbeddingResult([[float(len(t))] for t in texts], 0, 0)
'''


def _serve(root: Path, config: str) -> Iterator[tuple[FastAPI, str]]:
    path = root / "config.toml"
    path.write_text(config)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, encoder: Path) -> Iterator[tuple[FastAPI, str]]:
    root = tmp_path_factory.mktemp("defaults")
    whisper = build_tiny_whisper(root / "whisper")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "length_embedder.py").write_text(NO_TOKENIZER_PLUGIN)
    config = BASE_CONFIG.replace('ttt_binding = "fake"', 'ttt_binding = "fake"' + DEFAULTS)
    config = config.replace("[defaults]", f'[paths]\nbindings = "{plugins}"\n\n[defaults]')
    config += f"""
[bindings.emb]
type = "hf_embeddings"
models = {{ tiny = "{encoder}" }}
max_length = 16

[bindings.voice]
type = "piper"

[bindings.stt]
type = "asr"
models = {{ tiny = "{whisper}" }}
max_audio_s = 60

[bindings.lengths]
type = "length_embedder"
"""
    yield from _serve(root, config)


@pytest.fixture
def sdk(live: tuple[FastAPI, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=live[1] + "/v1", api_key=API_KEY, max_retries=0)


def _vector(client: openai.OpenAI, model: str, text: str | list[int]) -> list[float]:
    return client.embeddings.create(model=model, input=text).data[0].embedding


@pytest.mark.parametrize(
    "name", ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]
)
def test_openai_embedding_names_reach_the_default(sdk: openai.OpenAI, name: str) -> None:
    result = sdk.embeddings.create(model=name, input=["Paris is in France.", "The sea."])
    assert result.model == "emb/tiny" and len(result.data) == 2
    assert result.data[0].embedding == pytest.approx(
        _vector(sdk, "emb/tiny", "Paris is in France."), abs=1e-6
    )


def test_ollama_embedding_names_reach_the_default(live: tuple[FastAPI, str]) -> None:
    client = ollama.Client(host=live[1], headers=AUTH)
    for name in ("nomic-embed-text", "nomic-embed-text:latest"):
        result = client.embed(model=name, input="The sea.")
        assert result.model == "emb/tiny" and len(result.embeddings[0]) == 32
        shown = client.show(name)  # its model card: the default embedding model's
        assert shown.capabilities == ["embedding"]
        assert (shown.modelinfo or {})["context_length"] == 16


def test_well_known_names_only_on_their_own_routes(sdk: openai.OpenAI) -> None:
    for name in ("text-embedding-3-small", "whisper-1", "tts-1"):
        with pytest.raises(openai.NotFoundError) as info:
            sdk.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])
        assert info.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="whisper-1", input="x")


def test_a_type_without_default_names_the_setting(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match=r"\[defaults\] tti_binding") as info:
        sdk.images.generate(model="dall-e-3", prompt="a cat")
    assert info.value.body["param"] == "model"  # type: ignore[index]


def test_token_arrays_are_decoded_with_the_model_tokenizer(
    sdk: openai.OpenAI, encoder: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(encoder))
    texts = ["paris is in france.", "the sea."]
    ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    as_text = sdk.embeddings.create(model="text-embedding-3-small", input=texts)
    as_ids = sdk.embeddings.create(model="text-embedding-3-small", input=ids)
    one = _vector(sdk, "emb/tiny", ids[1])  # one array of ids: one input
    for got, want in zip(as_ids.data, as_text.data, strict=True):
        assert got.embedding == pytest.approx(want.embedding, abs=1e-6)
    assert one == pytest.approx(as_text.data[1].embedding, abs=1e-6)
    assert as_ids.usage.prompt_tokens == as_text.usage.prompt_tokens
    with pytest.raises(openai.BadRequestError, match="outside the vocabulary") as info:
        sdk.embeddings.create(model="emb/tiny", input=[[1, 10**6]])
    assert info.value.body["param"] == "input"  # type: ignore[index]


def test_token_arrays_without_a_tokenizer_are_refused_by_name(sdk: openai.OpenAI) -> None:
    assert _vector(sdk, "lengths/m", "four") == [4.0]  # texts are fine there
    with pytest.raises(openai.BadRequestError, match="no tokenizer") as info:
        sdk.embeddings.create(model="lengths/m", input=[[1, 2, 3]])
    assert info.value.body["param"] == "input"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="does not support generation_type"):
        sdk.embeddings.create(model="fake/scripted-model", input=[1, 2])  # has a tokenizer


def _decoded(data: bytes) -> tuple[str, int, float]:
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        rate = stream.codec_context.sample_rate
        return container.format.name, rate, samples / rate


@pytest.mark.parametrize(
    ("fmt", "container", "mime"),
    [
        ("mp3", "mp3", "audio/mpeg"),
        ("opus", "ogg", "audio/ogg"),
        ("aac", "aac", "audio/aac"),
        ("flac", "flac", "audio/flac"),
    ],
)
def test_speech_formats_with_openai_names(
    sdk: openai.OpenAI, fmt: str, container: str, mime: str
) -> None:
    speech = sdk.audio.speech.create(
        model="tts-1", voice="alloy", input="Good morning.", response_format=fmt
    )
    assert speech.response.headers["content-type"] == mime
    name, _, seconds = _decoded(speech.content)
    assert name == container and 0.3 < seconds < 5


def test_openai_voices_reach_the_default_voice(sdk: openai.OpenAI) -> None:
    # piper's joe voice has no speaker named so: the voice's own (without the mapping, the
    # binding refuses the unknown voice)
    for voice in ("nova", "verse", "shimmer"):
        wav = sdk.audio.speech.create(
            model="tts-1-hd", voice=voice, input="Hi.", response_format="wav"
        )
        assert wav.content[:4] == b"RIFF" and wav.response.headers["content-type"] == "audio/wav"
    with pytest.raises(openai.BadRequestError, match="Voice 'nobody' not found") as info:
        sdk.audio.speech.create(model="gpt-4o-mini-tts", voice="nobody", input="Hi.")  # type: ignore[arg-type]
    assert info.value.body["param"] == "voice"  # type: ignore[index]


def test_compressed_speech_without_pyav_is_refused_by_name(
    sdk: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    with pytest.raises(openai.APIStatusError, match="needs PyAV") as info:
        sdk.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", response_format="mp3")
    assert info.value.status_code == 501
    assert info.value.body["param"] == "response_format"  # type: ignore[index]


def test_transcription_names_reach_the_default(
    live: tuple[FastAPI, str], sdk: openai.OpenAI
) -> None:
    speech = sdk.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello there.", response_format="wav"
    )
    for name in ("whisper-1", "gpt-4o-transcribe"):
        result = sdk.audio.transcriptions.create(
            model=name, file=("a.wav", speech.content), response_format="verbose_json"
        )
        assert isinstance(result.text, str)
        assert result.model_extra and result.model_extra["model"] == "stt/tiny"


def test_aliases_win_over_well_known_names(tmp_path: Path, encoder: Path) -> None:
    defaults = 'ttt_binding = "fake"\nembed_binding = "emb"'
    config = BASE_CONFIG.replace('ttt_binding = "fake"', defaults)
    config += f"""
[aliases]
"text-embedding-3-small" = "fake/scripted-model"

[bindings.emb]
type = "hf_embeddings"
models = {{ tiny = "{encoder}" }}
"""
    for _, url in _serve(tmp_path, config):
        client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="does not support generation_type"):
            client.embeddings.create(model="text-embedding-3-small", input="x")
        assert client.embeddings.create(model="text-embedding-3-large", input="x").model == (
            "emb/tiny"
        )


def test_lollms_client_with_its_defaults(live: tuple[FastAPI, str], tmp_path: Path) -> None:
    """lollms-client's lollms binding asks for text-embedding-3-small, tts-1-less mp3 speech
    and whisper-1: each reaches the configured default."""
    import av
    from lollms_client import LollmsClient

    client = LollmsClient(
        llm_binding_name="lollms",
        llm_binding_config={
            "host_address": live[1],
            "model_name": "fake/scripted-model",
            "service_key": API_KEY,
        },
    )
    binding = client.llm
    assert binding is not None
    vectors = binding.embed(["first text", "second"])
    assert len(vectors) == 2 and len(vectors[0]) == 32  # not [] (its silent failure)
    mp3 = binding.tts_generate("Hello from the lollms client.")
    with av.open(io.BytesIO(mp3)) as container:
        assert container.format.name == "mp3"
    wav = tmp_path / "hello.wav"
    wav.write_bytes(binding.tts_generate("Hello there.", response_format="wav"))
    assert isinstance(binding.transcribe_audio(wav), str)
