"""``lollms.prompting``: the context a processor's ``run_workflow`` receives."""

from __future__ import annotations

from typing import Any

__all__ = ["LollmsContextDetails"]


class LollmsContextDetails:
    """The request as lollms describes it; attribute and item access both work (lollms 11
    passed a dict, later versions this object)."""

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
        self.conditionning = conditionning
        self.discussion_messages = discussion_messages
        self.prompt = prompt
        self.current_language = current_language
        self.ai_prefix = ai_prefix
        self.ctx_size = ctx_size
        self.max_n_predict = max_n_predict
        self.ai_output = ""
        for key in (
            "internet_search_infos",
            "internet_search_results",
            "documentation",
            "documentation_entries",
            "user_description",
            "positive_boost",
            "negative_boost",
            "extra",
            "available_space",
            "skills",
            "previous_chunk",
            "function_calls",
            "model",
            "knowledge",
            "force_language",
            "discussion_messages_list",
        ):
            setattr(self, key, others.pop(key, None))
        self.fun_mode = others.pop("fun_mode", False)
        self.think_first_mode = others.pop("think_first_mode", False)
        self.is_continue = others.pop("is_continue", False)
        self.debug = others.pop("debug", False)
        for key, value in others.items():
            setattr(self, key, value)

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)
