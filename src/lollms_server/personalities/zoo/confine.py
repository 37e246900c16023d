"""What a zoo processor's threads may do to the machine, checked by an audit hook.

Python raises an audit event (:func:`sys.addaudithook`) before opening a file, renaming,
removing, connecting a socket, resolving a host name, starting a process... One hook,
installed the first time a processor is confined, refuses (``PermissionError``) the events
of a thread while it runs a processor (its import, its construction, its ``run_workflow``),
whatever code raises them: the processor's own or a library it calls (``pathlib``,
``shutil``, ``requests``, ``httpx``...). Other threads (the server's) are not affected.

- **Writes** (opening for writing, creating, renaming, removing, linking, changing modes or
  times, opening an sqlite database) only below the personality's working folder
  (``<data folder>/<personality id>/``; while the module is imported, a private temporary
  folder) and ``os.devnull``.
- **Network**: connecting, binding, sending to an address and resolving host names are
  refused, unless the personality's ``config.yaml`` (or ``SOUL.md`` front matter) says
  ``network: true``.
- **The server's process**: signals to it (``os.kill``, ``os.killpg``), ``fork`` and
  ``exec`` are refused.

In a processor's own process (:mod:`.child`), :func:`hold_process` holds every thread to
the policy, whatever started it, and the server's process may not be signalled either.

Limits: native code (``ctypes``, extension modules) is not checked, and programs started
with ``subprocess`` run without the hook (in a processor's process they keep its working
folder, environment and resource limits).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

__all__ = ["Policy", "confined", "hold_process", "network_allowed", "policy"]

_local = threading.local()
_process_policy: Policy | None = None  # a processor's own process: every thread held
_protected: set[int] = set()  # processes it may not signal besides its own (the server)
_installed = False
_install_lock = threading.Lock()
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@dataclass(frozen=True)
class Policy:
    """What one processor's thread may do: where it writes, whether it reaches the network."""

    personality: str
    writable: tuple[Path, ...]
    network: bool = False
    # Why a program launch is refused (a package install: its refusal, logged), else None;
    # checked on every launch in the process, whatever code asks (a library's pipmaster).
    launch_refusal: Callable[[Any], str | None] | None = None


def policy() -> Policy | None:
    """The calling thread's policy (None: not a processor's thread)."""
    return getattr(_local, "policy", None) or _process_policy


@contextlib.contextmanager
def confined(rules: Policy) -> Iterator[Policy]:
    """Hold the calling thread to ``rules`` for the duration."""
    _install()
    previous = policy()
    # A thread's rules keep the launch check of the rules around them (the process's).
    refusal = rules.launch_refusal or (previous.launch_refusal if previous else None)
    _local.policy = dataclasses.replace(
        rules, writable=tuple(p.resolve() for p in rules.writable), launch_refusal=refusal
    )
    try:
        yield rules
    finally:
        _local.policy = previous


def network_allowed(folder: Path) -> bool:
    """``network: true`` in the personality's ``config.yaml`` or ``SOUL.md`` front matter."""
    settings: Any = None
    with contextlib.suppress(OSError, yaml.YAMLError, ValueError):
        config = folder / "config.yaml"
        if config.is_file():
            settings = yaml.safe_load(config.read_text(encoding="utf-8"))
        else:
            text = (folder / "SOUL.md").read_text(encoding="utf-8-sig")
            if text.startswith("---"):
                settings = yaml.safe_load(text[3:].split("\n---", 1)[0])
    return isinstance(settings, dict) and settings.get("network") is True


# -- the hook -----------------------------------------------------------------------------------
def hold_process(rules: Policy, server_pid: int) -> None:
    """Hold every thread of this process (a processor's own process, see ``zoo.child``) to
    ``rules`` from now on, for good; ``server_pid`` may not be signalled either."""
    global _process_policy
    _install()
    _protected.add(server_pid)
    _process_policy = rules


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


def _hook(event: str, args: tuple[Any, ...]) -> None:
    rules = getattr(_local, "policy", None) or _process_policy
    if rules is None or getattr(_local, "checking", False):
        return
    check = _CHECKS.get(event)
    if check is None:
        return
    _local.checking = True  # the checks' own file system calls are not checked
    try:
        check(rules, event, args)
    finally:
        _local.checking = False


def _refuse(rules: Policy, what: str) -> None:
    raise PermissionError(f"personality '{rules.personality}' may not {what}")


def _inside(rules: Policy, path: Any) -> bool:
    if isinstance(path, int) or path is None:
        return True  # an open file descriptor: checked when it was opened
    try:
        real = Path(os.fsdecode(path)).resolve()
    except (TypeError, ValueError, OSError):
        return False
    if str(real) == os.devnull:
        return True
    return any(real == root or real.is_relative_to(root) for root in rules.writable)


def _writes(rules: Policy, event: str, *paths: Any) -> None:
    for path in paths:
        if not _inside(rules, path):
            where = os.path.abspath(os.fsdecode(path))
            _refuse(
                rules,
                f"write outside its working folder ({event} {where}); it may write in "
                f"{rules.writable[0]}",
            )


def _open(rules: Policy, event: str, args: tuple[Any, ...]) -> None:
    path, mode, flags = (list(args) + [None, None, None])[:3]
    writing = isinstance(mode, str) and any(c in mode for c in "wax+")
    writing = writing or (isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
    if writing:
        _writes(rules, "open", path)


def _first(rules: Policy, event: str, args: tuple[Any, ...]) -> None:
    _writes(rules, event, args[0])


def _two(rules: Policy, event: str, args: tuple[Any, ...]) -> None:
    _writes(rules, event, args[0], args[1])


def _second(rules: Policy, event: str, args: tuple[Any, ...]) -> None:
    _writes(rules, event, args[1])


def _database(rules: Policy, event: str, args: tuple[Any, ...]) -> None:
    database = args[0] if args else None
    if isinstance(database, str | bytes | os.PathLike) and os.fsdecode(database) != ":memory:":
        _writes(rules, event, database)  # sqlite opens (and creates) its file natively


def _network(rules: Policy, event: str, args: tuple[Any, ...]) -> None:
    if rules.network:
        return
    where = args[1] if event in _ADDRESSED else args[0]
    _refuse(
        rules,
        f"use the network ({event} {where!r}): network access is off unless its config.yaml "
        "says 'network: true'",
    )


def _signal(rules: Policy, event: str, args: tuple[Any, ...]) -> None:
    pid = args[0]
    own = pid == os.getpid() or pid == os.getpgid(0) or pid in _protected
    if isinstance(pid, int) and (pid <= 0 or own):
        _refuse(rules, f"signal the server's process ({event})")


def _process(rules: Policy, event: str, args: tuple[Any, ...]) -> None:
    _refuse(rules, f"fork or replace the server's process ({event})")


def _launch(rules: Policy, event: str, args: tuple[Any, ...]) -> None:
    """A program started (``subprocess``, ``os.system``, ``os.posix_spawn``, ``os.spawn*``):
    refused when it installs packages."""
    command = _LAUNCHED[event](args)
    why = rules.launch_refusal(command) if rules.launch_refusal is not None else None
    if why is not None:
        raise PermissionError(why)


_LAUNCHED: dict[str, Callable[[tuple[Any, ...]], Any]] = {
    "subprocess.Popen": lambda args: args[1],  # (executable, args, cwd, env)
    "os.system": lambda args: args[0],  # (command,)
    "os.posix_spawn": lambda args: args[1],  # (path, argv, env)
    "os.spawn": lambda args: args[2],  # (mode, path, args, env)
}


_ADDRESSED = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}
_Check = Callable[[Policy, str, tuple[Any, ...]], None]
_CHECKS: dict[str, _Check] = {
    "open": _open,
    **{
        event: _first
        for event in (
            "os.mkdir",
            "os.remove",
            "os.rmdir",
            "os.chmod",
            "os.chown",
            "os.chflags",
            "os.lchflags",
            "os.truncate",
            "os.utime",
            "os.setxattr",
            "os.removexattr",
            "shutil.rmtree",
            "shutil.chown",
        )
    },
    "os.rename": _two,
    "os.link": _second,
    "os.symlink": _second,
    "shutil.copyfile": _second,
    "shutil.copymode": _second,
    "shutil.copystat": _second,
    "shutil.copytree": _second,
    "shutil.move": _two,
    "sqlite3.connect": _database,
    **{
        event: _network
        for event in (
            "socket.connect",
            "socket.bind",
            "socket.sendto",
            "socket.sendmsg",
            "socket.getaddrinfo",
            "socket.gethostbyname",
            "socket.gethostbyaddr",
            "socket.getnameinfo",
        )
    },
    "os.kill": _signal,
    "os.killpg": _signal,
    "os.fork": _process,
    "os.forkpty": _process,
    "os.exec": _process,
    **dict.fromkeys(_LAUNCHED, _launch),
}
