"""``lollms-server personalities``: what the configured personalities need installed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import click

from lollms_server.personalities.deps import Need, needs, refresh
from lollms_server.personalities.model import Personality
from lollms_server.personalities.packages import distribution_for

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


_CONFIG = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("LOLLMS_CONFIG", "config.toml"),
    show_default="$LOLLMS_CONFIG or ./config.toml",
    help="Path of config.toml.",
)


def _named(found: list[Personality], name: str) -> Personality:
    wanted = name.lower()
    for p in found:
        if wanted in (p.id.lower(), p.folder_name.lower(), p.name.lower()):
            return p
    click.echo(f"Error: no personality '{name}' ({len(found)} found).", err=True)
    sys.exit(2)


@personalities.command("deps")
@click.argument("name", required=False)
@_CONFIG
def deps(name: str | None, config_path: Path) -> None:
    """What each scripted personality (or NAME) needs installed, and whether it is:
    its file's `dependencies`, the modules its script imports, the packages its script asks
    pipmaster/PackageManager to install. The server installs none of them; install what is
    MISSING into the server's environment (`install-deps NAME`). Exit 1 when anything is."""
    found = _registry(config_path)
    if name is not None:
        chosen = [_named(found, name)]
    else:
        chosen = [p for p in found if p.scripted]
        if not chosen:
            click.echo("No scripted personality found.")
    refresh()
    missing = sum(_report(p) for p in chosen)
    if missing:
        click.echo(
            f"{missing} missing: install them into the server's environment "
            "(lollms-server personalities install-deps NAME)."
        )
        sys.exit(1)


def _to_install(personality: Personality) -> list[str]:
    """pip requirements for what ``personality`` needs and lacks (optional imports aside)."""
    wanted = [
        distribution_for(n.name) if n.kind == "import" else n.name
        for n in needs(personality)
        if not n.installed and not n.optional
    ]
    return list(dict.fromkeys(wanted))


@personalities.command("install-deps")
@click.argument("name")
@_CONFIG
@click.option("--dry-run", is_flag=True, help="Print the pip command, install nothing.")
@click.option("--yes", "-y", is_flag=True, help="Install without asking.")
@click.argument("pip_args", nargs=-1, type=click.UNPROCESSED)
def install_deps(
    name: str, config_path: Path, dry_run: bool, yes: bool, pip_args: tuple[str, ...]
) -> None:
    """Install what personality NAME needs and lacks into the server's own environment,
    with pip, after showing the command (the server itself never installs anything).
    Options for pip follow `--`, e.g. `install-deps NAME -- --index-url URL`."""
    personality = _named(_registry(config_path), name)
    refresh()
    packages = _to_install(personality)
    if not packages:
        click.echo(f"{personality.id}: nothing to install.")
        return
    command = [sys.executable, "-m", "pip", "install", *pip_args, *packages]
    click.echo(" ".join(command))
    if dry_run:
        return
    if not yes and not click.confirm("Install these into the server's environment?"):
        sys.exit(1)
    code = subprocess.run(command, check=False).returncode  # noqa: S603 - shown, confirmed
    if code:
        click.echo(f"pip failed (exit status {code}).", err=True)
        sys.exit(code)
