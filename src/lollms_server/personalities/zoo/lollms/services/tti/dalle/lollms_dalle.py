"""``lollms.services.tti.dalle.lollms_dalle``: DALL-E, here the server's image binding."""

from __future__ import annotations

from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms.tti import LollmsTTI

__all__ = ["LollmsDalle"]


class LollmsDalle(LollmsTTI):
    """lollms' DALL-E service: paints with the server's ``[defaults]`` image binding (the
    key and engine given are not used: no processor reaches an outside service this way)."""

    def __init__(self, app: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__("dall-e", app)


__getattr__ = missing_name(__name__)
