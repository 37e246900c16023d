"""Who is calling: the API key a request presents, checked against the key store.

The one place for the check. Routes get it through ``deps.require_api_key``; the lollms-webui
route adds the body's ``client_id``; the error handlers use it for bodies that fail to parse
(FastAPI parses the body before it runs dependencies), so that an unauthenticated caller gets
a 401, not a description of what is wrong with its body.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from lollms_server.errors import Unauthorized
from lollms_server.security.keys import KeyStore

__all__ = ["ANONYMOUS", "authenticate", "header_key"]

ANONYMOUS = "anonymous"


def header_key(connection: HTTPConnection) -> str | None:
    """The key sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return connection.headers.get("x-api-key") or None


def authenticate(connection: HTTPConnection, presented: str | None) -> str:
    """The name of ``presented``'s key; :class:`Unauthorized` when it is missing or wrong."""
    keys: KeyStore = connection.app.state.keys
    if len(keys) == 0 and connection.app.state.settings.security.allow_no_keys:
        return ANONYMOUS
    if not presented:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'.")
    name = keys.verify(presented)
    if name is None:
        raise Unauthorized("Invalid API key.")
    return name
