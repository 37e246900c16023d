"""The one exception tree of lollms_server.

Every error a client can see is a :class:`LollmsError` subclass carrying its HTTP status and a
stable ``error_type``. ``api/errors.py`` turns them into the JSON envelope
``{"error": {"type", "message", "param"}}``; nothing else builds error bodies.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AmbiguousName",
    "BadRequest",
    "BindingAuthError",
    "BindingNotFound",
    "BindingUnavailable",
    "ConfigError",
    "GenerationFailed",
    "InsufficientMemory",
    "Overloaded",
    "QueueTimeout",
    "LollmsError",
    "ModelHostCrashed",
    "ModelLoadFailed",
    "ModelNotFound",
    "NotFound",
    "Unauthorized",
    "UnsupportedCapability",
    "UnsupportedGenerationType",
    "WorkflowFailed",
    "WorkflowTimeout",
    "WorkflowUnavailable",
]


def _listing(names: Iterable[str]) -> str:
    items = sorted(names)
    return ", ".join(items) if items else "none"


class LollmsError(Exception):
    """Base class: an error with an HTTP status, a machine-readable type and a message."""

    status_code: int = 500
    error_type: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def to_dict(self) -> dict[str, str | None]:
        return {"type": self.error_type, "message": self.message, "param": self.param}


class BadRequest(LollmsError):
    status_code = 400
    error_type = "invalid_request_error"


class UnsupportedGenerationType(BadRequest):
    error_type = "unsupported_generation_type"


class NotServed(LollmsError):
    """An endpoint of a client API that this server knowingly does not serve."""

    status_code = 501
    error_type = "not_implemented"


class UnsupportedCapability(BadRequest):
    """The binding cannot do what was asked (tokenize, image input...)."""

    error_type = "unsupported_capability"


class Unauthorized(LollmsError):
    status_code = 401
    error_type = "authentication_error"
    challenge = "Bearer"  # the WWW-Authenticate header sent with it


class NotFound(LollmsError):
    status_code = 404
    error_type = "not_found"


class BindingNotFound(NotFound):
    error_type = "binding_not_found"

    def __init__(self, name: str, available: Iterable[str], *, param: str = "binding_name") -> None:
        super().__init__(
            f"Binding instance '{name}' does not exist. Available: {_listing(available)}.",
            param=param,
        )


class ModelNotFound(NotFound):
    error_type = "model_not_found"

    def __init__(
        self, model: str, instance: str, available: Iterable[str], *, param: str = "model_name"
    ) -> None:
        super().__init__(
            f"Model '{model}' not found in binding instance '{instance}'. "
            f"Available: {_listing(available)}.",
            param=param,
        )


class AmbiguousName(LollmsError):
    status_code = 409
    error_type = "ambiguous_name"


class BindingUnavailable(LollmsError):
    """The backend cannot serve now (engine missing, upstream down); retrying later may work."""

    status_code = 503
    error_type = "binding_unavailable"

    def __init__(
        self, message: str, *, param: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after


class ModelHostCrashed(BindingUnavailable):
    """The process running the model died; the next request starts a new one."""

    error_type = "model_host_crashed"


class Overloaded(BindingUnavailable):
    """The request queue is full."""

    error_type = "overloaded"


class QueueTimeout(BindingUnavailable):
    """The request waited in the queue longer than its timeout."""

    error_type = "queue_timeout"


class InsufficientMemory(LollmsError):
    """The model can never fit the memory budget: refused at once, never queued."""

    status_code = 507
    error_type = "insufficient_memory"


class BindingAuthError(LollmsError):
    """The backend refused the binding's own credentials (not the client's key)."""

    status_code = 502
    error_type = "binding_auth_error"


class ModelLoadFailed(LollmsError):
    """The engine could not load the model file (corrupt, unsupported): retrying will not
    help until the file or the settings change."""

    status_code = 500
    error_type = "model_load_failed"


class GenerationFailed(LollmsError):
    """The backend accepted the request but failed while producing output."""

    status_code = 502
    error_type = "generation_failed"


class WorkflowFailed(LollmsError):
    """A personality script (or another server-side workflow) raised."""

    status_code = 500
    error_type = "workflow_error"


class WorkflowTimeout(LollmsError):
    status_code = 504
    error_type = "workflow_timeout"


class WorkflowUnavailable(LollmsError):
    """A personality's script exists but cannot be loaded (import error, no entry point)."""

    status_code = 503
    error_type = "workflow_unavailable"


class ConfigError(Exception):
    """A configuration problem found at start-up. Not an HTTP error: the CLI prints it, exits 2."""

    def __init__(self, source: str, key: str | None, message: str) -> None:
        self.source = source
        self.key = key
        self.detail = message
        where = f"{source}: key '{key}'" if key else source
        super().__init__(f"Invalid configuration in {where}: {message}")
