"""``lollms.services.tti.dalle``: image services map onto the server's own image binding."""

from lollms_server.personalities.zoo.lollms._missing import missing_name

__getattr__ = missing_name(__name__)
