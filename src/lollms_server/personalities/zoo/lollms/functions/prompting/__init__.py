"""``lollms.functions.prompting``: prompt helpers for image generation."""

from lollms_server.personalities.zoo.lollms._missing import missing_name

__getattr__ = missing_name(__name__)
