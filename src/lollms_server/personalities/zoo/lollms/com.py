"""``lollms.com``: the notifications processors send (shown to the client as info steps)."""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.runtime import current

__all__ = ["LoLLMsCom", "NotificationDisplayType", "NotificationType"]

logger = logging.getLogger("lollms_server.personalities.zoo")


class NotificationType(Enum):  # noqa: D101 - lollms' names
    NOTIF_ERROR = 0
    NOTIF_SUCCESS = 1
    NOTIF_INFO = 2
    NOTIF_WARNING = 3


class NotificationDisplayType(Enum):  # noqa: D101 - lollms' names
    TOAST = 0
    MESSAGE_BOX = 1
    YESNO_MESSAGE = 2
    SHOW_BLOCKING_MESSAGE = 3
    HIDE_BLOCKING_MESSAGE = 4


class LoLLMsCom:
    """What lollms' applications offer to talk to the user: messages become info (or
    warning) steps of the running request; questions are answered "no"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.rt_com = None

    def notify(
        self,
        content: Any,
        notification_type: NotificationType = NotificationType.NOTIF_SUCCESS,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Shown to the client (a warning step for errors and warnings)."""
        bad = notification_type in (NotificationType.NOTIF_ERROR, NotificationType.NOTIF_WARNING)
        run = current()
        if run is None:
            logger.info("%s", content)
        else:
            run.bridge.notice("warning" if bad else "info", str(content))

    def InfoMessage(self, content: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        self.notify(content, NotificationType.NOTIF_INFO)

    def ShowBlockingMessage(self, content: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        self.notify(content, NotificationType.NOTIF_INFO)

    def HideBlockingMessage(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        return None

    def YesNoMessage(self, content: Any, *args: Any, **kwargs: Any) -> bool:  # noqa: N802
        self.notify(f"{content} (no one to answer on a server: no)", NotificationType.NOTIF_INFO)
        return False

    def info(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self.notify(content, NotificationType.NOTIF_INFO)

    def warning(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self.notify(content, NotificationType.NOTIF_WARNING)

    def error(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self.notify(content, NotificationType.NOTIF_ERROR)

    def success(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self.notify(content, NotificationType.NOTIF_SUCCESS)


__getattr__ = missing_name(__name__)
