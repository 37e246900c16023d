"""What a personality needs installed, and whether it is.

Three sources, none of them run: the ``dependencies`` of its file (distribution names), the
modules its script imports (read from the source, not imported; the standard library, the
``lollms`` layer's names and the script's own sibling modules left out), and the packages
its script asks ``pipmaster``/``PackageManager`` to install (string arguments of those calls).
The server never installs any of them (see ``zoo.sandbox``); an operator does.
"""

from __future__ import annotations

import ast
import importlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lollms_server.personalities.model import Personality
from lollms_server.personalities.packages import module_available, requirement_met

__all__ = ["Need", "missing_packages", "needs", "refresh"]

NeedKind = Literal["dependency", "import", "install"]
# Names a processor imports that the server provides itself.
_PROVIDED = {"lollms", "ascii_colors", "pipmaster", "lollms_server"}
_INSTALL_CALLS = {
    "install",
    "install_if_missing",
    "install_multiple",
    "install_multiple_if_not_installed",
    "install_or_update",
    "install_or_update_multiple",
    "install_version",
    "ensure_packages",
    "install_package",
}
_scans: dict[Path, tuple[float, list[tuple[NeedKind, str, str, bool]]]] = {}
_scans_lock = threading.Lock()


@dataclass(frozen=True)
class Need:
    """One thing a personality needs: ``name`` (a distribution for ``dependency`` and
    ``install``, a module for ``import``), where it comes from, and whether it is there."""

    name: str
    kind: NeedKind
    source: str
    optional: bool  # an import inside ``try: ... except ImportError``
    installed: bool


def _strings(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    if isinstance(node, ast.Dict):
        return [
            k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
        ]
    return []


def _handled(handler: ast.ExceptHandler) -> set[str]:
    kind = handler.type
    if kind is None:
        return {"BaseException"}
    items = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    return {i.id for i in items if isinstance(i, ast.Name)}


def _guarded_lines(tree: ast.AST) -> set[int]:
    """Lines of ``try`` bodies that handle ImportError (optional imports)."""
    catching = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_handled(h) & catching for h in node.handlers):
            for statement in node.body:
                lines.update(range(statement.lineno, (statement.end_lineno or 0) + 1))
    return lines


def _local(module: str, script: Path) -> bool:
    folders = {script.parent, script.parent.parent}
    return any((f / f"{module}.py").is_file() or (f / module).is_dir() for f in folders)


def _scan(script: Path) -> list[tuple[NeedKind, str, str, bool]]:
    """``(kind, name, where, optional)`` for each import and install call of ``script``."""
    tree = ast.parse(script.read_text(encoding="utf-8", errors="replace"), str(script))
    optional = _guarded_lines(tree)
    found: list[tuple[NeedKind, str, str, bool]] = []
    for node in ast.walk(tree):
        line: int = getattr(node, "lineno", 0)
        where = f"{script.parent.name}/{script.name} line {line}"
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        for module in modules:
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in _PROVIDED or _local(top, script):
                continue
            found.append(("import", top, where, line in optional))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr == "safe_import":  # safe_import(module, distribution)
                found += [("import", m, where, False) for m in _strings(node.args[0])]
            elif node.func.attr in _INSTALL_CALLS:
                found += [("install", p, where, False) for p in _strings(node.args[0])]
    return found


def _script_needs(script: Path) -> list[tuple[NeedKind, str, str, bool]]:
    try:
        mtime = script.stat().st_mtime
    except OSError:
        return []
    with _scans_lock:
        cached = _scans.get(script)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        scanned = _scan(script)
    except (SyntaxError, ValueError, OSError):
        scanned = []  # the script's own load reports it
    with _scans_lock:
        _scans[script] = (mtime, scanned)
    return scanned


def refresh() -> None:
    """See packages installed since the last look (call once before a round of checks)."""
    importlib.invalidate_caches()


def needs(personality: Personality) -> list[Need]:
    """Everything ``personality`` needs, each once, with whether it is installed (as of the
    last :func:`refresh`)."""
    found: dict[tuple[str, str], Need] = {}
    for dependency in personality.dependencies:
        if dependency.strip():
            key = ("dependency", dependency.strip())
            found[key] = Need(key[1], "dependency", "dependencies", False, requirement_met(key[1]))
    script = personality.script
    if script is not None and script.available:
        for kind, name, where, optional in _script_needs(script.path):
            if (kind, name) in found:
                continue
            installed = module_available(name) if kind == "import" else requirement_met(name)
            found[(kind, name)] = Need(name, kind, where, optional, installed)
    return list(found.values())


def missing_packages(personality: Personality) -> list[str]:
    """The names of what ``personality`` needs and does not find (optional imports aside)."""
    return sorted({n.name for n in needs(personality) if not n.installed and not n.optional})
