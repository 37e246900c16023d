"""``lollms.functions``: functions a processor offers the model (``function_definitions``).

Provided: ``generate_image`` (through the server's image binding), ``take_a_photo`` and
``select_image_file`` (a clear "not available on a server" result). Other lollms functions
are not provided (importing one names it)."""

from lollms_server.personalities.zoo.lollms._missing import missing_name

__getattr__ = missing_name(__name__)
