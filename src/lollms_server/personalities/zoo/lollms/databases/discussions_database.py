"""``lollms.databases.discussions_database``: the request's discussion (see
``lollms.client_session``); there is no discussions database on a server."""

from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms.client_session import Discussion, DiscussionMessage

__all__ = ["Discussion", "DiscussionMessage", "Message"]

Message = DiscussionMessage  # lollms' name for a stored message

__getattr__ = missing_name(__name__)
