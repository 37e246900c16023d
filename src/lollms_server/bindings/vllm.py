"""vLLM binding: the OpenAI-compatible binding plus vLLM's own request extras.

What differs from ``openai``: guided decoding (``guided_json``, ``guided_regex``,
``guided_choice``, ``guided_grammar``), ``chat_template_kwargs`` (e.g. ``enable_thinking``),
``top_k``/``repetition_penalty``/``min_p`` sent the way vLLM reads them (``extra_body``), and a
check at start that the server really is vLLM (``GET /version``, which vLLM serves beside
``/v1``), so a misconfigured URL fails with a clear message instead of odd 400s.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import httpx
from pydantic import Field

from lollms_server.bindings.openai import OpenAIBinding, OpenAIConfig
from lollms_server.bindings.types import BindingRequest, ModelInfo
from lollms_server.errors import BindingUnavailable
from lollms_server.security.redact import safe_url

__all__ = ["VLLMBinding", "VLLMConfig"]

VLLM_EXTRAS = frozenset(
    {
        "guided_json",
        "guided_regex",
        "guided_choice",
        "guided_grammar",
        "chat_template_kwargs",
        "enable_thinking",
        "min_p",
        "repetition_penalty",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
    }
)


class VLLMConfig(OpenAIConfig):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="vLLM's /v1 URL.")
    check_version: bool = Field(True, description="Ask GET /version that this is vLLM.")
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Sent with every chat request (enable_thinking...)."
    )


class VLLMBinding(OpenAIBinding[VLLMConfig]):
    name: ClassVar[str] = "vllm"
    description: ClassVar[str] = "A vLLM server (OpenAI API plus guided decoding)."
    extra_parameters: ClassVar[frozenset[str] | None] = VLLM_EXTRAS

    version: str | None = None

    async def _detect(self) -> str:
        cfg = self.config
        if self.version is not None or not cfg.check_version:
            return self.version or "unchecked"
        root = cfg.base_url.rstrip("/").removesuffix("/v1")
        try:
            async with httpx.AsyncClient(timeout=10, headers=cfg.headers) as client:
                response = await client.get(f"{root}/version")
            version = response.json().get("version") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            detail = self.redact(f"{type(exc).__name__}: {exc}")
            raise BindingUnavailable(f"Cannot reach vLLM at {safe_url(root)}: {detail}") from None
        if not isinstance(version, str):
            raise BindingUnavailable(
                f"{safe_url(root)} does not answer GET /version like vLLM "
                f"(HTTP {response.status_code}); "
                'use type = "openai" for other OpenAI-compatible servers.'
            )
        self.version = version
        return version

    async def list_models(self) -> list[ModelInfo]:
        version = await self._detect()
        models = await super().list_models()
        return [
            m.model_copy(update={"details": {**m.details, "vllm_version": version}}) for m in models
        ]

    async def load(self, model: str) -> None:
        await self._detect()

    def _params(self, request: BindingRequest) -> dict[str, Any]:
        cfg = self.config
        passthrough = {
            k: v
            for k, v in request.extra.items()
            if k in ("frequency_penalty", "presence_penalty", "logit_bias")
        }
        plain = replace(request, extra=passthrough)  # tools, stream and the rest kept
        out = super()._params(plain)
        body: dict[str, Any] = dict(out.pop("extra_body", {}))
        if "repeat_penalty" in body:  # vLLM's name for it
            body["repetition_penalty"] = body.pop("repeat_penalty")
        for key, value in request.extra.items():
            if key not in passthrough and key != "enable_thinking":
                body[key] = value
        template_kwargs = {**cfg.chat_template_kwargs, **body.pop("chat_template_kwargs", {})}
        if "enable_thinking" in request.extra:
            template_kwargs["enable_thinking"] = bool(request.extra["enable_thinking"])
        if template_kwargs and request.raw_prompt is None:
            body["chat_template_kwargs"] = template_kwargs
        if body:
            out["extra_body"] = body
        return out
