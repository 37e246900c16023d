"""The ``lollms-server`` command: serve, init, keys, check."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import click

from lollms_server.config import Settings, load_config
from lollms_server.errors import ConfigError
from lollms_server.security.keys import generate_key, hash_key
from lollms_server.security.redact import SecretFilter

__all__ = ["main"]

CONFIG_ENV = "LOLLMS_CONFIG"
LOG_LEVELS = ["critical", "error", "warning", "info", "debug"]

config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get(CONFIG_ENV, "config.toml"),
    show_default="$LOLLMS_CONFIG or ./config.toml",
    help="Path of config.toml.",
)


def _fail_config(exc: ConfigError) -> NoReturn:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(2)


def _load(path: Path) -> Settings:
    try:
        return load_config(path)
    except ConfigError as exc:
        _fail_config(exc)


def _template() -> str:
    return resources.files("lollms_server").joinpath("data/config.toml").read_text("utf-8")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretFilter())  # URL credentials never reach a log line
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # HTTP clients log every upstream request at INFO: noise at the default level.
        for name in ("httpx", "httpx2", "httpcore", "openai", "ollama"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging set-up, with two filters: its error handler drops URL credentials as
    ours do (its loggers do not reach the root handlers; the access log's formatter needs its
    records untouched), and its record of an exception that the app's error handler already
    logged (with the traceback, secrets removed) is dropped."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    from lollms_server.api.errors import AlreadyLogged

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"secrets": {"()": SecretFilter}, "once": {"()": AlreadyLogged}}
    config["handlers"]["default"]["filters"] = ["secrets"]
    config["loggers"]["uvicorn.error"]["filters"] = ["once"]
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lollms_server")
def main() -> None:
    """lollms_server: one secured API in front of your local and remote AI backends."""


@main.command()
@config_option
@click.option("--host", help="Address to listen on (overrides [server] host).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (overrides [server] port).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="Overrides [server] log_level.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="API worker processes on Ray (overrides [cluster] workers; implies --cluster local "
    "when no cluster is configured).",
)
@click.option(
    "--cluster",
    "cluster_address",
    help="'local' or the address of a Ray cluster (overrides [cluster] address).",
)
def serve(
    config_path: Path,
    host: str | None,
    port: int | None,
    log_level: str | None,
    workers: int | None,
    cluster_address: str | None,
) -> None:
    """Start the HTTP server (on Ray with --workers N or --cluster ADDRESS)."""
    settings = _load(config_path)
    if host:
        settings.server.host = host
    if port is not None:
        settings.server.port = port
    level = log_level or settings.server.log_level
    _setup_logging(level)
    if cluster_address:
        settings.cluster.address = cluster_address
    if workers is not None:
        settings.cluster.workers = workers
        if workers > 1 and not settings.cluster.enabled:
            settings.cluster.address = "local"
    if settings.cluster.enabled:
        _serve_cluster(settings, level)
        return
    import uvicorn

    from lollms_server.app import create_app
    from lollms_server.server.connections import raise_open_file_limit, uvicorn_options

    try:
        app = create_app(settings)
    except ConfigError as exc:
        _fail_config(exc)
    raise_open_file_limit(settings.server.max_connections)
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=level,
        log_config=_uvicorn_log_config(),
        timeout_graceful_shutdown=5,
        # keep-alive, header and body timeouts, connection cap: see server/connections.py
        **uvicorn_options(settings.server),
    )


def _serve_cluster(settings: Any, level: str) -> None:
    from lollms_server.app import build_registry, check_references, check_security
    from lollms_server.bindings.manager import BindingManager
    from lollms_server.cluster import prepare_environment

    prepare_environment(settings.cluster.address)
    try:
        check_security(settings)
        check_references(settings, BindingManager.from_settings(settings, build_registry(settings)))
        from lollms_server.cluster.serve import run
    except ConfigError as exc:
        _fail_config(exc)
    except ImportError as exc:
        raise click.ClickException(
            f"[cluster] needs Ray ({exc}); install it with: pip install 'lollms_server[cluster]'"
        ) from None
    run(settings, level)


@main.group()
def cluster() -> None:
    """The Ray cluster behind a server started with --workers / --cluster."""


@cluster.command("status")
@config_option
@click.option("--address", help="Ray address (default: [cluster] address; 'local' means auto).")
def cluster_status(config_path: Path, address: str | None) -> None:
    """Print nodes, devices and memory per node, models and where they run, the queue."""
    settings = _load(config_path)
    try:
        import ray

        from lollms_server.cluster.runtime import SCHEDULER_NAME
    except ImportError:
        raise click.ClickException(
            "Ray is not installed: pip install 'lollms_server[cluster]'"
        ) from None
    target = address or settings.cluster.address or "auto"
    ray.init(
        address="auto" if target == "local" else target,
        namespace=settings.cluster.namespace,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        actor = ray.get_actor(SCHEDULER_NAME, namespace=settings.cluster.namespace)
    except ValueError:
        raise click.ClickException(
            f"no lollms_server scheduler in namespace '{settings.cluster.namespace}' of the Ray "
            f"cluster at {target}"
        ) from None
    for line in cluster_status_lines(ray.get(actor.status.remote())):
        click.echo(line)


def cluster_status_lines(status: dict[str, Any]) -> list[str]:
    """The cluster status as a few human-readable lines."""
    from lollms_server.resources.memory import format_bytes

    lines = [f"nodes: {len(status.get('nodes', []))}"]
    for node in status.get("nodes", []):
        lines.append(f"  {node['name']}  {node['address']}  ({node['node_id']})")
        for device in node["devices"]:
            d = status["devices"][device]
            lines.append(
                f"    {device}: {format_bytes(d['used_bytes'])} used of "
                f"{format_bytes(d['budget_bytes'])} ({d['source']})"
            )
    lines.append(f"models: {len(status['models'])}")
    for m in status["models"]:
        lines.append(
            f"  {m['binding_name']}/{m['model_name']}: {m['status']} on {m['device']}, "
            f"{m['active_generations']} running, {m['queued']} queued"
            + (", pinned" if m["pinned"] else "")
        )
    queue = status["queue"]
    lines.append(f"queue: {queue['depth']} of {queue['max_queue']}")
    return lines


@main.command()
@config_option
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--key-name", default="admin", show_default=True, help="Name of the first key.")
@click.option(
    "--personalities",
    "personalities",
    multiple=True,
    type=click.Path(),
    help="Personalities folder(s) for [paths] (repeatable).",
)
@click.option(
    "--functions",
    "functions",
    multiple=True,
    type=click.Path(),
    help="Functions folder(s) for [paths] (repeatable).",
)
def init(
    config_path: Path,
    force: bool,
    key_name: str,
    personalities: tuple[str, ...],
    functions: tuple[str, ...],
) -> None:
    """Write a commented config.toml with a fresh API key (printed once)."""
    import tomlkit

    if config_path.exists() and not force:
        click.echo(f"{config_path} already exists (use --force to overwrite).", err=True)
        sys.exit(1)
    _check_key_name(key_name)
    key = generate_key()
    document = tomlkit.parse(_template())
    for name, folders in (("personalities", personalities), ("functions", functions)):
        if folders:
            document["paths"][name] = list(folders)
    entries = _key_entries(document)
    entries.append(_key_table(key_name, key))
    _write_config(config_path, document)
    click.echo(f"Wrote {config_path}.")
    click.echo(f"API key '{key_name}' (shown once, only its sha256 is stored):\n\n    {key}\n")


@main.group()
def keys() -> None:
    """Manage API keys in config.toml (only their sha256 is stored)."""


def _check_key_name(name: str) -> None:
    from pydantic import ValidationError

    from lollms_server.config import ApiKeyEntry

    try:
        ApiKeyEntry(name=name, sha256="0" * 64)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]["msg"]
        click.echo(f"Error: invalid key name {name!r}: {problem}.", err=True)
        sys.exit(2)


def _key_table(name: str, key: str) -> Any:
    import tomlkit

    table = tomlkit.table()
    table.add("name", name)
    table.add("sha256", hash_key(key))
    return table


def _key_entries(document: Any) -> Any:
    """``[[security.api_keys]]`` of ``document``, as an array of tables whatever the file
    used (an inline ``api_keys = [...]`` or ``security = {...}`` becomes tables)."""
    import tomlkit
    from tomlkit.items import AoT, InlineTable

    security = document.get("security")
    if security is None or isinstance(security, InlineTable):
        table = tomlkit.table()
        for name, value in (security or {}).items():
            table[name] = value
        document["security"] = table
        security = document["security"]
    entries = security.get("api_keys")
    if not isinstance(entries, AoT):
        converted = tomlkit.aot()
        for entry in entries or ():
            table = tomlkit.table()
            for name, value in dict(entry).items():
                table[name] = value
            converted.append(table)
        security["api_keys"] = converted
    return security["api_keys"]


def _write_config(config_path: Path, document: Any) -> None:
    """Write ``document`` over ``config_path`` only if it still loads, atomically, readable by
    its owner only (it may hold secrets)."""
    import tempfile

    import tomlkit

    text = tomlkit.dumps(document)
    folder = config_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
            out.write(text)
    except OSError as exc:
        click.echo(f"Error: cannot write {config_path}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    try:
        load_config(temp)
    except ConfigError as exc:
        os.unlink(temp)
        where = f"key '{exc.key}': " if exc.key else ""
        click.echo(
            f"Error: the edited configuration would not load ({where}{exc.detail}); "
            f"{config_path} is unchanged.",
            err=True,
        )
        sys.exit(2)
    try:
        os.replace(temp, config_path)
    except OSError as exc:
        os.unlink(temp)
        click.echo(f"Error: cannot write {config_path}: {exc.strerror or exc}", err=True)
        sys.exit(1)


def _edit_keys(config_path: Path) -> tuple[Any, Any]:
    import tomlkit

    _load(config_path)  # validate first: never edit a file we cannot read
    document = tomlkit.parse(config_path.read_text("utf-8"))
    return document, _key_entries(document)


@keys.command("add")
@config_option
@click.argument("name")
def keys_add(config_path: Path, name: str) -> None:
    """Create key NAME; prints the key once."""
    _check_key_name(name)
    document, entries = _edit_keys(config_path)
    if any(entry.get("name") == name for entry in entries):
        click.echo(f"A key named '{name}' already exists.", err=True)
        sys.exit(1)
    key = generate_key()
    entries.append(_key_table(name, key))
    _write_config(config_path, document)
    click.echo(f"Added key '{name}' (shown once, only its sha256 is stored):\n\n    {key}\n")


@keys.command("list")
@config_option
def keys_list(config_path: Path) -> None:
    """List key names (never the keys)."""
    settings = _load(config_path)
    if not settings.security.api_keys:
        click.echo("No keys.")
    for entry in settings.security.api_keys:
        kind = "sha256" if entry.sha256 else "plain key in file"
        click.echo(f"{entry.name}\t({kind})")


@keys.command("remove")
@config_option
@click.argument("name")
def keys_remove(config_path: Path, name: str) -> None:
    """Delete key NAME."""

    document, entries = _edit_keys(config_path)
    kept = [entry for entry in entries if entry.get("name") != name]
    if len(kept) == len(entries):
        click.echo(f"No key named '{name}'.", err=True)
        sys.exit(1)
    while len(entries):
        entries.pop()
    for entry in kept:
        entries.append(entry)
    if not kept:
        del document["security"]["api_keys"]
    _write_config(config_path, document)
    if not kept:
        click.echo(
            "No key left: 'serve' refuses to start until one is added "
            "('lollms-server keys add NAME').",
            err=True,
        )
    click.echo(f"Removed key '{name}'.")


def _check_personalities(settings: Settings) -> int:
    """Report personalities (and import their scripts); the number of problems."""
    from lollms_server.errors import LollmsError
    from lollms_server.personalities.registry import PersonalityRegistry
    from lollms_server.personalities.scripted import ScriptLoader

    registry = PersonalityRegistry.discover(
        settings.resolve_path(p) for p in settings.paths.personalities
    )
    scripted = [p for p in registry.all() if p.runs_script]
    click.echo(f"Personalities: {len(registry)} ({len(scripted)} scripted)")
    problems = 0
    for problem in registry.problems:
        problems += 1
        click.echo(f"  x {problem.path}: {problem.reason}")
    loader = ScriptLoader()
    for personality in scripted:
        assert personality.script is not None
        try:
            loader.module(personality.script.path)
        except LollmsError as exc:
            problems += 1
            click.echo(f"  x {personality.id}: {exc.message}")
    for personality in registry.all():
        for warning in personality.warnings:
            click.echo(f"  ! {personality.id}: {warning}")
    return problems


def _check_functions(settings: Settings) -> int:
    from lollms_server.functions.registry import FunctionRegistry

    registry = FunctionRegistry.discover(settings.resolve_path(p) for p in settings.paths.functions)
    names = ", ".join(f.name for f in registry.all()) or "none"
    click.echo(f"Functions: {len(registry)} ({names})")
    for problem in registry.problems:
        click.echo(f"  x {problem['path']}: {problem['reason']}")
    return len(registry.problems)


@main.command()
@config_option
@click.option("--models/--no-models", default=True, help="Also list each instance's models.")
def check(config_path: Path, models: bool) -> None:
    """Validate the config, run discovery and report; non-zero exit on any error."""
    from lollms_server.app import (
        build_registry,
        check_personality_aliases,
        check_references,
        check_security,
    )
    from lollms_server.bindings.manager import BindingManager
    from lollms_server.personalities.registry import PersonalityRegistry

    settings = _load(config_path)
    _setup_logging("critical")
    try:
        check_security(settings)
        registry = build_registry(settings)
        manager = BindingManager.from_settings(settings, registry)
        check_references(settings, manager)
        check_personality_aliases(
            settings,
            PersonalityRegistry.discover(
                settings.resolve_path(p) for p in settings.paths.personalities
            ),
        )
    except ConfigError as exc:
        _fail_config(exc)
    problems = 0
    click.echo(f"Config: {settings.source} (valid)")
    click.echo(f"API keys: {len(settings.security.api_keys)}")
    click.echo("Binding types:")
    for source in registry.all():
        if source.cls is None:
            problems += 1
            click.echo(f"  x {source.name} [{source.origin}]: {source.error}")
        else:
            click.echo(f"  ok {source.name} [{source.origin}]")
    for conflict in registry.conflicts:
        problems += 1
        click.echo(f"  x {conflict}")
    click.echo("Binding instances:")
    for record in manager.records():
        if record.binding is None:
            problems += 1
            click.echo(f"  x {record.name} ({record.type_name}): {record.error}")
            continue
        click.echo(f"  ok {record.name} ({record.type_name})")
        if models:
            try:
                listed = asyncio.run(record.binding.list_models())
                names = ", ".join(m.name for m in listed) or "no models"
                click.echo(f"     models: {names}")
            except Exception as exc:
                problems += 1
                click.echo(f"     models: error: {exc}")
    problems += _check_personalities(settings) + _check_functions(settings)
    for gen_type in ("ttt", "tti", "ttv", "ttm", "tts", "stt", "embed"):
        binding, model = settings.defaults.for_type(gen_type)
        if binding:  # an instance that exists: check_references said so
            click.echo(f"Default {gen_type}: {binding} / {model or '(binding default)'}")
    if problems:
        click.echo(f"{problems} problem(s) found.", err=True)
        sys.exit(1)
    click.echo("No problems found.")


@main.command("bindings")
@click.argument("binding_type", required=False)
def bindings_command(binding_type: str | None) -> None:
    """List binding types, or the settings of BINDING_TYPE ([bindings.<instance>] keys)."""
    from lollms_server.bindings.registry import BindingRegistry

    registry = BindingRegistry()
    registry.discover_entry_points()
    if binding_type is None:
        for each in registry.all():
            status = each.cls.description if each.cls else f"unavailable: {each.error}"
            click.echo(f"{each.name:16} {status}")
        click.echo("\nSettings of one type: lollms-server bindings TYPE")
        return
    source = registry.get(binding_type)
    if source is None or source.cls is None:
        known = ", ".join(registry.names())
        click.echo(
            f"Unknown or unavailable binding type '{binding_type}'; known: {known}.", err=True
        )
        sys.exit(1)
    click.echo(f'[bindings.<instance>]\ntype = "{binding_type}"')
    for line in settings_lines(source.cls.Config):
        click.echo(line)


def settings_lines(config: Any) -> list[str]:
    """``key = default   # description`` for every field of a binding's Config."""
    import json

    from pydantic_core import PydanticUndefined

    lines = []
    for name, field in config.model_fields.items():
        if field.default is PydanticUndefined and field.default_factory is None:
            value = "(required)"
        else:
            default = field.get_default(call_default_factory=True)
            try:
                value = json.dumps(default if not isinstance(default, Path) else str(default))
            except TypeError:
                value = repr(default)
        note = f"   # {field.description}" if field.description else ""
        lines.append(f"{name} = {value}{note}")
    return lines


def _add_groups() -> None:
    """Command groups that live in modules of their own."""
    from lollms_server.cli_personalities import personalities

    main.add_command(personalities)


_add_groups()
