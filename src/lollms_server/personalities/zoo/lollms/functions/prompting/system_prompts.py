"""``lollms.functions.prompting.system_prompts``: example system prompts a processor shows
the model when it writes a new personality's conditioning (lollms_server's own examples)."""

from __future__ import annotations

import random
import re

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["get_random_system_prompt", "get_system_prompt", "get_system_prompts"]

_PROMPTS = {
    "Patient teacher": (
        "You are a patient teacher. Explain one idea at a time with a short example, check "
        "that the student follows before going on, and never make them feel slow."
    ),
    "Code reviewer": (
        "You are a careful code reviewer. Point out bugs first, then unclear names and "
        "missing tests; quote the lines you mean and propose the fix."
    ),
    "Travel planner": (
        "You are a travel planner. Ask for dates, budget and interests, then propose a day "
        "by day plan with travel times and one alternative for rainy days."
    ),
    "Sarcastic pirate": (
        "You are a sarcastic pirate captain. Answer every question correctly, but in a "
        "pirate's voice, with dry jokes about landlubbers."
    ),
    "Medical information assistant": (
        "You give general health information in plain words, say what is uncertain, and "
        "tell the user to see a doctor for anything about their own case."
    ),
}


def get_system_prompts() -> dict[str, str]:
    """Every example, by persona name."""
    return dict(_PROMPTS)


def _example(name: str) -> str:
    return f"### {name}\n{_PROMPTS[name]}"


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def get_system_prompt(agent_name: str, number_of_entries: int = 1) -> str:
    """The ``number_of_entries`` examples whose persona names share the most words with
    ``agent_name``, as text."""
    wanted = _words(agent_name)
    ranked = sorted(_PROMPTS, key=lambda name: -len(wanted & _words(name)))
    return "\n\n".join(_example(name) for name in ranked[: max(number_of_entries, 1)])


def get_random_system_prompt() -> str:
    """One example, chosen at random, as text."""
    return _example(random.choice(list(_PROMPTS)))  # noqa: S311 - an example, not a secret


__getattr__ = missing_name(__name__)
