"""``lollms.types``: the message operation enums processors pass to callbacks."""

from __future__ import annotations

from enum import Enum
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["MSG_OPERATION_TYPE", "MSG_TYPE", "SENDER_TYPES", "SUMMARY_MODE", "GenerationPresets"]


class MSG_OPERATION_TYPE(Enum):  # noqa: N801 - the zoo's name
    MSG_OPERATION_TYPE_ADD_CHUNK = 0
    MSG_OPERATION_TYPE_SET_CONTENT = 1
    MSG_OPERATION_TYPE_SET_CONTENT_INVISIBLE_TO_AI = 2
    MSG_OPERATION_TYPE_SET_CONTENT_INVISIBLE_TO_USER = 3
    MSG_OPERATION_TYPE_EXCEPTION = 4
    MSG_OPERATION_TYPE_WARNING = 5
    MSG_OPERATION_TYPE_INFO = 6
    MSG_OPERATION_TYPE_STEP = 7
    MSG_OPERATION_TYPE_STEP_START = 8
    MSG_OPERATION_TYPE_STEP_PROGRESS = 9
    MSG_OPERATION_TYPE_STEP_END_SUCCESS = 10
    MSG_OPERATION_TYPE_STEP_END_FAILURE = 11
    MSG_OPERATION_TYPE_JSON_INFOS = 12
    MSG_OPERATION_TYPE_REF = 13
    MSG_OPERATION_TYPE_CODE = 14
    MSG_OPERATION_TYPE_UI = 15
    MSG_OPERATION_TYPE_NEW_MESSAGE = 16
    MSG_OPERATION_TYPE_FINISHED_MESSAGE = 17


class MSG_TYPE(Enum):  # noqa: N801 - lollms 9.x processors use these names
    MSG_TYPE_CHUNK = 0
    MSG_TYPE_FULL = 1
    MSG_TYPE_FULL_INVISIBLE_TO_AI = 2
    MSG_TYPE_FULL_INVISIBLE_TO_USER = 3
    MSG_TYPE_EXCEPTION = 4
    MSG_TYPE_WARNING = 5
    MSG_TYPE_INFO = 6
    MSG_TYPE_STEP = 7
    MSG_TYPE_STEP_START = 8
    MSG_TYPE_STEP_PROGRESS = 9
    MSG_TYPE_STEP_END = 10
    MSG_TYPE_JSON_INFOS = 11
    MSG_TYPE_REF = 12
    MSG_TYPE_CODE = 13
    MSG_TYPE_UI = 14
    MSG_TYPE_NEW_MESSAGE = 15
    MSG_TYPE_FINISHED_MESSAGE = 17


class SENDER_TYPES(Enum):  # noqa: N801
    SENDER_TYPES_USER = 0
    SENDER_TYPES_AI = 1
    SENDER_TYPES_SYSTEM = 2


class SUMMARY_MODE(Enum):  # noqa: N801
    """How ``APScript.summarize_chunks`` goes through the chunks."""

    SUMMARY_MODE_SEQUENCIAL = 0  # one running summary, each chunk fused into it
    SUMMARY_MODE_HIERARCHICAL = 1  # each chunk on its own, the summaries joined


class GenerationPresets:
    """Sampling presets lollms offers (``self.generate(prompt, **preset)``)."""

    @staticmethod
    def deterministic_preset() -> dict[str, Any]:
        """Always the most likely token."""
        return {"temperature": 0.0, "top_k": 1, "top_p": 1.0}

    @staticmethod
    def default_preset() -> dict[str, Any]:
        """Balanced."""
        return {"temperature": 0.7, "top_k": 50, "top_p": 0.9}

    @staticmethod
    def creative_preset() -> dict[str, Any]:
        """More varied."""
        return {"temperature": 1.5, "top_k": 60, "top_p": 0.95}

    @staticmethod
    def creative_and_slow_preset() -> dict[str, Any]:
        """Varied, from a wider choice."""
        return {"temperature": 1.2, "top_k": 100, "top_p": 0.95}


__getattr__ = missing_name(__name__)
