"""Load function modules from the configured folders, and call functions safely."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from lollms_server import plugins
from lollms_server.errors import NotFound
from lollms_server.functions.model import (
    MARK,
    FunctionDef,
    FunctionDefinitionError,
    describe,
    validation_message,
)
from lollms_server.security.paths import inside

__all__ = ["CallResult", "FunctionNotFound", "FunctionRegistry"]

logger = logging.getLogger("lollms_server.functions")


class FunctionNotFound(NotFound):
    error_type = "function_not_found"


@dataclass(frozen=True)
class CallResult:
    """What a call gave: ``value`` (JSON-able) or ``error`` (a message for the model)."""

    name: str
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_text(self) -> str:
        """The result as the model reads it."""
        if self.error is not None:
            return json.dumps({"error": self.error})
        if isinstance(self.value, str):
            return self.value
        return json.dumps(self.value, ensure_ascii=False)


def _declared(module: ModuleType) -> list[Any]:
    listed = getattr(module, "FUNCTIONS", None)
    if listed is not None:
        if not isinstance(listed, list | tuple):
            raise FunctionDefinitionError("FUNCTIONS must be a list of functions")
        return list(listed)
    return [
        obj
        for obj in vars(module).values()
        if callable(obj)
        and getattr(obj, MARK, None) is not None
        and getattr(obj, "__module__", None) == module.__name__
    ]


_WORKERS = 8  # threads for sync functions


class _AllBusy(Exception):
    pass


class FunctionRegistry:
    """Functions found in the configured folders (``*.py`` files at their top level)."""

    def __init__(self, folders: Iterable[Path], default_timeout: float = 30.0) -> None:
        self.folders = [Path(f) for f in folders]
        self.default_timeout = default_timeout
        self._items: dict[str, FunctionDef] = {}
        self.problems: list[dict[str, str]] = []
        # Sync functions run in their own threads: one stuck past its timeout (a thread
        # cannot be killed) must not take threads from model loads or the HTTP server.
        self._pool: ThreadPoolExecutor | None = None
        self._busy = 0  # threads running a call, timed-out ones included

    @classmethod
    def discover(cls, folders: Iterable[Path], default_timeout: float = 30.0) -> FunctionRegistry:
        registry = cls(folders, default_timeout)
        registry.reload()
        return registry

    def reload(self) -> None:
        self._items, self.problems = {}, []
        for folder in self.folders:
            if not folder.is_dir():
                logger.info("functions folder %s does not exist; none loaded from it", folder)
                continue
            for path in sorted(folder.glob("*.py")):
                if path.name.startswith(("_", ".")):
                    continue
                if not inside(path, folder):
                    self._problem(path, "links outside the configured functions folder: not loaded")
                    continue
                self._load_module(path)
        logger.info("%d functions loaded, %d problems", len(self._items), len(self.problems))

    def _problem(self, path: Path, reason: str) -> None:
        logger.warning("functions %s: %s", path, reason)
        self.problems.append({"path": str(path), "reason": reason})

    def _load_module(self, path: Path) -> None:
        try:
            module = plugins.import_unique(path, "lollms_server_functions")
            declared = _declared(module)
        except FunctionDefinitionError as exc:
            self._problem(path, str(exc))
            return
        except (Exception, SystemExit) as exc:  # one bad module never stops the server
            self._problem(path, f"import failed: {type(exc).__name__}: {exc}")
            return
        for fn in declared:
            try:
                spec = describe(fn, module=path.stem)
            except FunctionDefinitionError as exc:
                self._problem(path, str(exc))
                continue
            except Exception as exc:  # describe() met something it did not expect
                self._problem(path, f"{fn!r} cannot be described: {type(exc).__name__}: {exc}")
                continue
            if spec.name in self._items:
                self._problem(
                    path,
                    f"function '{spec.name}' already defined in module "
                    f"'{self._items[spec.name].module}'; this one is skipped",
                )
                continue
            self._items[spec.name] = spec

    def _run_sync(self, spec: FunctionDef, kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        """Start ``spec`` in a worker thread. A thread cannot be killed: past the limit its
        result is dropped, and its worker counts as busy until it really ends."""
        if self._busy >= _WORKERS:
            raise _AllBusy
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="lollms-function")
        self._busy += 1
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(spec.fn, **kwargs)
        )

        def done(_: asyncio.Future[Any]) -> None:
            self._busy -= 1

        future.add_done_callback(done)
        return future

    def all(self) -> list[FunctionDef]:
        return sorted(self._items.values(), key=lambda f: f.name)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str) -> FunctionDef:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise FunctionNotFound(
                f"Function '{name}' not found; known functions: {known}.", param="functions"
            ) from None

    async def call(self, name: str, arguments: str | dict[str, Any]) -> CallResult:
        """Validate ``arguments`` and call ``name``; every failure becomes an error result."""
        spec = self._items.get(name)
        if spec is None:
            return CallResult(
                name,
                error=f"unknown function '{name}'; available: "
                f"{', '.join(sorted(self._items)) or 'none'}",
            )
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError as exc:
                return CallResult(name, error=f"arguments are not valid JSON: {exc}")
        if not isinstance(arguments, dict):
            return CallResult(name, error="arguments must be a JSON object")
        try:
            kwargs = spec.validate(arguments)
        except ValidationError as exc:
            return CallResult(name, error=f"invalid arguments: {validation_message(exc)}")
        return await self._invoke(spec, kwargs)

    async def _invoke(self, spec: FunctionDef, kwargs: dict[str, Any]) -> CallResult:
        limit = spec.timeout or self.default_timeout
        try:
            if spec.is_async:
                value = await asyncio.wait_for(spec.fn(**kwargs), limit)
            else:
                value = await asyncio.wait_for(asyncio.shield(self._run_sync(spec, kwargs)), limit)
        except _AllBusy:
            return CallResult(
                spec.name,
                error=f"every one of the {_WORKERS} function "
                "workers is busy (calls still running past their timeout); "
                "try again later",
            )
        except asyncio.TimeoutError:
            return CallResult(spec.name, error=f"timed out after {limit:g} s")
        except Exception as exc:
            logger.warning("function %s raised %s: %s", spec.name, type(exc).__name__, exc)
            return CallResult(spec.name, error=f"{type(exc).__name__}: {exc}")
        try:
            return CallResult(spec.name, value=to_jsonable_python(value))
        except Exception:
            return CallResult(spec.name, value=repr(value))
