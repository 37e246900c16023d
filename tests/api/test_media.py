"""Images, video, music and speech through every API, with tiny pipelines built from configs
(diffusers SD and Wan, MusicGen) and the real piper joe voice."""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, AUTH, BASE_CONFIG
from tests.diffusers_support import (
    build_tiny_musicgen,
    build_tiny_sd,
    build_tiny_wan,
    needs_diffusers,
    needs_piper,
)
from tests.live import serve_in_thread
from tests.transformers_support import build_tiny_whisper

pytestmark = [*needs_diffusers, *needs_piper]
module_loop = pytest.mark.asyncio(loop_scope="module")  # the async tests share the module's app


@pytest.fixture(scope="module")
def media_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    root = tmp_path_factory.mktemp("media")
    sd, wan, music = build_tiny_sd(root), build_tiny_wan(root), build_tiny_musicgen(root)
    whisper = build_tiny_whisper(root / "whisper")
    path = root / "config.toml"
    path.write_text(
        BASE_CONFIG.replace(
            '[defaults]\nttt_binding = "fake"\n',
            f"""
[defaults]
ttt_binding = "fake"
tti_binding = "media"
tti_model = "sd"
ttv_binding = "media"
ttv_model = "wan"
ttm_binding = "music"
tts_binding = "voice"
stt_binding = "stt"

[bindings.media]
type = "diffusers"
models = {{ sd = "{sd}", wan = "{wan}" }}

[bindings.music]
type = "musicgen"
models = {{ tiny = "{music}" }}

[bindings.voice]
type = "piper"

[bindings.stt]
type = "asr"
models = {{ tiny = "{whisper}" }}
max_audio_s = 60
""",
        )
    )
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


@pytest_asyncio.fixture(loop_scope="module")
async def client(media_app: tuple[FastAPI, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=media_app[1], headers=AUTH, timeout=120) as c:
        yield c


def _png(data: str) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(data)))
    assert image.format == "PNG"
    return image


def _wav(data: bytes) -> tuple[int, float]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnframes() / w.getframerate()


async def _generate(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/generate", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@module_loop
async def test_text_to_image(client: httpx.AsyncClient) -> None:
    params = {"width": 64, "height": 48, "steps": 2, "n": 2, "seed": 7}
    body = await _generate(client, prompt="a cat", generation_type="tti", parameters=params)
    images = body["output"]
    assert [o["type"] for o in images] == ["image", "image"]
    assert all(_png(o["data"]).size == (64, 48) for o in images)
    assert images[0]["metadata"]["seed"] == 7 and images[0]["mime_type"] == "image/png"
    again = await _generate(client, prompt="a cat", generation_type="tti", parameters=params)
    assert again["output"][0]["data"] == images[0]["data"]  # the seed makes it reproducible
    jpeg = await _generate(
        client,
        prompt="a cat",
        generation_type="tti",
        parameters={"width": 64, "height": 64, "steps": 1, "format": "jpeg"},
    )
    assert base64.b64decode(jpeg["output"][0]["data"])[:3] == b"\xff\xd8\xff"


@module_loop
async def test_image_to_image_and_progress_stream(client: httpx.AsyncClient) -> None:
    source = (
        await _generate(
            client,
            prompt="a cat",
            generation_type="tti",
            parameters={"width": 64, "height": 64, "steps": 1},
        )
    )["output"][0]["data"]
    async with client.stream(
        "POST",
        "/api/v1/generate",
        json={
            "generation_type": "tti",
            "stream": True,
            "input_data": [
                {"type": "text", "data": "a dog"},
                {"type": "image", "data": source, "mime_type": "image/png"},
            ],
            "parameters": {"steps": 4, "strength": 0.5},
        },
    ) as response:
        events = [
            json.loads(line[6:])
            async for line in response.aiter_lines()
            if line.startswith("data: ")
        ]
    progress = [e for e in events if e["type"] == "step"]
    assert progress and progress[0]["kind"] == "step_progress"
    assert [e["text"] for e in progress] == ["step 1 of 2", "step 2 of 2"]  # 4 * strength
    media = next(e for e in events if e["type"] == "media")
    assert media["kind"] == "image" and media["metadata"]["image_to_image"] is True
    assert _png(media["data"]).size == (64, 64)
    assert events[-1]["type"] == "final" and events[-1]["output"][0]["type"] == "image"


@module_loop
async def test_text_to_video_is_an_mp4(client: httpx.AsyncClient) -> None:
    import av

    body = await _generate(
        client,
        prompt="waves on rocks",
        generation_type="ttv",
        parameters={"width": 32, "height": 48, "num_frames": 9, "fps": 8, "steps": 2, "seed": 3},
    )
    video = body["output"][0]
    assert video["type"] == "video" and video["mime_type"] == "video/mp4"
    with av.open(io.BytesIO(base64.b64decode(video["data"]))) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert (stream.codec_context.name, float(stream.average_rate)) == ("h264", 8.0)
    assert len(frames) == 9 and (frames[0].width, frames[0].height) == (32, 48)
    assert video["metadata"] == {
        "seed": 3,
        "index": 0,
        "frames": 9,
        "fps": 8,
        "width": 32,
        "height": 48,
    }


@module_loop
async def test_text_to_music_is_a_wav(client: httpx.AsyncClient) -> None:
    body = await _generate(
        client, prompt="calm piano", generation_type="ttm", parameters={"duration": 1.5, "seed": 1}
    )
    audio = body["output"][0]
    assert audio["mime_type"] == "audio/wav"
    assert _wav(base64.b64decode(audio["data"])) == (16000, 1.5)


@module_loop
async def test_speech_with_the_joe_voice(client: httpx.AsyncClient) -> None:
    text = "Hello from lollms server. This is a test of the joe voice."
    # No model: [defaults] tts (lollms_client's tts_generate sends none).
    unnamed = await client.post("/v1/audio/speech", json={"input": "Hi.", "response_format": "wav"})
    assert unnamed.status_code == 200 and unnamed.content[:4] == b"RIFF"
    normal = await _generate(client, prompt=text, generation_type="tts")
    rate, seconds = _wav(base64.b64decode(normal["output"][0]["data"]))
    assert rate == 22050 and 2.0 < seconds < 8.0  # about 12 words
    fast = await _generate(client, prompt=text, generation_type="tts", parameters={"speed": 2.0})
    _, fast_seconds = _wav(base64.b64decode(fast["output"][0]["data"]))
    assert fast_seconds < 0.75 * seconds


@module_loop
async def test_openai_sdk_images_and_speech(media_app: tuple[FastAPI, str]) -> None:
    sdk = openai.AsyncOpenAI(base_url=media_app[1] + "/v1", api_key=API_KEY, max_retries=0)
    result = await sdk.images.generate(
        model="media/sd",
        prompt="a red car",
        size="64x64",
        n=2,
        response_format="b64_json",
        extra_body={"num_inference_steps": 1, "seed": 2},
    )
    assert len(result.data) == 2 and _png(result.data[0].b64_json).size == (64, 64)
    speech = await sdk.audio.speech.create(
        model="voice/en_US-joe-medium",
        voice="en_US-joe-medium",
        input="Good morning.",
        response_format="wav",
    )
    assert _wav(speech.content)[0] == 22050
    with pytest.raises(openai.BadRequestError, match="voices: en_US-joe-medium"):
        await sdk.audio.speech.create(model="voice/en_US-joe-medium", voice="nobody", input="Hi")
    with pytest.raises(openai.BadRequestError, match="b64_json"):
        await sdk.images.generate(model="media/sd", prompt="x", response_format="url")
    pcm = await sdk.audio.speech.create(
        model="voice/en_US-joe-medium", voice="en_US-joe-medium", input="Hi.", response_format="pcm"
    )
    assert pcm.response.headers["x-sample-rate"] == "22050" and len(pcm.content) % 2 == 0


def test_lollms_client_tti_binding(media_app: tuple[FastAPI, str]) -> None:
    from lollms_client.tti_bindings.lollms import LollmsTTIBinding

    binding = LollmsTTIBinding(
        host_address=media_app[1], service_key=API_KEY, model_name="media/sd"
    )
    png = binding.generate_image("a lighthouse", width=64, height=64, num_inference_steps=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    models = binding.list_models_by_type("tti")
    assert {m["model_name"] for m in models} == {"media/sd", "media/wan"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {"prompt": "x", "generation_type": "ttv", "model_name": "sd", "binding_name": "media"},
            "'sd' is a tti pipeline",
        ),
        ({"prompt": "x", "generation_type": "tti", "parameters": {"width": 65}}, "multiple of 8"),
        ({"prompt": "x", "generation_type": "tti", "parameters": {"fps": 3}}, "do not apply"),
        ({"prompt": "x", "generation_type": "tti", "parameters": {"steps": 0}}, "steps"),
        (
            {"prompt": "x", "generation_type": "tts", "parameters": {"voice": "alloy"}},
            "Voice 'alloy' not found",
        ),
        ({"prompt": "x", "generation_type": "ttm", "parameters": {"duration": 900}}, "duration"),
        (
            {"prompt": "x", "generation_type": "ttm", "parameters": {"temperature": 0}},
            "temperature must be above 0",
        ),
        ({"prompt": "  \n ", "generation_type": "tts"}, "blank"),
        (
            {"prompt": "x", "generation_type": "tti", "parameters": {"strength": 0.5}},
            "send an image",
        ),
        (
            {
                "prompt": "x",
                "generation_type": "tti",
                "parameters": {"width": 4096, "height": 4096},
            },
            "max_pixels",
        ),
        (
            {
                "input_data": [
                    {"type": "text", "data": "x"},
                    {"type": "image", "data": "bm90IGFuIGltYWdl"},
                ],
                "generation_type": "tti",
            },
            "cannot be read",
        ),
    ],
)
@module_loop
async def test_bad_media_requests_are_clear_400s(
    client: httpx.AsyncClient, body: dict[str, Any], needle: str
) -> None:
    response = await client.post("/api/v1/generate", json=body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]


@module_loop
async def test_models_list_their_modality(client: httpx.AsyncClient) -> None:
    models = (await client.get("/api/v1/list_models")).json()["models"]
    assert {m["name"]: m["modalities"] for m in models["media"]} == {"sd": ["tti"], "wan": ["ttv"]}
    assert models["music"][0]["modalities"] == ["ttm"]
    assert models["stt"][0]["modalities"] == ["stt"]
    joe = models["voice"][0]
    assert joe["name"] == "en_US-joe-medium" and joe["details"]["sample_rate"] == 22050


@module_loop
async def test_openai_binding_relays_images_and_speech(
    media_app: tuple[FastAPI, str], tmp_path: Path
) -> None:
    """An edge server whose openai binding points at another lollms_server's /v1."""
    path = tmp_path / "edge.toml"
    path.write_text(
        BASE_CONFIG
        + f"""
[bindings.upstream]
type = "openai"
base_url = "{media_app[1]}/v1"
api_key = "{API_KEY}"
modalities = ["ttt", "tti", "tts"]
default_voice = "en_US-joe-medium"
"""
    )
    edge = create_app(load_config(path))
    async with (
        edge.router.lifespan_context(edge),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=edge),
            base_url="http://edge",
            headers=AUTH,
            timeout=60,
        ) as client,
    ):
        image = await _generate(
            client,
            prompt="a boat",
            generation_type="tti",
            binding_name="upstream",
            model_name="media/sd",
            parameters={"width": 64, "height": 64, "steps": 1, "n": 2},
        )
        assert [o["mime_type"] for o in image["output"]] == ["image/png", "image/png"]
        assert _png(image["output"][1]["data"]).size == (64, 64)
        speech = await _generate(
            client,
            prompt="Relayed speech.",
            generation_type="tts",
            binding_name="upstream",
            model_name="voice/en_US-joe-medium",
        )
        assert _wav(base64.b64decode(speech["output"][0]["data"]))[0] == 22050
        refused = await client.post(
            "/api/v1/generate",
            json={"prompt": "x", "generation_type": "ttv", "binding_name": "upstream"},
        )
        assert refused.status_code == 400 and "supports: tti, tts, ttt." in refused.text


def test_readme_media_examples_run(media_app: tuple[FastAPI, str], tmp_path: Path) -> None:
    """Every example of the README's media section, run as written (curl and Python)."""
    import os
    import re
    import subprocess
    import sys

    import av
    from PIL import Image

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Images, video, music and speech", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"<!-- example -->\n```(bash|python)\n(.*?)```", section, re.S)
    assert [kind for kind, _ in blocks] == ["bash", "bash", "python", "python", "python"]
    env = {**os.environ, "LOLLMS_URL": media_app[1], "LOLLMS_KEY": API_KEY}
    for kind, code in blocks:
        command = (
            ["bash", "-euo", "pipefail", "-c", code]
            if kind == "bash"
            else [sys.executable, "-c", code]
        )
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
    for name in ("out.png", "bicycle_0.png", "bicycle_1.png"):
        assert Image.open(tmp_path / name).format == "PNG"
    for name in ("out.wav", "speech.wav", "piano.wav"):
        assert _wav((tmp_path / name).read_bytes())[1] > 0.5
    assert _wav((tmp_path / "piano.wav").read_bytes()) == (16000, 5.0)
    with av.open(str(tmp_path / "waves.mp4")) as container:
        assert len(list(container.decode(video=0))) == 17


def test_lollms_client_tts_binding_and_text2audio(media_app: tuple[FastAPI, str]) -> None:
    from lollms_client.tts_bindings.lollms import LollmsTTSBinding_Impl

    binding = LollmsTTSBinding_Impl(
        host_address=media_app[1], service_key=API_KEY, model_name="en_US-joe-medium"
    )
    assert binding.generate_audio("Hello from the lollms client.") == b""  # its protocol
    default = httpx.post(
        media_app[1] + "/text2Audio",
        json={"client_id": API_KEY, "text": "Hi.", "voice": "main_voice"},
    ).json()
    assert default["voice"] == "voice/en_US-joe-medium"  # lollms-webui's default voice
    reply = httpx.post(
        media_app[1] + "/text2Audio",
        json={
            "client_id": API_KEY,
            "text": "Hello there.",
            "voice": "en_US-joe-medium",
            "fn": "hello.wav",
        },
    ).json()
    assert reply["status"] is True and reply["voice"] == "voice/en_US-joe-medium"
    assert _wav(base64.b64decode(reply["audio"]))[0] == 22050
    assert reply["file_name"] == "hello.wav"
    refused = httpx.post(media_app[1] + "/text2Audio", json={"client_id": "wrong", "text": "x"})
    assert refused.status_code == 401
    unknown = httpx.post(
        media_app[1] + "/text2Audio", json={"client_id": API_KEY, "text": "x", "voice": "alloy"}
    )
    assert unknown.status_code == 404 and "alloy" in unknown.text


def test_weight_estimate_counts_what_from_pretrained_loads(tmp_path: Path) -> None:
    """Variants and pickled copies beside the safetensors are not counted twice."""
    import shutil

    from lollms_server.bindings.diffusers import weight_bytes

    sd = build_tiny_sd(tmp_path / "a")
    plain = weight_bytes(sd, None)
    unet = sd / "unet" / "diffusion_pytorch_model.safetensors"
    shutil.copy(unet, unet.with_name("diffusion_pytorch_model.fp16.safetensors"))
    (sd / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"0" * 1_000_000)
    (sd / "single_file.safetensors").write_bytes(unet.read_bytes())
    assert weight_bytes(sd, None) == plain
    assert weight_bytes(sd, "float16") == pytest.approx(plain / 2, rel=0.01)


def _joe_wav(url: str, text: str) -> bytes:
    reply = httpx.post(
        url + "/v1/audio/speech",
        headers=AUTH,
        json={"model": "voice/en_US-joe-medium", "input": text, "voice": "en_US-joe-medium"},
    )
    assert reply.status_code == 200
    return reply.content


def _flac(wav_bytes: bytes) -> bytes:
    import av
    import numpy as np

    with wave.open(io.BytesIO(wav_bytes)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


@module_loop
async def test_speech_to_text(media_app: tuple[FastAPI, str]) -> None:
    url = media_app[1]
    speech = _joe_wav(url, "Hello from lollms server, this is a transcription test.")
    _, seconds = _wav(speech)
    sdk = openai.AsyncOpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
    result = await sdk.audio.transcriptions.create(model="stt/tiny", file=("speech.wav", speech))
    assert isinstance(result.text, str)  # random weights: the words are nonsense
    verbose = await sdk.audio.transcriptions.create(
        model="default", file=("speech.flac", _flac(speech)), response_format="verbose_json"
    )
    # Decoded (FLAC here) and resampled to 16 kHz in the server: the duration survives.
    assert verbose.duration == pytest.approx(seconds, abs=0.05)
    text = await sdk.audio.transcriptions.create(
        model="stt/tiny", file=("a.wav", speech), response_format="text"
    )
    assert isinstance(text, str)
    with pytest.raises(openai.BadRequestError, match="cannot be decoded"):
        await sdk.audio.transcriptions.create(model="stt/tiny", file=("x.wav", b"garbage"))
    with pytest.raises(openai.BadRequestError, match="English-only"):
        await sdk.audio.transcriptions.create(
            model="stt/tiny", file=("a.wav", speech), language="fr"
        )
    with pytest.raises(openai.BadRequestError, match="srt"):
        await sdk.audio.transcriptions.create(
            model="stt/tiny", file=("a.wav", speech), response_format="srt"
        )
    native = httpx.post(
        url + "/api/v1/generate",
        headers=AUTH,
        timeout=60,
        json={
            "generation_type": "stt",
            "input_data": [
                {
                    "type": "audio",
                    "data": base64.b64encode(speech).decode(),
                    "mime_type": "audio/wav",
                }
            ],
        },
    )
    assert native.status_code == 200 and native.json()["output"][0]["type"] == "text"
    with pytest.raises(openai.BadRequestError, match="timestamp_granularities"):
        await sdk.audio.transcriptions.create(
            model="stt/tiny",
            file=("a.wav", speech),
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    english = await sdk.audio.transcriptions.create(
        model="stt/tiny", file=("a.wav", speech), language="English"
    )
    assert isinstance(english.text, str)
    from lollms_server.bindings.media import encode_wav

    long_silence = encode_wav([0.0] * (8000 * 61), 8000)  # 61 s, over max_audio_s
    with pytest.raises(openai.BadRequestError, match="more than 60 s"):
        await sdk.audio.transcriptions.create(model="stt/tiny", file=("s.wav", long_silence))
    with pytest.raises(openai.BadRequestError, match="shorter than 0.1 s"):
        await sdk.audio.transcriptions.create(
            model="stt/tiny", file=("s.wav", encode_wav([0.0] * 80, 8000))
        )
    spoken_image = httpx.post(
        url + "/api/v1/generate",
        headers=AUTH,
        json={
            "generation_type": "tts",
            "input_data": [
                {"type": "text", "data": "Hi"},
                {"type": "image", "data": base64.b64encode(b"x").decode()},
            ],
        },
    )
    assert spoken_image.status_code == 400 and "text only" in spoken_image.text
    missing = httpx.post(
        url + "/api/v1/generate",
        headers=AUTH,
        json={"generation_type": "stt", "prompt": "no audio"},
    )
    assert missing.status_code == 400 and "one audio input" in missing.text
