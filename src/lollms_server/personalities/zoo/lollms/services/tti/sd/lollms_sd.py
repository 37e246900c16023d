"""``lollms.services.tti.sd.lollms_sd``: Stable Diffusion, here the server's image binding."""

from __future__ import annotations

from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms.tti import LollmsTTI

__all__ = ["LollmsSD"]


class LollmsSD(LollmsTTI):
    """lollms' Stable Diffusion service: paints with the server's ``[defaults]`` image
    binding (its URL, model and credentials settings are not used)."""

    def __init__(self, app: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__("sd", app)


__getattr__ = missing_name(__name__)
