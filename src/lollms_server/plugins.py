"""The one way the server imports Python files from configured folders.

Binding plugins, function files, personality scripts and zoo processors are all imported by
:func:`import_file`: as a fresh module under a namespace of their own (never on ``sys.path``),
removed again from ``sys.modules`` when their top-level code fails.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

__all__ = ["import_file", "import_unique"]


def import_file(
    module_name: str, path: Path, *, prepare: Callable[[ModuleType], None] | None = None
) -> ModuleType:
    """Import ``path`` as module ``module_name`` (``namespace.name``).

    The namespace package is created when missing; an ``__init__.py`` imports as a package
    (its siblings become its submodules). ``prepare`` runs on the empty module before its
    code does (to give it builtins of its own, say).
    """
    _ensure_namespace(module_name.rpartition(".")[0])
    is_package = path.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        module_name,
        path,
        submodule_search_locations=[str(path.parent)] if is_package else None,
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    if prepare is not None:
        prepare(module)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _ensure_namespace(name: str) -> None:
    if not name or name in sys.modules:
        return
    namespace = ModuleType(name)
    namespace.__path__ = []
    sys.modules[name] = namespace


def import_unique(path: Path, namespace: str) -> ModuleType:
    """Import ``path`` under ``namespace``, named after its resolved path (two files with the
    same name in different folders never collide)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    return import_file(f"{namespace}.{path.stem}_{digest}", path)
