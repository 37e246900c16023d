"""The ASGI application: ``create_app(settings)`` wires the services and the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from lollms_server import __version__
from lollms_server.api.deps import require_api_key
from lollms_server.api.docs import docs_router
from lollms_server.api.errors import install_error_handlers
from lollms_server.api.limits import BodyLimitMiddleware
from lollms_server.api.lollms.routes import router as lollms_router
from lollms_server.api.native.models_admin import router as models_admin_router
from lollms_server.api.native.personalities import router as personalities_router
from lollms_server.api.native.routes import router as native_router
from lollms_server.api.ollama.routes import router as ollama_router
from lollms_server.api.openai.media import router as openai_media_router
from lollms_server.api.openai.routes import router as openai_router
from lollms_server.api.openai_responses.routes import router as openai_responses_router
from lollms_server.api.responses import JSONResponse
from lollms_server.api.web import router as web_router
from lollms_server.api.webui.routes import generate_router, text2audio_router
from lollms_server.bindings.manager import BindingManager
from lollms_server.bindings.registry import BindingRegistry
from lollms_server.config import Settings
from lollms_server.errors import ConfigError, LollmsError
from lollms_server.functions.registry import FunctionRegistry
from lollms_server.generation.service import GenerationService
from lollms_server.personalities.registry import PersonalityRegistry
from lollms_server.resources.metrics import Metrics, StatusCollector
from lollms_server.resources.scheduler import Scheduler
from lollms_server.security.keys import KeyStore

__all__ = ["build_registry", "check_security", "create_app"]

logger = logging.getLogger(__name__)


def check_security(settings: Settings) -> None:
    """Refuse insecure set-ups: no keys needs an explicit opt-in, and loopback only."""
    if settings.security.api_keys:
        return
    if not settings.security.allow_no_keys:
        raise ConfigError(
            settings.source,
            "security.api_keys",
            "no API key is configured. Add one with 'lollms-server keys add NAME', or set "
            "[security] allow_no_keys = true to run without keys (loopback addresses only).",
        )
    if not settings.server.is_loopback():
        raise ConfigError(
            settings.source,
            "server.host",
            f"refusing to listen on non-loopback address '{settings.server.host}' without API "
            "keys; add a key with 'lollms-server keys add NAME' or listen on 127.0.0.1.",
        )
    logger.warning(
        "!!! SECURITY: running WITHOUT API keys ([security] allow_no_keys = true). Anyone who "
        "can reach %s:%s can use this server. !!!",
        settings.server.host,
        settings.server.port,
    )


def check_references(settings: Settings, bindings: BindingManager) -> None:
    """Every binding instance the config names elsewhere (defaults, preload, aliases) must be
    one of its [bindings] tables: a typo there stops start-up, like any config error."""
    names = bindings.names()
    known = ", ".join(names) or "none"

    def need(key: str, instance: str, what: str) -> None:
        if instance not in names:
            raise ConfigError(
                settings.source,
                key,
                f"{what} names binding instance "
                f"'{instance}', which is not configured; instances: {known}",
            )

    for field in type(settings.defaults).model_fields:
        value = getattr(settings.defaults, field)
        if field.endswith("_binding") and value is not None:
            need(f"defaults.{field}", value, f"'{value}'")
    for index, target in enumerate(settings.resources.preload):
        need(f"resources.preload.{index}", target.partition("/")[0], f"'{target}'")
    for alias, aliased in settings.aliases.items():
        model = aliased if isinstance(aliased, str) else aliased.model
        if model is not None and model != "default":
            need(f"aliases.{alias}", model.partition("/")[0], f"'{model}'")


def check_personality_aliases(settings: Settings, personalities: PersonalityRegistry) -> None:
    for alias, aliased in settings.aliases.items():
        if isinstance(aliased, str) or aliased.personality is None:
            continue
        try:
            personalities.get(aliased.personality)
        except LollmsError as exc:
            raise ConfigError(
                settings.source, f"aliases.{alias}.personality", exc.message
            ) from None


def build_registry(settings: Settings) -> BindingRegistry:
    registry = BindingRegistry()
    registry.discover_entry_points()
    registry.discover_folder(settings.resolve_path(settings.paths.bindings))
    return registry


def _resources(
    settings: Settings, registry: BindingRegistry, metrics: Metrics
) -> tuple[Scheduler, BindingManager]:
    """The scheduler and the binding instances: in this process, or (an API worker of a
    cluster) the cluster's scheduler actor and bindings whose models run in Ray hosts."""
    if settings.cluster.enabled:
        from lollms_server.cluster.client import cluster_parts

        return cluster_parts(settings, registry, metrics)
    scheduler = Scheduler.from_settings(settings.resources, metrics)
    return scheduler, BindingManager.from_settings(settings, registry, scheduler.model_lost)


def create_app(settings: Settings, registry: BindingRegistry | None = None) -> FastAPI:
    """Build the application. Raises ConfigError when the configuration cannot work."""
    check_security(settings)
    registry = registry or build_registry(settings)
    metrics = Metrics()
    scheduler, bindings = _resources(settings, registry, metrics)
    metrics.registry.register(StatusCollector(scheduler.status))
    check_references(settings, bindings)
    preload = [] if settings.cluster.enabled else settings.resources.preload  # the cluster's

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for target in preload:
            instance, _, model = target.partition("/")
            try:
                await scheduler.preload(bindings.get(instance), model)
            except Exception as exc:  # a pinned model that fails must not stop the server
                logger.error("Preloading '%s' failed: %s", target, exc)
        try:
            yield
        finally:
            try:
                await app.state.generation.close()
                await scheduler.shutdown()
            finally:
                await bindings.close()

    docs = settings.server.docs
    app = FastAPI(
        title="lollms_server",
        version=__version__,
        lifespan=lifespan,
        default_response_class=JSONResponse,  # lone surrogates in text: never a 500
        docs_url=None,  # served by api/docs.py, behind the key
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.keys = KeyStore(settings.security.api_keys)
    app.state.registry = registry
    app.state.bindings = bindings
    app.state.scheduler = scheduler
    app.state.metrics = metrics
    personalities = PersonalityRegistry.discover(
        settings.resolve_path(p) for p in settings.paths.personalities
    )
    check_personality_aliases(settings, personalities)
    app.state.generation = GenerationService(
        settings,
        bindings,
        scheduler,
        personalities=personalities,
        functions=FunctionRegistry.discover(
            (settings.resolve_path(p) for p in settings.paths.functions),
            default_timeout=settings.functions.timeout,
        ),
    )

    install_error_handlers(app)
    # Routers are matched in this order, route by route: the OpenAI routes, which most
    # clients call, first (no path of the next three overlaps theirs).
    app.include_router(openai_router)
    app.include_router(native_router)
    app.include_router(personalities_router)
    app.include_router(models_admin_router)
    app.include_router(openai_media_router)
    app.include_router(openai_responses_router)
    app.include_router(ollama_router)
    app.include_router(lollms_router)
    app.include_router(generate_router)
    app.include_router(text2audio_router)
    app.include_router(web_router)
    if docs:
        app.include_router(docs_router(app))

    @app.get(
        "/metrics",
        tags=["health"],
        dependencies=[Depends(require_api_key)],
        response_class=PlainTextResponse,
    )
    async def prometheus_metrics() -> PlainTextResponse:
        """Prometheus metrics (key required)."""
        await scheduler.refresh()  # a cluster's worker reads the scheduler actor's status
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        """Liveness; the only route that needs no key."""
        return {"status": "ok", "version": __version__}

    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_request_bytes)
    return app
