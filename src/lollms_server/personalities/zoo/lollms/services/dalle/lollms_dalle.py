"""``lollms.services.dalle.lollms_dalle`` (lollms 9's place of ``LollmsDalle``)."""

from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms.services.tti.dalle.lollms_dalle import LollmsDalle

__all__ = ["LollmsDalle"]

__getattr__ = missing_name(__name__)
