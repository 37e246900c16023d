"""A loaded lollms personality, whichever file format it came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["Personality", "PersonalityProblem", "Sampling", "ScriptInfo"]

ScriptKind = Literal["workflow", "zoo"]


class Sampling(BaseModel):
    """Default sampling parameters of a personality (``model_*`` keys, or SOUL.md's)."""

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    max_tokens: int | None = None  # model_n_predicts


class ScriptInfo(BaseModel):
    """The script a personality runs instead of a plain generation."""

    kind: ScriptKind  # "workflow": run_workflow(prompt, params, context); "zoo": Processor
    path: Path  # inside the personality folder
    available: bool  # False: the personality names a script that is not there
    reason: str | None = None  # why it is not available


class Personality(BaseModel):
    """Everything a personality file says, plus where it lives.

    ``id`` is the folder's path below its configured root (``category/name`` in the zoo's
    layout); ``raw`` keeps the file's keys as read, unknown ones included.
    """

    id: str
    name: str
    folder_name: str
    category: str
    categories: list[str] = Field(default_factory=list)
    format: Literal["config.yaml", "SOUL.md"]
    author: str | None = None
    version: str | None = None
    description: str = ""
    conditioning: str = ""
    welcome_message: str = ""
    disclaimer: str = ""
    user_name: str | None = None
    language: str | None = None
    translations: dict[str, Path] = Field(default_factory=dict)  # language -> yaml file
    user_message_prefix: str = "user"
    ai_message_prefix: str = "assistant"
    link_text: str = "\n"
    anti_prompts: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)
    recommended_binding: str | None = None
    recommended_model: str | None = None
    sampling: Sampling = Field(default_factory=Sampling)
    prompts_list: list[str] = Field(default_factory=list)
    help: str = ""
    script: ScriptInfo | None = None
    logo: Path | None = None
    folder: Path
    warnings: list[str] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def scripted(self) -> bool:
        return self.script is not None

    @property
    def runs_script(self) -> bool:
        return self.script is not None and self.script.available

    @property
    def languages(self) -> list[str]:
        base = [self.language] if self.language else []
        return base + [lang for lang in self.translations if lang not in base]

    def summary(self) -> dict[str, Any]:
        """What the listing endpoints show (no server paths)."""
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "author": self.author,
            "version": self.version,
            "description": self.description,
            "language": self.language,
            "languages": self.languages,
            "format": self.format,
            "scripted": self.scripted,
            "script_kind": self.script.kind if self.script else None,
            "script_available": self.runs_script,
            "welcome_message": self.welcome_message,
            "disclaimer": self.disclaimer,
            "recommended_binding": self.recommended_binding,
            "recommended_model": self.recommended_model,
            "has_logo": self.logo is not None,
            "dependencies": self.dependencies,
            "warnings": self.warnings,
        }

    def details(self) -> dict[str, Any]:
        """One personality in full (``GET /api/v1/personalities/{name}``)."""
        return {
            **self.summary(),
            "categories": self.categories,
            "conditioning": self.conditioning,
            "user_name": self.user_name,
            "user_message_prefix": self.user_message_prefix,
            "ai_message_prefix": self.ai_message_prefix,
            "link_text": self.link_text,
            "anti_prompts": self.anti_prompts,
            "sampling": self.sampling.model_dump(exclude_none=True),
            "prompts_list": self.prompts_list,
            "help": self.help,
            "extra": {k: v for k, v in self.raw.items() if k not in KNOWN_KEYS},
        }


class PersonalityProblem(BaseModel):
    """A folder that looked like a personality but could not be loaded."""

    path: str
    reason: str


KNOWN_KEYS = frozenset(
    {
        "name",
        "category",
        "personality_conditioning",
        "welcome_message",
        "personality_description",
        "description",
        "author",
        "version",
        "ai_message_prefix",
        "user_message_prefix",
        "link_text",
        "dependencies",
        "model_temperature",
        "model_top_k",
        "model_top_p",
        "model_repeat_penalty",
        "model_repeat_last_n",
        "model_n_predicts",
        "temperature",
        "top_k",
        "top_p",
        "repeat_penalty",
        "repeat_last_n",
        "max_tokens",
        "disclaimer",
        "recommended_model",
        "recommended_binding",
        "anti_prompts",
        "user_name",
        "language",
        "prompts_list",
        "help",
        "script",
        "conditioning",
    }
)
