"""``lollms.services.sd.lollms_sd`` (lollms 9's place of ``LollmsSD``)."""

from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms.services.tti.sd.lollms_sd import LollmsSD

__all__ = ["LollmsSD"]

__getattr__ = missing_name(__name__)
