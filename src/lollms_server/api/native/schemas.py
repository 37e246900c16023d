"""Request and response bodies of the native ``/api/v1`` API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from lollms_server.bindings.types import ModelInfo

__all__ = [
    "CountTokensResponse",
    "DetokenizeRequest",
    "DetokenizeResponse",
    "GenerateRequest",
    "GenerateResponse",
    "GenerationParameters",
    "InputItem",
    "OutputItem",
    "TokenizeRequest",
    "TokenizeResponse",
]

GenerationType = Literal["ttt", "tti", "ttv", "ttm", "tts", "stt"]


class InputItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "image", "audio", "video"]
    # Written into the chat template as is: only the roles templates know.
    role: Literal["system", "user", "assistant", "tool"] = "user"
    data: str = Field(description="Text, or base64 (optionally a data: URL) for media.")
    mime_type: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


_INT32 = 2**31 - 1  # engines keep these in 32 bits: larger values wrapped around


class GenerationParameters(BaseModel):
    """Sampling parameters. Unknown keys are passed to the binding as extras."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    temperature: float | None = Field(None, ge=0, le=5)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=_INT32)
    repeat_penalty: float | None = Field(None, gt=0, le=100)
    max_tokens: int | None = Field(None, ge=1, le=_INT32)
    n_predict: int | None = Field(
        None, ge=1, le=_INT32, description="Alias of max_tokens (lollms)."
    )
    seed: int | None = Field(None, ge=-1, le=2**32 - 2, description="-1: random.")
    stop: list[str] | str | None = None

    @model_validator(mode="after")
    def _finite_extras(self) -> GenerationParameters:
        import json

        try:  # extras travel as JSON: NaN and infinities are not JSON
            json.dumps(self.model_extra or {}, allow_nan=False)
        except ValueError:
            raise ValueError("parameters must be finite numbers (no NaN or Infinity)") from None
        return self


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = None
    input_data: list[InputItem] | None = None
    generation_type: GenerationType = "ttt"
    binding_name: str | None = None
    model_name: str | None = None
    personality: str | None = None
    parameters: GenerationParameters = Field(default_factory=GenerationParameters)
    stream: StrictBool = False
    raw_prompt: StrictBool = Field(
        False, description="Send `prompt` as is, without the model's chat template."
    )
    keep_alive: float | None = Field(
        None,
        ge=-1,
        description="Seconds the model stays loaded when idle after this request "
        "(0 = unload now, -1 = forever).",
    )
    queue_timeout: float | None = Field(
        None, gt=0, le=3600, description="Seconds to wait for a free slot before a 503."
    )
    language: str | None = Field(
        None, description="The personality's translation to use (e.g. 'french' or 'fr')."
    )
    user_name: str | None = Field(None, description="Fills {{user_name}} in a personality.")
    personality_config: dict[str, Any] = Field(
        default_factory=dict, description="Settings of a scripted personality."
    )
    functions: list[str] = Field(
        default_factory=list,
        description="Server functions the model may call (GET /api/v1/list_functions).",
    )
    tool_choice: Literal["auto", "required", "none"] = Field(
        "auto", description="'required': the model must call a function first."
    )
    max_tool_rounds: int | None = Field(None, ge=1, le=50)

    @model_validator(mode="after")
    def _has_input(self) -> GenerateRequest:
        if self.prompt is None and not self.input_data:
            raise ValueError("give 'prompt' or a non-empty 'input_data'")
        if self.raw_prompt and self.prompt is None:
            raise ValueError("'raw_prompt' needs 'prompt'")
        if self.raw_prompt and self.input_data:
            raise ValueError("'raw_prompt' sends 'prompt' alone: 'input_data' would be dropped")
        return self


class OutputItem(BaseModel):
    type: Literal["text", "image", "audio", "video", "tool_call", "tool_result"]
    data: Any
    mime_type: str | None = None
    thoughts: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class StepItem(BaseModel):
    kind: str
    text: str
    ok: bool | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class GenerateResponse(BaseModel):
    output: list[OutputItem]
    steps: list[StepItem] = Field(default_factory=list)
    usage: dict[str, int] | None = None
    request_id: str
    binding_name: str
    model_name: str
    timings: dict[str, float | None]


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    binding_name: str | None = None
    model_name: str | None = None


class TokenizeRequest(_Target):
    text: str


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int
    binding_name: str
    model_name: str


class DetokenizeRequest(_Target):
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    text: str
    binding_name: str
    model_name: str


class CountTokensResponse(BaseModel):
    count: int
    binding_name: str
    model_name: str


class ModelsResponse(BaseModel):
    models: dict[str, list[ModelInfo]]
    errors: dict[str, str] = Field(default_factory=dict)
