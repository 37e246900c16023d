"""Binding instances: built from ``[bindings.<instance>]`` tables, looked up by name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lollms_server.bindings.base import Binding, BindingConfig
from lollms_server.bindings.hosted import hosted
from lollms_server.bindings.registry import BindingRegistry
from lollms_server.bindings.types import BindingContext
from lollms_server.config import Settings, format_validation_error
from lollms_server.errors import BindingNotFound, BindingUnavailable, ConfigError
from lollms_server.security.redact import redact

__all__ = ["BindingManager", "InstanceRecord"]

logger = logging.getLogger(__name__)


def _resolve_paths(config: BindingConfig, settings: Settings) -> BindingConfig:
    """Relative paths in a binding's settings (a models folder, model files...) are relative
    to the config file's folder, as [paths] are; not to wherever the server was started."""
    updates: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, Path):
            updates[name] = settings.resolve_path(value)
        elif isinstance(value, dict) and any(isinstance(v, Path) for v in value.values()):
            updates[name] = {
                k: settings.resolve_path(v) if isinstance(v, Path) else v for k, v in value.items()
            }
        elif isinstance(value, list) and any(isinstance(v, Path) for v in value):
            updates[name] = [settings.resolve_path(v) if isinstance(v, Path) else v for v in value]
    return config.model_copy(update=updates) if updates else config


def _disabled(name: str, type_name: str, error: str) -> InstanceRecord:
    logger.error("Binding instance '%s' (%s) disabled: %s", name, type_name, error)
    return InstanceRecord(name, type_name, None, error)


@dataclass
class InstanceRecord:
    name: str
    type_name: str
    binding: Binding | None
    error: str | None = None


class BindingManager:
    def __init__(self, records: dict[str, InstanceRecord]) -> None:
        self._records = records

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        registry: BindingRegistry,
        on_model_lost: Callable[[str, str, str], None] | None = None,
        wrap: Callable[[type[Binding]], type[Binding]] | None = None,
    ) -> BindingManager:
        """One instance per ``[bindings.<name>]`` table; ``on_model_lost`` hears of models
        that a binding lost (a dead host), with ``(instance, model, reason)``; ``wrap``, when
        given, replaces every binding class (a cluster runs all models in Ray hosts)."""
        """Validate every instance table and create the instances.

        An unknown type or invalid settings raise ConfigError (the config is wrong); a known
        binding whose code failed to import leaves the instance disabled with its error.
        """
        records: dict[str, InstanceRecord] = {}
        models_path = settings.resolve_path(settings.paths.models)
        for name, table in settings.bindings.items():
            key = f"bindings.{name}"
            body = dict(table)
            type_name = body.pop("type", None)
            if not isinstance(type_name, str) or not type_name:
                raise ConfigError(
                    settings.source,
                    f"{key}.type",
                    f"missing binding type; expected one of: "
                    f"{', '.join(registry.names()) or 'none'}",
                )
            source = registry.get(type_name) or registry.failed_plugin(type_name)
            if source is None:
                raise ConfigError(
                    settings.source,
                    f"{key}.type",
                    f"unknown binding type '{type_name}'; expected one of: "
                    f"{', '.join(registry.names()) or 'none'}",
                )
            if source.cls is None:
                logger.error(
                    "Binding instance '%s' disabled: type '%s' failed to import: %s",
                    name,
                    type_name,
                    source.error,
                )
                records[name] = InstanceRecord(name, type_name, None, source.error)
                continue
            try:
                config = source.cls.Config.model_validate(body)
            except ValidationError as exc:
                problems = format_validation_error(exc, key)
                k, message = problems[0]
                if len(problems) > 1:
                    message += ". Also: " + "; ".join(f"'{a}': {b}" for a, b in problems[1:])
                raise ConfigError(settings.source, k, message) from None
            except Exception as exc:  # the binding's own validation code failed
                records[name] = _disabled(
                    name,
                    type_name,
                    f"its settings could not be validated: {type(exc).__name__}: {exc}",
                )
                continue
            config = _resolve_paths(config, settings)
            binding_cls: type[Binding] = (
                hosted(source.cls) if config.isolation == "process" else source.cls
            )
            if wrap is not None:
                binding_cls = wrap(source.cls)
            try:
                context = BindingContext(name, models_path)
                if on_model_lost is not None:
                    context = BindingContext(name, models_path, on_model_lost)
                binding = binding_cls(config, context)
            except Exception as exc:  # a plugin's constructor: that instance only is lost
                records[name] = _disabled(
                    name, type_name, f"construction failed: {type(exc).__name__}: {exc}"
                )
                continue
            records[name] = InstanceRecord(name, type_name, binding)
        return cls(records)

    def names(self) -> list[str]:
        return list(self._records)

    def records(self) -> list[InstanceRecord]:
        return list(self._records.values())

    def get(self, name: str) -> Binding:
        record = self._records.get(name)
        if record is None:
            raise BindingNotFound(name, self.active_names())
        if record.binding is None:
            raise BindingUnavailable(
                f"Binding instance '{name}' is disabled: {record.error}", param="binding_name"
            )
        return record.binding

    def active_names(self) -> list[str]:
        return [r.name for r in self._records.values() if r.binding is not None]

    def describe(self, name: str) -> dict[str, Any]:
        """Public view of one instance: never shows a secret."""
        record = self._records[name]
        out: dict[str, Any] = {"name": name, "type": record.type_name}
        if record.binding is None:
            out.update(status="disabled", error=record.error)
            return out
        binding = record.binding
        out.update(
            status="active",
            modalities=sorted(binding.serves()),
            config=redact(binding.config.model_dump(mode="json")),
        )
        return out

    async def close(self) -> None:
        for record in self._records.values():
            if record.binding is not None:
                try:
                    await record.binding.close()
                except Exception:
                    logger.exception("Closing binding instance '%s' failed", record.name)
