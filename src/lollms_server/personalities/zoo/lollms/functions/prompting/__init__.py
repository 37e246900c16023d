"""``lollms.functions.prompting``: prompt helpers (image generation prompts, example system
prompts)."""

from lollms_server.personalities.zoo.lollms._missing import missing_name

__getattr__ = missing_name(__name__)
