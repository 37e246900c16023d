"""config.toml: pydantic models of every key, loading, and readable validation errors.

Precedence: environment variables (``LOLLMS_`` prefix, ``__`` between levels, for example
``LOLLMS_SERVER__PORT=9700``) override the file, which overrides the defaults below.
``[bindings.<instance>]`` tables are kept raw here and validated by each binding's own
``Config`` model once discovery knows the binding types (see ``bindings/manager.py``).
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from lollms_server.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "DEFAULT_PORT",
    "GENERATION_TYPES",
    "ApiKeyEntry",
    "DefaultsSettings",
    "PathsSettings",
    "ResourcesSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "format_validation_error",
    "load_config",
]

DEFAULT_PORT = 9601
GENERATION_TYPES = ("ttt", "tti", "ttv", "ttm", "tts", "stt")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    cors_origins: list[str] = Field(default_factory=list)
    max_request_bytes: int = Field(16 * 1024 * 1024, gt=0)
    log_level: LogLevel = "info"
    docs: bool = True
    keep_alive_timeout: int = Field(75, ge=1)  # seconds (uvicorn takes whole seconds)
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a request line and its headers may take to arrive, from the "
        "request's first byte or the connection's opening (then 408, connection closed).",
    )
    body_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a whole request body may take to arrive, from the end of the "
        "headers (then 408, connection closed).",
    )
    max_header_bytes: int = Field(
        65536, ge=1024, description="Size cap of a request line and headers (then 431)."
    )
    max_connections: int = Field(
        1024,
        ge=1,
        description="Open connections at most: beyond it the longest idle keep-alive "
        "connection is closed, or, none being idle, the request gets 503.",
    )

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class ApiKeyEntry(_Section):
    """One client key: a name plus either the key itself or its sha256 (hex)."""

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Shown in logs and by 'keys list'; no control characters.",
    )
    key: SecretStr | None = None
    sha256: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_RE.match(value.lower()):
            raise ValueError("must be 64 hexadecimal characters (a sha256 digest)")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _exactly_one(self) -> ApiKeyEntry:
        if (self.key is None) == (self.sha256 is None):
            raise ValueError("give exactly one of 'key' or 'sha256'")
        return self


class SecuritySettings(_Section):
    api_keys: list[ApiKeyEntry] = Field(default_factory=list)
    allow_no_keys: bool = False

    @field_validator("api_keys")
    @classmethod
    def _unique_names(cls, value: list[ApiKeyEntry]) -> list[ApiKeyEntry]:
        names = [k.name for k in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate key names: {', '.join(dupes)}")
        return value


class PathsSettings(_Section):
    """Folders; relative ones are resolved against the config file's folder."""

    bindings: Path = Path("bindings")
    personalities: list[Path] = Field(default_factory=lambda: [Path("personalities")])
    functions: list[Path] = Field(default_factory=lambda: [Path("functions")])
    models: Path = Path("models")

    @field_validator("personalities", "functions", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | Path) else value


class AliasTarget(_Section):
    """An alias that also selects a personality (``model`` omitted: the default model)."""

    model: str | None = None
    personality: str | None = None


class PersonalitiesSettings(_Section):
    """Personalities (folders in ``[paths] personalities``)."""

    script_timeout: float = Field(
        300.0,
        gt=0,
        description="Seconds a personality's script may run before it is stopped (504).",
    )
    data_folder: Path = Field(
        Path("personality_data"),
        description="Where zoo processors keep their files: one working folder per "
        "personality, with its outputs and one folder per discussion (served, keyed, at "
        "/api/v1/personality_files/...). Relative: to the config file's folder.",
    )
    processor_cpu_seconds: int = Field(
        300, ge=1, le=86_400, description="CPU seconds a zoo processor's process may use."
    )
    processor_memory_mb: int = Field(
        4096,
        ge=256,
        le=1_048_576,
        description="Address space (MiB) of a zoo processor's process: past it, allocations "
        "fail (MemoryError).",
    )
    processor_open_files: int = Field(
        256, ge=16, le=65_536, description="Files a zoo processor's process may hold open."
    )
    processor_file_mb: int = Field(
        1024, ge=1, le=1_048_576, description="Largest file (MiB) a zoo processor may write."
    )

    processor_spares: int = Field(
        1,
        ge=0,
        le=8,
        description="Processes started ahead for zoo processors (after the first request to "
        "one), so a request does not wait for Python to start: 0 = none.",
    )

    def processor_limits(self) -> dict[str, int]:
        """The limits a zoo processor's process sets on itself (see ``zoo.child``)."""
        return {
            "cpu_seconds": self.processor_cpu_seconds,
            "memory_bytes": self.processor_memory_mb << 20,
            "open_files": self.processor_open_files,
            "file_bytes": self.processor_file_mb << 20,
        }


class FunctionsSettings(_Section):
    """Functions (modules in ``[paths] functions``) and the tool-calling loop."""

    timeout: float = Field(30.0, gt=0, description="Seconds one function call may take.")
    max_tool_rounds: int = Field(5, ge=1, le=50, description="Tool-call rounds per request.")
    loop_timeout: float = Field(600.0, gt=0, description="Seconds a whole tool loop may take.")


class DefaultsSettings(_Section):
    """Binding instance and model per generation type, used when a request names none."""

    ttt_binding: str | None = None
    ttt_model: str | None = None
    tti_binding: str | None = None
    tti_model: str | None = None
    ttv_binding: str | None = None
    ttv_model: str | None = None
    ttm_binding: str | None = None
    ttm_model: str | None = None
    tts_binding: str | None = None
    tts_model: str | None = None
    stt_binding: str | None = None
    stt_model: str | None = None
    embed_binding: str | None = None
    embed_model: str | None = None

    def for_type(self, generation_type: str) -> tuple[str | None, str | None]:
        return (
            getattr(self, f"{generation_type}_binding", None),
            getattr(self, f"{generation_type}_model", None),
        )


class _EnvJSONError(ValueError):
    """A ``LOLLMS_*`` variable that should hold JSON (a list or a table) and does not."""

    def __init__(self, variable: str, key: str, problem: str) -> None:
        super().__init__(problem)
        self.variable, self.key, self.problem = variable, key, problem


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, whose JSON errors name the variable and the key
    (its own error names only the top-level section)."""

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)  # type: ignore[arg-type]
        except ValueError as exc:
            variable = self._variable(field_name, value)
            if variable is None:
                raise
            key = ".".join(variable[len(self.env_prefix) :].lower().split("__"))
            # The parser's message gives a position, never the value (which may be a key).
            problem = f"not valid JSON ({exc}); a list or a table is written in JSON here"
            raise _EnvJSONError(variable, key, problem) from None

    def _variable(self, last_key: str, value: Any) -> str | None:
        """The variable (as spelled in the environment) whose value failed to decode."""
        import os

        prefix, last = self.env_prefix.lower(), last_key.lower()
        for name, given in self.env_vars.items():
            lowered = name.lower()
            named = lowered == prefix + last or lowered.endswith(f"__{last}")
            if given == value and named and lowered.startswith(prefix):
                return next((v for v in os.environ if v.lower() == lowered), name.upper())
        return None


class _BindingsFromEnv(PydanticBaseSettingsSource):
    """The environment source, with two fixes for ``LOLLMS_BINDINGS__<INSTANCE>__<KEY>``:
    the instance is matched to the file's spelling (variable names are case-insensitive),
    and a JSON list or table is decoded (binding settings are not typed for the source)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        env: PydanticBaseSettingsSource,
        init: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self.env, self.init = env, init

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ does the work

    def __call__(self) -> dict[str, Any]:
        data = self.env()
        tables = data.get("bindings")
        if isinstance(tables, dict):
            init_kwargs = getattr(self.init, "init_kwargs", {}) or {}
            spelled = {str(n).lower(): n for n in init_kwargs.get("bindings") or {}}
            data["bindings"] = {
                spelled.get(name.lower(), name): {
                    key: _json_table(value) for key, value in table.items()
                }
                if isinstance(table, dict)
                else table
                for name, table in tables.items()
            }
        return data


def _json_table(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        import json

        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _no_bool(value: Any) -> None:
    if isinstance(value, bool):  # TOML true would pass as the integer 1
        raise ValueError('a size such as "24GiB" or a number of bytes, not true/false')


def _instance_and_model(target: str) -> bool:
    instance, slash, model = target.partition("/")
    return bool(instance and slash and model)


class ResourcesSettings(_Section):
    """Memory budgets and the request queue (see resources/scheduler.py)."""

    gpu_memory: str | int | list[str | int] = "auto"  # one size per GPU, or one for GPU 0
    system_memory: str | int = "auto"
    safety_margin: str | int = "512MiB"
    max_queue: int = Field(
        1024,
        ge=0,
        description="Requests waiting at most, all models together (a memory cap); beyond it, "
        "and for a request whose estimated wait exceeds its queue_timeout: 503 overloaded.",
    )
    queue_timeout: float = Field(
        120.0, gt=0, description="Seconds a request may wait for a slot (then 503)."
    )
    keep_alive: float = Field(300.0, ge=-1)
    swap_delay: float = Field(2.0, ge=0)
    preload: list[str] = Field(default_factory=list)

    @field_validator("gpu_memory", "system_memory", mode="before")
    @classmethod
    def _size_or_auto(cls, value: Any) -> Any:
        from lollms_server.resources.memory import parse_size

        if isinstance(value, list):  # one size per GPU: "auto" is for the whole setting
            if not value:
                raise ValueError('give at least one size (or "auto")')
            for item in value:
                _no_bool(item)
                parse_size(item)
        else:
            _no_bool(value)
            if value != "auto":
                parse_size(value)
        return value

    @field_validator("safety_margin", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        from lollms_server.resources.memory import parse_size

        _no_bool(value)
        parse_size(value)
        return value

    @field_validator("preload")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _instance_and_model(item):
                raise ValueError(f"'{item}' must be 'instance/model'")
        return value


class ClusterSettings(_Section):
    """Scale-out on Ray (see lollms_server/cluster): empty, the server is one process."""

    address: str | None = Field(
        None,
        description="'local' (a Ray instance started and stopped with the server) or the "
        "address of a running Ray cluster ('HOST:6379', 'auto'); unset: no cluster.",
    )
    workers: int = Field(
        1, ge=1, le=64, description="API worker processes (each serves every API)."
    )
    namespace: str = Field(
        "lollms", pattern=r"^[A-Za-z0-9_.-]+$", description="Ray namespace of this server."
    )
    dashboard: bool = Field(
        False, description="With address = 'local': start Ray's dashboard (on 127.0.0.1)."
    )
    node_memory: str | int = Field(
        "auto",
        description="System memory budget per node for CPU models: 'auto' (the node's Ray "
        "'memory' resource) or a size.",
    )
    gpu_memory_resource: str = Field(
        "gpu_memory",
        pattern=r"^[A-Za-z0-9_]+$",
        description="Custom Ray resource giving each node's GPU memory in bytes "
        "(ray start --resources='{\"gpu_memory\": 24e9}'); nodes without it have no GPU budget.",
    )
    batch_events: int = Field(
        32,
        ge=1,
        le=1024,
        description="Most events a model host sends per Ray message (streams fall back to "
        "Ray when a host's channel cannot be reached).",
    )
    worker_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray resources each API worker needs, to keep workers on the nodes that "
        "offer them (e.g. {api = 1} with ray start --resources='{\"api\": 4}' on the "
        "machines clients reach); empty: workers are spread over all nodes.",
    )

    @field_validator("node_memory", mode="before")
    @classmethod
    def _size_or_auto(cls, value: Any) -> Any:
        from lollms_server.resources.memory import parse_size

        _no_bool(value)
        if value != "auto":
            parse_size(value)
        return value

    @property
    def enabled(self) -> bool:
        """Whether the server runs on Ray (an address is set)."""
        return self.address is not None


class Settings(BaseSettings):
    """The whole config.toml."""

    model_config = SettingsConfigDict(
        env_prefix="LOLLMS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    paths: PathsSettings = Field(default_factory=PathsSettings)
    defaults: DefaultsSettings = Field(default_factory=DefaultsSettings)
    resources: ResourcesSettings = Field(default_factory=ResourcesSettings)
    personalities: PersonalitiesSettings = Field(default_factory=PersonalitiesSettings)
    functions: FunctionsSettings = Field(default_factory=FunctionsSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    aliases: dict[str, str | AliasTarget] = Field(
        default_factory=dict,
        description="Model names clients may use: alias = "
        "'instance/model', or a table {model = 'instance/model', personality = 'name'}.",
    )
    bindings: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _source: str = PrivateAttr(default="<defaults>")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: it overrides what the file (passed as init kwargs) says.
        return (
            _BindingsFromEnv(settings_cls, _EnvSource(settings_cls), init_settings),
            init_settings,
        )

    @field_validator("bindings")
    @classmethod
    def _tables(cls, value: dict[str, Any]) -> dict[str, dict[str, Any]]:
        for name, table in value.items():
            if not isinstance(table, dict):
                raise ValueError(f"[bindings.{name}] must be a table")
            if not re.match(r"^[A-Za-z0-9_.-]+$", name):
                raise ValueError(f"instance name '{name}' may use letters, digits, '_', '-', '.'")
        return value

    @field_validator("aliases")
    @classmethod
    def _alias_targets(cls, value: dict[str, str | AliasTarget]) -> dict[str, str | AliasTarget]:
        for alias, target in value.items():
            model = target if isinstance(target, str) else target.model
            if model is not None and not _instance_and_model(model):
                raise ValueError(f"alias '{alias}' must point at 'instance/model' (got '{model}')")
        return value

    def alias(self, name: str) -> tuple[str, str | None]:
        """``(model id, personality)`` for a client's model name (itself when not an alias)."""
        target = self.aliases.get(name)
        if target is None:
            return name, None
        if isinstance(target, str):
            return target, None
        return target.model or "default", target.personality

    @property
    def source(self) -> str:
        """Where this configuration came from (a file path, or ``<defaults>``)."""
        return self._source

    def resolve_path(self, path: Path) -> Path:
        """Resolve a configured path against the config file's folder (``~`` expanded)."""
        path = path.expanduser()
        if path.is_absolute():
            return path
        base = Path(self._source).parent if self._source != "<defaults>" else Path.cwd()
        return (base / path).resolve()


_SECRET_PARTS = {"key", "api_key", "token", "password", "secret", "sha256", "headers"}


def _describe_input(key: str, value: Any) -> str:
    """What was given, when echoing it cannot reveal a secret.

    Tables and lists are described by their type only (they may hold keys); strings are not
    echoed under ``security`` and ``bindings`` (an API key typed into the wrong field), nor
    under a secret-looking key anywhere.
    """
    parts = set(key.split("."))
    if parts & _SECRET_PARTS:
        return ""
    if isinstance(value, dict | list):
        return f" (got a {'table' if isinstance(value, dict) else 'list'})"
    if isinstance(value, str) and key.split(".", 1)[0] in ("security", "bindings"):
        return " (got a string)"
    text = repr(value)
    return f" (got {text[:80]})" if len(text) <= 80 else f" (got {text[:77]}...)"


def format_validation_error(error: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """Turn a pydantic error into ``(dotted key, what was expected)`` pairs; a key set by a
    ``LOLLMS_*`` environment variable names the variable (the file is not to blame)."""
    out: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc)
        key = f"{prefix}.{key}" if prefix and key else (prefix or key)
        if item["type"] == "extra_forbidden":
            message = "unknown key (not a setting; check the spelling)"
        else:
            message = item["msg"] + _describe_input(key, item.get("input"))
        variable = _env_variable(key) if key else None
        if variable:
            message = f"{message} (set by the environment variable {variable})"
        out.append((key, message))
    return out


def _env_problem(exc: SettingsError) -> str:
    # pydantic-settings names the field, then quotes the parser's error; the value (which may
    # be a key) is not part of it.
    return str(exc).split("\n", 1)[0]


def _env_variable(key: str) -> str | None:
    """The LOLLMS_* variable that set ``key`` (or a table above it), when one did."""
    import os

    parts = key.split(".")
    names = {name.upper(): name for name in os.environ if name.upper().startswith("LOLLMS_")}
    for end in range(len(parts), 0, -1):
        wanted = "LOLLMS_" + "__".join(parts[:end]).upper()
        if wanted in names:
            return names[wanted]
    return None


def _raise_first(source: str, problems: list[tuple[str, str]]) -> None:
    key, message = problems[0]
    if len(problems) > 1:
        rest = "; ".join(f"'{k}': {m}" for k, m in problems[1:])
        message = f"{message}. Also: {rest}"
    raise ConfigError(source, key or None, message)


def load_config(path: str | Path | None) -> Settings:
    """Read and validate ``path`` (or only defaults and environment when ``path`` is None).

    Raises :class:`ConfigError` naming the file and the key on any problem.
    """
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        file = Path(path).expanduser()
        source = str(file.resolve())
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(
                source, None, "file not found (create one with 'lollms-server init')"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, None, f"TOML syntax error: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                source, None, f"not UTF-8 text (TOML files are): byte {exc.start} cannot be decoded"
            ) from None
        except OSError as exc:
            raise ConfigError(source, None, f"cannot read the file: {exc.strerror}") from None
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        _raise_first(source, format_validation_error(exc))
        raise  # unreachable: _raise_first always raises
    except SettingsError as exc:  # a LOLLMS_* variable that does not parse (bad JSON...)
        cause = exc.__cause__
        if isinstance(cause, _EnvJSONError):
            message = f"{cause.problem} (set by the environment variable {cause.variable})"
            raise ConfigError(source, cause.key, message) from None
        raise ConfigError(source, None, f"environment variable: {_env_problem(exc)}") from None
    settings._source = source
    return settings
