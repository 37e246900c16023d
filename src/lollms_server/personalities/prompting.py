"""Apply a personality to a request: system prompt, stop sequences, default sampling.

- The conditioning becomes the system prompt, with lollms placeholders filled in
  (``{{date}}``, ``{{time}}``, ``{{datetime}}``, ``{{user_name}}``, ``{{ai_name}}``,
  ``{{language}}``); a system message of the request's own follows it.
- ``anti_prompts`` join the request's stop sequences.
- ``model_*`` (or SOUL.md's ``temperature``...) fill sampling parameters the request left
  unset; ``repeat_last_n`` travels as an extra parameter.
- For completion-only bindings (and raw prompts) the conversation is rendered as lollms text
  with the personality's user/AI prefixes and ``link_text``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from lollms_server.bindings.types import Message, SamplingParams
from lollms_server.personalities.model import Personality

__all__ = [
    "apply_sampling",
    "bound_sampling",
    "render_lollms_prompt",
    "render_plain_prompt",
    "split_lollms_prompt",
    "system_prompt",
    "with_system",
]

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_MARKER = re.compile(r"!@>\s*([^:\n]+?)\s*:\s?")
_ASSISTANT = {"assistant", "ai", "lollms", "bot"}
LOLLMS_HEADER = "!@>"


def system_prompt(
    personality: Personality, *, user_name: str | None = None, now: datetime | None = None
) -> str:
    """The conditioning with its placeholders filled in (unknown ones are left as they are)."""
    moment = now or datetime.now()
    values = {
        "date": moment.strftime("%Y-%m-%d"),
        "time": moment.strftime("%H:%M:%S"),
        "datetime": moment.strftime("%Y-%m-%d %H:%M:%S"),
        "user_name": user_name or personality.user_name or "user",
        "ai_name": personality.name,
        "language": personality.language or "",
    }
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), personality.conditioning)


def with_system(messages: Sequence[Message], system: str) -> tuple[Message, ...]:
    """``messages`` led by ``system``; a leading system message of the request follows it."""
    if not system:
        return tuple(messages)
    if messages and messages[0].role == "system":
        first = messages[0]
        merged = dataclasses.replace(first, content=f"{system}\n\n{first.content}".rstrip())
        return (merged, *messages[1:])
    return (Message(role="system", content=system), *messages)


def apply_sampling(
    params: SamplingParams, extra: dict[str, Any], personality: Personality
) -> tuple[SamplingParams, dict[str, Any]]:
    """The request's parameters, with the personality's defaults where the request has none."""
    defaults = personality.sampling
    stops = list(params.stop)
    stops += [s for s in personality.anti_prompts if s and s not in stops]
    merged = dataclasses.replace(
        params,
        temperature=params.temperature if params.temperature is not None else defaults.temperature,
        top_p=params.top_p if params.top_p is not None else defaults.top_p,
        top_k=params.top_k if params.top_k is not None else defaults.top_k,
        repeat_penalty=params.repeat_penalty
        if params.repeat_penalty is not None
        else defaults.repeat_penalty,
        max_tokens=params.max_tokens if params.max_tokens is not None else defaults.max_tokens,
        stop=tuple(stops),
    )
    extra = dict(extra)
    if defaults.repeat_last_n is not None:
        extra.setdefault("repeat_last_n", defaults.repeat_last_n)
    return merged, extra


def _lowest(own: float | None, limit: float | None) -> float | None:
    if limit is None:
        return own
    return limit if own is None else min(own, limit)


def _top_k(own: int | None, limit: int | None) -> int | None:
    """top_k 0 (or less) means "no limit" to the engines: it never loosens a positive one."""
    if limit is None or limit <= 0:
        return own
    return limit if own is None or own <= 0 else min(own, limit)


def bound_sampling(params: SamplingParams, limits: SamplingParams) -> SamplingParams:
    """``params`` (what a script asks for one of its generations) held within the client's
    ``limits``: ``max_tokens``, ``temperature``, ``top_p`` and ``top_k`` may be lowered by the
    script, never raised past the client's; the client's ``repeat_penalty`` and ``seed`` fill
    what the script leaves unset."""
    max_tokens = _lowest(params.max_tokens, limits.max_tokens)
    return dataclasses.replace(
        params,
        max_tokens=None if max_tokens is None else int(max_tokens),
        temperature=_lowest(params.temperature, limits.temperature),
        top_p=_lowest(params.top_p, limits.top_p),
        top_k=_top_k(params.top_k, limits.top_k),
        repeat_penalty=params.repeat_penalty
        if params.repeat_penalty is not None
        else limits.repeat_penalty,
        seed=params.seed if params.seed is not None else limits.seed,
    )


def _render(messages: Sequence[Message], user: str, ai: str, link: str) -> str:
    names = {"user": user, "assistant": ai}
    blocks = [f"{LOLLMS_HEADER}{names.get(m.role, m.role)}:\n{m.content}" for m in messages]
    blocks.append(f"{LOLLMS_HEADER}{ai}:\n")
    return link.join(blocks)


def render_lollms_prompt(messages: Sequence[Message], personality: Personality) -> str:
    """The conversation as lollms text, ending with the AI's header for it to continue::

    !@>system:
    <conditioning>
    !@>User:
    <message>
    !@>LoLLMs:
    """
    return _render(
        messages,
        personality.user_message_prefix,
        personality.ai_message_prefix,
        personality.link_text,
    )


def render_plain_prompt(messages: Sequence[Message]) -> str:
    """The same text form with plain role names (completion-only engines, no personality)."""
    return _render(messages, "user", "assistant", "\n")


def split_lollms_prompt(
    prompt: str, ai_names: Sequence[str] = (), user_names: Sequence[str] = ()
) -> tuple[Message, ...]:
    """``!@>system: ...\n!@>user: ...`` into messages; unmarked text is one user message.

    Other sections (``!@>documentation:``, ``!@>context:``...) keep their label and join the
    system message when they come before the conversation, the user's turn otherwise (and
    when there is no user turn at all, they are it: ``!@>system:\nSummarize\n!@>chunk:\n
    ...``); runs of one role are merged, as strict chat templates want roles to alternate.
    """
    marks = list(_MARKER.finditer(prompt))
    if not marks:
        return (Message("user", prompt),)
    ai = _ASSISTANT | {n.strip().lower() for n in ai_names}
    users = {"user", "human"} | {n.strip().lower() for n in user_names}
    pieces: list[tuple[str, str]] = []
    sections: list[int] = []  # indexes of labelled sections put in the system message
    if prompt[: marks[0].start()].strip():
        pieces.append(("user", prompt[: marks[0].start()].strip()))
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(prompt)
        label = mark.group(1).strip()
        name = label.lower()
        content = prompt[mark.end() : end].strip()
        if name == "system" or name in ai or name in users:
            role = "system" if name == "system" else "assistant" if name in ai else "user"
            if content or role != "assistant":
                pieces.append((role, content))
            continue
        started = any(role != "system" for role, _ in pieces)
        if not started:
            sections.append(len(pieces))
        pieces.append(("user" if started else "system", f"{label}:\n{content}"))
    if sections and not any(role == "user" for role, _ in pieces):
        for index in sections:
            pieces[index] = ("user", pieces[index][1])
    merged: list[tuple[str, str]] = []
    for role, content in pieces:
        if merged and merged[-1][0] == role:
            merged[-1] = (role, f"{merged[-1][1]}\n\n{content}".strip())
        else:
            merged.append((role, content))
    return tuple(Message(role, content) for role, content in merged)
