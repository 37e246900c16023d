"""Run the zoo's scripted personalities (``scripts/processor.py``, ``class Processor(APScript)``).

The processor module is imported with an ``__import__`` of its own that resolves ``lollms``
and ``lollms.*`` (and ``ascii_colors``) to :mod:`lollms_server.personalities.zoo.lollms`, so
an installed ``lollms`` package is neither needed nor disturbed. The processor's synchronous
``run_workflow`` runs in a worker thread; its helpers reach the event loop through a
:class:`~lollms_server.personalities.zoo.bridge.Bridge`.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import importlib
import importlib.util
import inspect
import shutil
import tempfile
import uuid
import weakref
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lollms_server import plugins
from lollms_server.errors import BadRequest, LollmsError, WorkflowFailed, WorkflowUnavailable
from lollms_server.generation.workflow import Emit
from lollms_server.personalities.model import Personality
from lollms_server.personalities.zoo.bridge import Bridge

if TYPE_CHECKING:
    from lollms_server.generation.port import GenerationPort
    from lollms_server.generation.requests import GenerationRequest

__all__ = ["ZooRunner", "import_processor"]

SHIM = "lollms_server.personalities.zoo.lollms"
_ALIASES = {"ascii_colors": f"{SHIM}.helpers"}


def _shim_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:
    if level == 0 and (name == "lollms" or name.startswith("lollms.")):
        target = SHIM + name[len("lollms") :]
        try:
            module = importlib.import_module(target)
            for item in fromlist or ():  # "from lollms import config": submodules too
                if not hasattr(module, item):
                    importlib.import_module(f"{target}.{item}")
        except ModuleNotFoundError as exc:
            missing = (exc.name or name).replace(SHIM, "lollms")
            raise ImportError(
                f"'{missing}' is not provided by lollms_server's zoo compatibility layer"
            ) from None
        return module if fromlist else importlib.import_module(SHIM)
    if level == 0 and name in _ALIASES:
        return importlib.import_module(_ALIASES[name])
    return builtins.__import__(name, globals, locals, fromlist, level)


def _with_shim_import(module: ModuleType) -> None:
    module.__dict__["__builtins__"] = {**vars(builtins), "__import__": _shim_import}


def import_processor(path: Path) -> ModuleType:
    """Import a zoo ``processor.py`` with ``lollms`` resolved to the compatibility layer."""
    name = f"lollms_server_zoo_processors.p{uuid.uuid4().hex}"
    module = plugins.import_file(name, path, prepare=_with_shim_import)
    if not inspect.isclass(getattr(module, "Processor", None)):
        raise ImportError("scripts/processor.py defines no class Processor")
    return module


_EXECUTOR: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    """Processors get threads of their own: they wait on work that the loop hands to the
    default executor (model loads, sync functions), which must never be starved by them."""
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="zoo-processor"
        )
    return _EXECUTOR


def _workflow_arguments(
    workflow: Any, context: Any, client: Any, callback: Any, prompt: str, history: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments for the three run_workflow signatures lollms used over time."""
    params = list(inspect.signature(workflow).parameters)
    if params and params[0] == "prompt":
        kwargs: dict[str, Any] = {}
        for key, value in (
            ("callback", callback),
            ("context_details", context),
            ("client", client),
        ):
            if key in params:
                kwargs[key] = value
        if len(params) > 1 and params[1] not in kwargs:
            kwargs[params[1]] = history  # previous_discussion_text / full_context
        return (prompt,), kwargs
    return (context, client, callback), {}


class ZooRunner:
    """The workflow body of one request to a zoo-style scripted personality.

    :meth:`prepare` builds the processor (and applies the request's ``personality_config``)
    before any response starts, so that bad settings are a 400, not a broken stream.
    """

    def __init__(
        self,
        module: ModuleType,
        personality: Personality,
        request: GenerationRequest,
        service: GenerationPort,
    ) -> None:
        self.module = module
        self.personality = personality
        self.request = request
        self.service = service
        self.folder = Path(tempfile.mkdtemp(prefix="lollms-zoo-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.bridge: Bridge | None = None
        self.processor: Any = None
        self.images: list[Path] = []

    async def prepare(self) -> None:
        loop = asyncio.get_running_loop()
        self.bridge = Bridge(loop, self.service, self.request, self.personality)
        try:
            self.images = self.bridge.save_images(self.folder)
            self.processor = await loop.run_in_executor(_executor(), self._build)
        except BaseException:
            self._cleanup()
            raise

    def _build(self) -> Any:
        from lollms_server.personalities.zoo.lollms.personality import AIPersonality

        assert self.bridge is not None
        ai = AIPersonality(self.personality, self.bridge, self.folder, self.images)
        cls = self.module.Processor
        try:  # older processors take only the personality
            takes_callback = "callback" in inspect.signature(cls).parameters
        except (TypeError, ValueError):
            takes_callback = True
        try:
            processor = cls(ai, callback=None) if takes_callback else cls(ai)
        except LollmsError:
            raise
        except Exception as exc:
            raise WorkflowFailed(
                f"The processor of personality '{self.personality.id}' could "
                f"not be built: {type(exc).__name__}: {exc}"
            ) from None
        settings = getattr(processor, "personality_config", None)
        if self.request.personality_config:
            if settings is None or not hasattr(settings, "update"):
                raise BadRequest(
                    f"Personality '{self.personality.id}' has no settings.",
                    param="personality_config",
                )
            try:
                settings.update(dict(self.request.personality_config))
            except (KeyError, ValueError, SyntaxError, TypeError) as exc:
                raise BadRequest(f"personality_config: {exc}", param="personality_config") from None
        if getattr(processor, "run_workflow", None) is None:
            raise WorkflowUnavailable("The processor has no run_workflow method.")
        return processor

    async def __call__(self, emit: Emit) -> None:
        if self.bridge is None:
            await self.prepare()
        assert self.bridge is not None
        self.bridge.attach(emit)
        try:
            await asyncio.get_running_loop().run_in_executor(_executor(), self._run)
        finally:
            self.bridge.cancel()  # a thread past the time limit stops at its next helper call
            self._cleanup()

    def _run(self) -> None:
        from lollms_server.personalities.zoo.lollms.client_session import Client, Discussion
        from lollms_server.personalities.zoo.lollms.prompting import LollmsContextDetails

        bridge = self.bridge
        assert bridge is not None
        prompt, history = bridge.prompt_and_history()
        client = Client(f"request-{uuid.uuid4().hex[:8]}", Discussion(self.folder, self.images))
        context = LollmsContextDetails(
            client=client,
            conditionning=self.personality.conditioning,
            prompt=prompt,
            discussion_messages=history,
            current_language=self.personality.language,
            ai_prefix=self.personality.ai_message_prefix,
        )
        workflow = self.processor.run_workflow
        args, kwargs = _workflow_arguments(
            workflow, context, client, bridge.callback, prompt, history
        )
        result = workflow(*args, **kwargs)
        if isinstance(result, str) and result and not bridge.sent_anything:
            bridge.operation(result, None)  # returned text that was never shown
