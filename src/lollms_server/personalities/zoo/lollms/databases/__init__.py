"""``lollms.databases``: the discussion a processor works in (no database on a server)."""

from lollms_server.personalities.zoo.lollms._missing import missing_name

__getattr__ = missing_name(__name__)
