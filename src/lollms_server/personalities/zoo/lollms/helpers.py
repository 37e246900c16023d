"""``lollms.helpers`` (and ``ascii_colors``): console output goes to the server's log."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["ASCIIColors", "get_trace_exception", "trace_exception"]

logger = logging.getLogger("lollms_server.personalities.zoo")


def _text(args: tuple[Any, ...]) -> str:
    return " ".join(str(a) for a in args)


class ASCIIColors:
    """Every colour helper logs its text; colours and styles are ignored."""

    @staticmethod
    def print(*args: Any, **kwargs: Any) -> None:
        logger.info(_text(args))

    @staticmethod
    def info(*args: Any, **kwargs: Any) -> None:
        logger.info(_text(args))

    @staticmethod
    def success(*args: Any, **kwargs: Any) -> None:
        logger.info(_text(args))

    @staticmethod
    def warning(*args: Any, **kwargs: Any) -> None:
        logger.warning(_text(args))

    @staticmethod
    def error(*args: Any, **kwargs: Any) -> None:
        logger.error(_text(args))

    fail = error

    red = green = yellow = blue = magenta = purple = cyan = white = orange = gray = bold = info
    highlight = info
    multicolor = info


def get_trace_exception(ex: BaseException) -> str:
    return "".join(traceback.format_exception(type(ex), ex, ex.__traceback__))


def trace_exception(ex: BaseException) -> None:
    logger.error(get_trace_exception(ex))


__getattr__ = missing_name(__name__)
