"""``lollms.functions.prompting.image_gen_prompts``: system prompts that turn an idea into a
detailed image generation prompt (lollms_server's own wording)."""

from __future__ import annotations

import random

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["get_image_gen_prompt", "get_random_image_gen_prompt", "get_system_prompts"]

_PROMPTS = {
    "Default": (
        "You write prompts for an image generator. Turn the user's idea into one detailed "
        "prompt: subject, setting, composition, lighting, colours, style and medium, as a "
        "comma-separated list of descriptive phrases. Answer with the prompt only."
    ),
    "Photographer": (
        "You are a photographer writing prompts for an image generator. Describe the subject, "
        "the lens, the framing, the light and the mood of a realistic photograph of the "
        "user's idea. Answer with the prompt only."
    ),
    "Illustrator": (
        "You are an illustrator writing prompts for an image generator. Describe the user's "
        "idea as an illustration: line work, palette, texture, composition and the artists' "
        "styles it recalls. Answer with the prompt only."
    ),
}


def get_system_prompts() -> dict[str, str]:
    """Every prompt, by agent name."""
    return dict(_PROMPTS)


def get_image_gen_prompt(agent_name: str) -> str:
    """The system prompt of ``agent_name`` (the default one for an unknown name)."""
    return _PROMPTS.get(agent_name, _PROMPTS["Default"])


def get_random_image_gen_prompt() -> tuple[str, str]:
    """``(agent name, system prompt)`` of one of the prompts, at random."""
    name = random.choice(list(_PROMPTS))  # noqa: S311 - not for security
    return name, _PROMPTS[name]


__getattr__ = missing_name(__name__)
