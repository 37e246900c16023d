"""Guards that keep a zoo processor (third-party code) from changing the server's machine.

They act inside the processor's own module, through the ``__import__`` and builtins it gets
(see :func:`lollms_server.personalities.zoo.import_processor`):

- package installs are refused, whatever asks for them: ``pipmaster``, lollms'
  ``PackageManager``, or ``subprocess``/``os.system`` running pip, npm, conda, apt... The call
  fails the way a failed install does (``False``, exit status 1, ``CalledProcessError``), the
  refusal naming the packages is logged and shown to the client as a warning, and a later
  ``import`` of the package fails naming the refusal. An operator installs what a personality
  needs (``lollms-server personalities deps`` lists it).
- relative paths lead to the personality's working folder, not the server's: ``open``,
  ``os.getcwd``, ``os.system`` and subprocesses (their default ``cwd``); ``os.chdir``,
  ``os._exit``, ``fork`` and ``exec*`` are refused.
- the server's secrets are not in the processor's environment: its ``os.environ`` and
  ``os.getenv`` (and the environment of the processes it starts) leave out every variable
  whose name looks like a secret (``KEY``, ``TOKEN``, ``SECRET``, ``PASSWORD``,
  ``CREDENTIAL``, ``AUTH``...), every ``LOLLMS_*`` variable (they configure the server, API
  keys included) and every value holding credentials in a URL. What a processor sets or
  removes there stays its personality's own (the server's environment is not changed).

- threads it starts (its ``threading.Thread``) keep its run and its confinement.

These act on the processor's own module; :mod:`.confine` adds process-wide checks (writes
only in the working folder, no network unless allowed) on whatever code its thread runs. A
library that reads ``os.environ`` itself still sees the server's environment, and threads a
library starts for it (``concurrent.futures``...) are not confined.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from lollms_server.personalities.zoo.confine import confined, policy
from lollms_server.personalities.zoo.runtime import active, current, working_folder

__all__ = [
    "ConfinedThread",
    "InstallRefused",
    "ProcessorEnviron",
    "is_secret",
    "guarded_module",
    "guarded_open",
    "installer_command",
    "refuse_install",
    "refused_note",
]

logger = logging.getLogger("lollms_server.personalities.sandbox")

_MANAGERS = {
    "pip",
    "pipx",
    "uv",
    "conda",
    "mamba",
    "micromamba",
    "npm",
    "pnpm",
    "yarn",
    "bun",
    "apt",
    "apt-get",
    "dnf",
    "yum",
    "brew",
    "gem",
    "cargo",
}
_INSTALLING = {"install", "i", "add", "update", "upgrade", "uninstall", "remove", "ci", "sync"}
_SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}
_WRAPPERS = {"sudo", "env", "exec", "nohup", "command"}
_refused: dict[str, str] = {}  # package (import name form) -> how it was asked for
_refused_lock = threading.Lock()


class InstallRefused(PermissionError):
    """A package install a processor asked for (raised where failing is the only answer)."""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name.strip().lower())


def _package_name(requirement: str) -> str:
    """``numpy>=1.2`` / ``git+https://.../x.git`` / ``x[extra]`` -> the distribution name."""
    text = requirement.strip().rstrip("/").removesuffix(".git")
    if "://" in text or text.startswith(("git+", "/")):
        text = text.rsplit("/", 1)[-1]
    return re.split(r"[\s\[<>=!~;@]", text, maxsplit=1)[0] or requirement


def refuse_install(packages: Iterable[str], via: str) -> str:
    """Refuse installing ``packages`` (asked for through ``via``): log it, tell the client
    when a request is running, remember it for the import error that follows. Returns the
    message."""
    names = [_package_name(p) for p in packages if str(p).strip()] or ["(unnamed)"]
    message = (
        f"installing {', '.join(names)} ({via}) was refused: lollms_server never installs "
        "packages for a personality; an operator installs them (`lollms-server personalities "
        "deps` lists what each personality needs)"
    )
    with _refused_lock:
        for name in names:
            _refused[_normal(name)] = via
    logger.warning("%s", message)
    run = current()
    if run is not None:
        run.bridge.notice("warning", message)
    return message


def refused_note(module: str | None) -> str:
    """`` (installing it was refused ...)`` when ``module``'s package install was refused."""
    if not module:
        return ""
    with _refused_lock:
        via = _refused.get(_normal(module.split(".")[0]))
    return f" (installing it through {via} was refused: see the log)" if via else ""


# -- commands -------------------------------------------------------------------------------
def _argv_lists(command: Any) -> list[list[str]]:
    if isinstance(command, str | bytes):
        text = command.decode() if isinstance(command, bytes) else command
        try:
            words = shlex.split(text, posix=True)
        except ValueError:
            words = text.split()
    elif isinstance(command, Iterable):
        words = [os.fsdecode(w) if isinstance(w, bytes | os.PathLike) else str(w) for w in command]
    else:
        return []
    commands: list[list[str]] = [[]]
    for word in words:
        if word in _SHELL_OPERATORS:
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def _program(word: str) -> str:
    name = Path(word).name.lower().removesuffix(".exe")
    return re.sub(r"[\d.]+$", "", name) or name


def _installs(argv: list[str]) -> tuple[str, list[str]] | None:
    while argv and (argv[0] in _WRAPPERS or "=" in argv[0] or argv[0].startswith("-")):
        argv = argv[1:]
    if not argv:
        return None
    program = _program(argv[0])
    if program.startswith("python") and len(argv) > 2 and argv[1] == "-m":
        argv, program = argv[2:], _program(argv[2])
    if program == "uv" and len(argv) > 1 and argv[1] == "pip":
        argv, program = argv[1:], "uv pip"
    if program not in _MANAGERS and program != "uv pip":
        return None
    words = [w for w in argv[1:] if not w.startswith("-")]
    if not words or words[0] not in _INSTALLING:
        return None
    return program, words[1:]


def installer_command(command: Any) -> tuple[str, list[str]] | None:
    """``(package manager, packages)`` when ``command`` (a string or argv, shell operators
    allowed) runs a package manager's install, update or removal."""
    for argv in _argv_lists(command):
        found = _installs(argv)
        if found is not None:
            return found
    return None


def install_refusal(command: Any) -> str | None:
    """The refusal (logged, shown, remembered) of ``command`` when it runs a package
    manager's install; None for any other command."""
    found = installer_command(command)
    if found is None:
        return None
    program, packages = found
    return refuse_install(packages, f"`{program}` run by the processor")


def _command(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("args")


def _in_folder(kwargs: dict[str, Any]) -> dict[str, Any]:
    if kwargs.get("cwd") is None:
        kwargs["cwd"] = str(working_folder())
    if kwargs.get("env") is None:
        kwargs["env"] = dict(ENVIRON)
    return kwargs


# -- the environment ------------------------------------------------------------------------
_SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSW|PASSPHRASE|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|SIGNATURE"
    r"|CERT|DSN|^LOLLMS_",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"://[^/\s@]*:[^/\s@]*@")


def is_secret(name: str, value: str) -> bool:
    """Whether an environment variable is kept from processors."""
    return bool(_SECRET_NAME.search(name) or _URL_CREDENTIALS.search(value))


class ProcessorEnviron(MutableMapping[str, str]):
    """``os.environ`` as processors see it: the server's, less its secrets, plus what each
    personality set (kept per personality, never in the server's environment)."""

    def __init__(self) -> None:
        self._own: dict[str, tuple[dict[str, str], set[str]]] = {}
        self._lock = threading.Lock()

    def _changes(self) -> tuple[dict[str, str], set[str]]:
        rules = policy()
        return self._own.setdefault(rules.personality if rules else "", ({}, set()))

    def _visible(self) -> dict[str, str]:
        with self._lock:
            own, removed = self._changes()
            seen = {k: v for k, v in os.environ.items() if k not in removed and not is_secret(k, v)}
            seen.update(own)
        return seen

    def __getitem__(self, key: str) -> str:
        return self._visible()[key]

    def __setitem__(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"str expected, not {type(value).__name__}")
        with self._lock:
            own, removed = self._changes()
            own[key] = value
            removed.discard(key)

    def __delitem__(self, key: str) -> None:
        if key not in self._visible():
            raise KeyError(key)
        with self._lock:
            own, removed = self._changes()
            own.pop(key, None)
            removed.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._visible())

    def __len__(self) -> int:
        return len(self._visible())

    def copy(self) -> dict[str, str]:
        """A plain dict, as ``os.environ.copy()`` gives."""
        return self._visible()


ENVIRON = ProcessorEnviron()


def _getenv(key: str, default: Any = None) -> Any:
    return ENVIRON.get(key, default)


def _putenv(key: str, value: str) -> None:
    ENVIRON[key] = value


def _unsetenv(key: str) -> None:
    ENVIRON.pop(key, None)


def _output(kwargs: dict[str, Any], text: str) -> str | bytes:
    wants_text = kwargs.get("text") or kwargs.get("universal_newlines") or kwargs.get("encoding")
    return text if wants_text else text.encode()


# -- subprocess -----------------------------------------------------------------------------
def _run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    command = _command(args, kwargs)
    message = install_refusal(command)
    if message is None:
        return subprocess.run(*args, **_in_folder(kwargs))  # noqa: S603 (the processor's)
    empty, error = _output(kwargs, ""), _output(kwargs, message)
    if kwargs.get("check"):
        raise subprocess.CalledProcessError(1, command, output=empty, stderr=error)
    return subprocess.CompletedProcess(command, 1, stdout=empty, stderr=error)


def _call(*args: Any, **kwargs: Any) -> int:
    if install_refusal(_command(args, kwargs)) is not None:
        return 1
    return subprocess.call(*args, **_in_folder(kwargs))  # noqa: S603 (the processor's)


def _check_call(*args: Any, **kwargs: Any) -> int:
    command = _command(args, kwargs)
    if install_refusal(command) is not None:
        raise subprocess.CalledProcessError(1, command)
    return subprocess.check_call(*args, **_in_folder(kwargs))  # noqa: S603 (processor's)


def _check_output(*args: Any, **kwargs: Any) -> Any:
    command = _command(args, kwargs)
    message = install_refusal(command)
    if message is not None:
        raise subprocess.CalledProcessError(
            1, command, output=_output(kwargs, ""), stderr=_output(kwargs, message)
        )
    return subprocess.check_output(*args, **_in_folder(kwargs))  # noqa: S603 (processor's)


def _popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
    message = install_refusal(_command(args, kwargs))
    if message is not None:
        raise InstallRefused(message)
    return subprocess.Popen(*args, **_in_folder(kwargs))  # noqa: S603 (the processor's)


def _getstatusoutput(cmd: str, *args: Any, **kwargs: Any) -> tuple[int, str]:
    message = install_refusal(cmd)
    if message is not None:
        return 1, message
    done = subprocess.run(  # noqa: S602 (the processor's own shell command)
        cmd, shell=True, capture_output=True, text=True, **_in_folder({})
    )
    return done.returncode, (done.stdout + done.stderr).removesuffix("\n")


def _getoutput(cmd: str, *args: Any, **kwargs: Any) -> str:
    return _getstatusoutput(cmd)[1]


# -- os -------------------------------------------------------------------------------------
def _system(command: str) -> int:
    if install_refusal(command) is not None:
        return 1 << 8  # a wait status: exit code 1
    code = subprocess.call(  # noqa: S602 (the processor's own command)
        command, shell=True, cwd=str(working_folder()), env=dict(ENVIRON)
    )
    return code << 8 if code >= 0 else -code


def _popen_shell(command: str, mode: str = "r", buffering: int = -1) -> Any:
    message = install_refusal(command)
    if message is not None:
        raise InstallRefused(message)
    if mode not in ("r", "w"):
        raise ValueError(f"invalid mode {mode!r}")
    reading = mode == "r"
    process = subprocess.Popen(  # noqa: S602 (the processor's own command, as os.popen runs it)
        command,
        shell=True,
        text=True,
        bufsize=buffering,
        stdout=subprocess.PIPE if reading else None,
        stdin=None if reading else subprocess.PIPE,
        **_in_folder({}),
    )
    stream = process.stdout if reading else process.stdin
    return os._wrap_close(stream, process)  # type: ignore[arg-type]  # os.popen's own


def _refused_call(what: str) -> Callable[..., NoReturn]:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise PermissionError(f"a personality may not {what} (it runs inside the server)")

    return refuse


def _getcwd() -> str:
    return str(working_folder())


_OS: dict[str, Any] = {
    "system": _system,
    "popen": _popen_shell,
    "getcwd": _getcwd,
    "environ": ENVIRON,
    "getenv": _getenv,
    "putenv": _putenv,
    "unsetenv": _unsetenv,
    "chdir": _refused_call("change the server's working directory"),
    "fchdir": _refused_call("change the server's working directory"),
    "_exit": _refused_call("end the server's process"),
    "abort": _refused_call("end the server's process"),
    "fork": _refused_call("fork the server's process"),
    "forkpty": _refused_call("fork the server's process"),
    **{
        name: _refused_call("replace the server's process")
        for name in ("execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp")
    },
    "execvpe": _refused_call("replace the server's process"),
}
_SUBPROCESS: dict[str, Any] = {
    "run": _run,
    "call": _call,
    "check_call": _check_call,
    "check_output": _check_output,
    "Popen": _popen,
    "getoutput": _getoutput,
    "getstatusoutput": _getstatusoutput,
}


class _GuardedModule(ModuleType):
    """A module whose guarded names are replaced; everything else is the real module's."""

    def __init__(self, real: ModuleType, guarded: dict[str, Any]) -> None:
        super().__init__(real.__name__, real.__doc__)
        self.__dict__.update(guarded)
        self.__dict__["_real_module"] = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_real_module"], name)


class ConfinedThread(threading.Thread):
    """``threading.Thread`` as processors see it: a thread keeps the run and the
    confinement (:mod:`.confine`) of the thread that started it."""

    def start(self) -> None:
        self._zoo_run = current()
        self._zoo_policy = policy()
        super().start()

    def run(self) -> None:
        with contextlib.ExitStack() as stack:
            if self._zoo_run is not None:
                stack.enter_context(active(self._zoo_run))
            if self._zoo_policy is not None:
                stack.enter_context(confined(self._zoo_policy))
            super().run()


_GUARDED = {
    "os": _GuardedModule(os, _OS),
    "subprocess": _GuardedModule(subprocess, _SUBPROCESS),
    "threading": _GuardedModule(threading, {"Thread": ConfinedThread}),
}


def guarded_module(name: str) -> ModuleType | None:
    """The guarded stand-in of module ``name`` (``os``, ``subprocess``, ``threading``), or
    None."""
    return _GUARDED.get(name)


def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
    """``open``, with relative paths in the personality's working folder."""
    if isinstance(file, str | os.PathLike) and not Path(os.fspath(file)).is_absolute():
        file = working_folder() / os.fspath(file)
    return builtins.open(file, *args, **kwargs)
