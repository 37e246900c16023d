"""Where a zoo processor works: its folders under the data folder, and the run it serves.

Every personality gets a working folder ``<data_folder>/<personality id>/`` holding its
``outputs/`` (lollms' ``personality_output_path`` and personal paths) and one folder per
request under ``discussions/`` (lollms' discussion folder). Files there are served, keyed, at
``/api/v1/personality_files/<path below the data folder>``.

The processor's thread knows its run (:func:`current`): module-level lollms helpers
(``discussion_path_to_url``, ``build_image``...) and the sandbox's guards find the bridge and
the folders through it.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from lollms_server.personalities.zoo.bridge import Bridge

__all__ = ["FILES_ROUTE", "Run", "Workspace", "active", "current", "file_url", "working_folder"]

FILES_ROUTE = "/api/v1/personality_files/"
_local = threading.local()
_roots: set[Path] = set()  # every data folder in use (a processor's own threads, too)
_roots_lock = threading.Lock()


class Workspace:
    """The folders of one request to one personality (created by :meth:`open`)."""

    def __init__(self, root: Path, personality_id: str, request_id: str) -> None:
        self.root = root.resolve()
        home = (self.root / personality_id).resolve()
        if not home.is_relative_to(self.root) or home == self.root:
            raise ValueError(f"personality id {personality_id!r} leaves the data folder")
        self.home = home
        self.outputs = home / "outputs"
        self.discussion = home / "discussions" / request_id
        self._inputs: list[Path] = []

    def open(self) -> None:
        """Create the folders (the data folder too) and make their files servable."""
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.discussion.mkdir(parents=True, exist_ok=True)
        with _roots_lock:
            _roots.add(self.root)

    def add_input(self, path: Path) -> None:
        """A file the client sent (removed when the request ends)."""
        self._inputs.append(path)

    def close(self) -> None:
        """Remove the client's input files, then the discussion's empty folders (what the
        processor wrote stays, to be fetched)."""
        for path in self._inputs:
            path.unlink(missing_ok=True)
        if not self.discussion.is_dir():
            return
        folders = [p for p in self.discussion.rglob("*") if p.is_dir() and not p.is_symlink()]
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: kept
                folder.rmdir()
        with contextlib.suppress(OSError):
            self.discussion.rmdir()


@dataclass
class Run:
    """What a processor's thread serves: its folders and its bridge to the server."""

    workspace: Workspace
    bridge: Bridge


def current() -> Run | None:
    """The run of the calling thread (None outside a processor's own threads)."""
    return getattr(_local, "run", None)


@contextlib.contextmanager
def active(run: Run) -> Iterator[Run]:
    """Make ``run`` the calling thread's run for the duration."""
    previous = current()
    _local.run = run
    try:
        yield run
    finally:
        _local.run = previous


def working_folder() -> Path:
    """Where relative paths of the processor lead: its personality's working folder, or,
    outside a run (code run at import, a thread of its own), a private temporary folder."""
    run = current()
    if run is not None:
        return run.workspace.home
    folder = Path(tempfile.gettempdir()) / "lollms_server_zoo"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def file_url(path: str | Path) -> str:
    """The URL at which the server serves ``path``, a file under a data folder."""
    real = Path(path).resolve()
    with _roots_lock:
        roots = sorted(_roots, key=lambda r: len(r.parts), reverse=True)
    for root in roots:
        if real.is_relative_to(root):
            return FILES_ROUTE + quote(real.relative_to(root).as_posix())
    raise ValueError(
        f"{Path(path).name} is not under the personalities' data folder: only files written "
        "there (the discussion folder, the personality's outputs) are served"
    )
