"""``lollms.prompting``: the context a processor's ``run_workflow`` receives."""

from __future__ import annotations

from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["LollmsContextDetails"]

# Text lollms joins into prompts: never None, or a join breaks.
_TEXTS = (
    "internet_search_results",
    "documentation",
    "user_description",
    "positive_boost",
    "negative_boost",
    "knowledge",
    "extra",
    "skills",
    "previous_chunk",
    "force_language",
    "fun_mode",
    "think_first_mode",
)
_LISTS = ("internet_search_infos", "documentation_entries", "function_calls")


class LollmsContextDetails:
    """The request as lollms describes it; attribute and item access both work (lollms 11
    passed a dict, later versions this object). Text fields are strings ("" when empty),
    list fields lists; ``knowledge`` and ``discussion_messages_list`` are None (no
    knowledge base, no structured discussion here)."""

    def __init__(
        self,
        client: Any = None,
        conditionning: str | None = None,
        discussion_messages: str | None = None,
        prompt: str | None = None,
        current_language: str | None = None,
        ai_prefix: str | None = None,
        ctx_size: int = 2048,
        max_n_predict: int | None = None,
        **others: Any,
    ) -> None:
        self.client = client
        self.conditionning = conditionning or ""
        self.discussion_messages = discussion_messages or ""
        self.prompt = prompt or ""
        self.current_language = current_language or ""
        self.ai_prefix = ai_prefix or ""
        self.ctx_size = ctx_size
        self.max_n_predict = max_n_predict
        self.ai_output = ""
        for key in _TEXTS:
            setattr(self, key, others.pop(key, None) or "")
        for key in _LISTS:
            setattr(self, key, list(others.pop(key, None) or []))
        for key in ("available_space", "model", "discussion_messages_list"):
            setattr(self, key, others.pop(key, None))
        self.is_continue = others.pop("is_continue", False)
        self.debug = others.pop("debug", False)
        for key, value in others.items():
            setattr(self, key, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"lollms_server's LollmsContextDetails has no '{name}'")

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)


__getattr__ = missing_name(__name__)
