"""``lollms-server personalities``: what the configured personalities need installed."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from lollms_server.personalities.deps import Need, needs, refresh
from lollms_server.personalities.model import Personality

__all__ = ["personalities"]


@click.group()
def personalities() -> None:
    """Personalities found in [paths] personalities."""


def _registry(config_path: Path) -> list[Personality]:
    from lollms_server.cli import _load
    from lollms_server.personalities.registry import PersonalityRegistry

    settings = _load(config_path)
    logging.basicConfig(level=logging.CRITICAL)  # discovery's warnings: `check` shows them
    registry = PersonalityRegistry.discover(
        settings.resolve_path(p) for p in settings.paths.personalities
    )
    return registry.all()


def _line(need: Need) -> str:
    state = "ok" if need.installed else "optional" if need.optional else "MISSING"
    what = {"dependency": "dependency", "import": "import", "install": "installs"}[need.kind]
    return f"  {state:<8} {need.name:<28} {what:<10} {need.source}"


def _report(personality: Personality) -> int:
    """Print one personality's needs; how many are missing (optional ones aside)."""
    kind = f"{personality.script.kind} script" if personality.script else "no script"
    if personality.script is not None and not personality.script.available:
        kind += " (missing)"
    click.echo(f"{personality.id} ({kind})")
    found = needs(personality)
    if not found:
        click.echo("  nothing to install")
    for need in sorted(found, key=lambda n: (n.installed, n.kind, n.name.lower())):
        click.echo(_line(need))
    return sum(1 for n in found if not n.installed and not n.optional)


@personalities.command("deps")
@click.argument("name", required=False)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("LOLLMS_CONFIG", "config.toml"),
    show_default="$LOLLMS_CONFIG or ./config.toml",
    help="Path of config.toml.",
)
def deps(name: str | None, config_path: Path) -> None:
    """What each scripted personality (or NAME) needs installed, and whether it is:
    its file's `dependencies`, the modules its script imports, the packages its script asks
    pipmaster/PackageManager to install. The server installs none of them; install what is
    MISSING into the server's environment (pip install ...). Exit 1 when anything is."""
    found = _registry(config_path)
    if name is not None:
        wanted = name.lower()
        chosen = [
            p for p in found if wanted in (p.id.lower(), p.folder_name.lower(), p.name.lower())
        ]
        if not chosen:
            click.echo(f"Error: no personality '{name}' ({len(found)} found).", err=True)
            sys.exit(2)
    else:
        chosen = [p for p in found if p.scripted]
        if not chosen:
            click.echo("No scripted personality found.")
    refresh()
    missing = sum(_report(p) for p in chosen)
    if missing:
        click.echo(
            f"{missing} missing: install them into the server's environment (an import's "
            "package may have another name: cv2 is opencv-python)."
        )
        sys.exit(1)
