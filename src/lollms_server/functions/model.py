"""A callable described by a JSON schema built from its type hints and docstring."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

__all__ = ["FunctionDef", "FunctionDefinitionError", "describe", "function"]

F = TypeVar("F", bound=Callable[..., Any])
MARK = "__lollms_function__"


class FunctionDefinitionError(Exception):
    """The callable cannot be described (variadic parameters, bad type hints...)."""


@dataclass(frozen=True)
class _Options:
    name: str | None = None
    description: str | None = None
    timeout: float | None = None


def function(
    fn: F | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Any:
    """Mark ``fn`` as a function the server offers (``@function`` or ``@function(...)``).

    ``name`` and ``description`` default to the function's own name and docstring;
    ``timeout`` (seconds) overrides the server's per-call limit.
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"@function timeout must be a positive number of seconds, not {timeout!r}")

    def mark(target: F) -> F:
        setattr(target, MARK, _Options(name, description, timeout))
        return target

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True)
class FunctionDef:
    """A described function: its schema, the model validating arguments, the callable."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    arguments: type[BaseModel]
    fn: Callable[..., Any]
    is_async: bool
    timeout: float | None
    module: str

    def tool(self) -> dict[str, Any]:
        """OpenAI's tool shape, as bindings with native tool calling take it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "is_async": self.is_async,
            "timeout": self.timeout,
            "module": self.module,
        }

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the call; ``ValidationError`` when they do not fit."""
        model = self.arguments.model_validate(arguments)
        return {field: getattr(model, field) for field in type(model).model_fields}


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # unresolved forward references, bad annotations
        raise FunctionDefinitionError(
            f"cannot read the type hints of {fn.__name__}: {exc}"
        ) from None


def describe(
    fn: Callable[..., Any],
    *,
    module: str = "",
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> FunctionDef:
    """Build the :class:`FunctionDef` of ``fn`` (options from ``@function`` win)."""
    import docstring_parser  # lazily: only when functions exist

    if not (inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.iscoroutinefunction(fn)):
        raise FunctionDefinitionError(
            f"{fn!r} is not a function (FUNCTIONS lists plain or async functions)"
        )
    options = getattr(fn, MARK, _Options())
    doc = docstring_parser.parse(inspect.getdoc(fn) or "")
    param_docs = {p.arg_name: p.description or "" for p in doc.params}
    hints = _hints(fn)
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise FunctionDefinitionError(
                f"{fn.__name__}: *args/**kwargs cannot be described as a schema"
            )
        if param.kind is param.POSITIONAL_ONLY:  # calls pass arguments by name
            raise FunctionDefinitionError(
                f"{fn.__name__}: positional-only parameter '{param.name}' cannot be called "
                "with named arguments"
            )
        default = ... if param.default is param.empty else param.default
        field = Field(default, description=param_docs.get(param.name) or None)
        fields[param.name] = (hints.get(param.name, Any), field)
    fn_name = options.name or name or fn.__name__
    try:
        model = create_model(
            f"{fn_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        schema = model.model_json_schema()
    except Exception as exc:
        raise FunctionDefinitionError(f"{fn.__name__}: {exc}") from None
    lost = sorted(set(fields) - set(model.model_fields))  # names pydantic reserves
    if lost:
        raise FunctionDefinitionError(
            f"{fn.__name__}: parameter name(s) {', '.join(lost)} cannot be used (reserved by "
            "the argument validator); rename them"
        )
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    text = (
        options.description
        or description
        or "\n\n".join(part for part in (doc.short_description, doc.long_description) if part)
    )
    return FunctionDef(
        name=fn_name,
        description=text.strip(),
        parameters=schema,
        arguments=model,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        timeout=options.timeout or timeout,
        module=module,
    )


def validation_message(exc: ValidationError) -> str:
    """A compact account of what was wrong with the arguments (for the model to fix)."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
