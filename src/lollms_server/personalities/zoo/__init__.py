"""Run the zoo's scripted personalities (``scripts/processor.py``, ``class Processor(APScript)``).

The processor module is imported with an ``__import__`` of its own that resolves ``lollms``
and ``lollms.*`` (and ``ascii_colors``) to :mod:`lollms_server.personalities.zoo.lollms`, so
an installed ``lollms`` package is neither needed nor disturbed; ``pipmaster``, ``os``,
``subprocess`` and ``open`` are the guarded stand-ins of :mod:`.sandbox` (installs refused,
relative paths in the personality's working folder, see :mod:`.runtime`), and the threads
running its code are held by :mod:`.confine` (writes only in its working folder, no network
unless its config allows it, the server's process not signalled or forked).

The server never imports a processor: each request runs it in a process of its own (see
:mod:`.isolated` for the server's side, :mod:`.child` for the process), where
:func:`build_processor` and :func:`run_processor` build it and run its synchronous
``run_workflow`` in a thread; its helpers reach the server through a
:class:`~lollms_server.personalities.zoo.bridge.Bridge` over that process's port, its prompts
are fitted to the model's context (:mod:`.fit`) and its generations held to the client's
limits.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import inspect
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lollms_server import plugins
from lollms_server.errors import BadRequest, LollmsError, WorkflowFailed, WorkflowUnavailable
from lollms_server.personalities.model import Personality
from lollms_server.personalities.scripted import describe_failure
from lollms_server.personalities.zoo.bridge import Bridge
from lollms_server.personalities.zoo.confine import Policy, confined, network_allowed
from lollms_server.personalities.zoo.runtime import Workspace, working_folder
from lollms_server.personalities.zoo.sandbox import (
    guarded_module,
    guarded_open,
    install_refusal,
    refused_note,
)

if TYPE_CHECKING:
    from lollms_server.generation.requests import GenerationRequest

__all__ = ["Job", "build_processor", "import_processor", "run_processor"]

SHIM = "lollms_server.personalities.zoo.lollms"
_ALIASES = {
    "ascii_colors": f"{SHIM}.helpers",
    "pipmaster": "lollms_server.personalities.zoo.pipmaster",
}
logger = logging.getLogger("lollms_server.personalities")


def _layer_module(target: str) -> ModuleType:
    """A module of the layer; a ``lollms.functions`` module it lacks is a stand-in whose
    ``*_function`` builders answer "not available" (see ``lollms.functions``)."""
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        from lollms_server.personalities.zoo.lollms import functions

        missing = exc.name or ""
        if not missing.startswith(functions.__name__ + ".") or not (
            target == missing or target.startswith(missing + ".")
        ):
            raise
        above = importlib.import_module(missing.rpartition(".")[0])
        if not (above is functions or isinstance(above, functions.UnavailableFunctions)):
            raise  # a name missing from a module the layer has
        return functions.unavailable_functions(target)


def _import_items(module: ModuleType, target: str, fromlist: Any) -> None:
    """``from lollms.x import a, b``: names of the module, or its submodules."""
    from lollms_server.personalities.zoo.lollms.functions import UnavailableFunctions

    for item in fromlist or ():
        if hasattr(module, item):
            continue
        if isinstance(module, UnavailableFunctions):  # only its *_function names exist
            raise ModuleNotFoundError(name=f"{target}.{item}")
        _layer_module(f"{target}.{item}")


def _shim_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:
    if level == 0 and (name == "lollms" or name.startswith("lollms.")):
        target = SHIM + name[len("lollms") :]
        try:
            module = _layer_module(target)
            _import_items(module, target, fromlist)  # "from lollms import config" too
        except ModuleNotFoundError as exc:
            missing = (exc.name or name).replace(SHIM, "lollms")
            raise ImportError(
                f"'{missing}' is not provided by lollms_server's zoo compatibility layer"
            ) from None
        return module if fromlist else importlib.import_module(SHIM)
    top = name.split(".")[0]
    if level == 0 and top in _ALIASES:  # "pipmaster.package_manager" is the stand-in too
        return importlib.import_module(_ALIASES[top])
    guarded = guarded_module(top) if level == 0 else None
    try:
        module = builtins.__import__(name, globals, locals, fromlist, level)
    except ModuleNotFoundError as exc:
        note = refused_note(exc.name)
        if not note:
            raise
        raise ModuleNotFoundError(f"{exc}{note}", name=exc.name) from None
    if guarded is not None and (name == top or not fromlist):
        return guarded  # "import os", "import os.path", "from subprocess import run"
    return module


def _lollms_names() -> dict[str, Any]:
    """lollms names processors use in annotations without importing them (Python 3.14
    evaluates annotations lazily; before it, each such annotation is a NameError)."""
    from lollms_server.personalities.zoo.lollms.client_session import Client
    from lollms_server.personalities.zoo.lollms.types import MSG_OPERATION_TYPE, MSG_TYPE

    return {"MSG_OPERATION_TYPE": MSG_OPERATION_TYPE, "MSG_TYPE": MSG_TYPE, "Client": Client}


def _with_shim_import(module: ModuleType) -> None:
    module.__dict__["__builtins__"] = {
        **vars(builtins),
        **_lollms_names(),
        "__import__": _shim_import,
        "open": guarded_open,
    }


def import_processor(path: Path) -> ModuleType:
    """Import a zoo ``processor.py`` with ``lollms`` resolved to the compatibility layer."""
    name = f"lollms_server_zoo_processors.p{uuid.uuid4().hex}"
    folder = path.parent.parent
    rules = Policy(folder.name, (working_folder(),), network_allowed(folder), install_refusal)
    with confined(rules):  # its top-level code: writes in a private folder only
        module = plugins.import_file(name, path, prepare=_with_shim_import)
    if not inspect.isclass(getattr(module, "Processor", None)):
        raise ImportError("scripts/processor.py defines no class Processor")
    return module


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


@dataclass(frozen=True)
class Job:
    """One request to a processor, as its process sees it."""

    personality: Personality
    request: GenerationRequest  # the client's (its conversation, limits, settings)
    bridge: Bridge  # to the server
    workspace: Workspace  # its folders
    images: list[Path]  # the client's images, saved in the discussion folder


def build_processor(module: ModuleType, job: Job) -> Any:
    """The processor of ``module`` for one request, with the request's settings applied."""
    from lollms_server.personalities.zoo.lollms.personality import AIPersonality

    personality, request, bridge = job.personality, job.request, job.bridge

    ai = AIPersonality(
        personality, bridge, job.workspace, job.images, ctx_size=bridge.context_size or 4096
    )
    cls = module.Processor
    try:  # older processors take only the personality
        takes_callback = "callback" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        takes_callback = True
    try:
        processor = cls(ai, callback=None) if takes_callback else cls(ai)
    except LollmsError:
        raise
    except Exception as exc:
        assert personality.script is not None
        reason = describe_failure(exc, personality.script.path)
        logger.warning(
            "the processor of personality '%s' could not be built: %s", personality.id, reason
        )
        raise WorkflowFailed(
            f"The processor of personality '{personality.id}' could not be built: {reason}"
        ) from None
    settings = getattr(processor, "personality_config", None)
    if request.personality_config:
        if settings is None or not hasattr(settings, "update"):
            raise BadRequest(
                f"Personality '{personality.id}' has no settings.", param="personality_config"
            )
        try:
            settings.update(dict(request.personality_config))
        except (KeyError, ValueError, SyntaxError, TypeError) as exc:
            raise BadRequest(f"personality_config: {exc}", param="personality_config") from None
    if getattr(processor, "run_workflow", None) is None:
        raise WorkflowUnavailable("The processor has no run_workflow method.")
    return processor


def _context(processor: Any, job: Job, prompt: str, history: str) -> tuple[Any, Any]:
    """The client and context details lollms passes to ``run_workflow``."""
    from lollms_server.personalities.zoo.lollms.client_session import Client, Discussion
    from lollms_server.personalities.zoo.lollms.prompting import LollmsContextDetails

    personality, request, bridge, workspace = (
        job.personality,
        job.request,
        job.bridge,
        job.workspace,
    )

    messages = [(m.role, m.content) for m in request.messages]
    discussion = Discussion(workspace.discussion, job.images, messages)
    client = Client(workspace.discussion.name, discussion)
    ctx = bridge.context_size or 4096
    context = LollmsContextDetails(
        client=client,
        conditionning=personality.conditioning,
        prompt=prompt,
        discussion_messages=history,
        current_language=personality.language,
        ai_prefix=personality.ai_message_prefix,
        ctx_size=ctx,
        max_n_predict=request.params.max_tokens,
        available_space=max(ctx - len(bridge.tokenize(history)), 0),
        model=processor.personality.model,
    )
    return client, context


def run_processor(processor: Any, job: Job) -> None:
    """Run the processor's ``run_workflow`` for the request (blocking: its own thread)."""
    bridge = job.bridge
    prompt, history = bridge.prompt_and_history()
    client, context = _context(processor, job, prompt, history)
    workflow = processor.run_workflow
    args, kwargs = _workflow_arguments(workflow, context, client, bridge.callback, prompt, history)
    result = workflow(*args, **kwargs)
    if isinstance(result, str) and result and not bridge.content_sent:
        bridge.operation(result, None)  # returned text, no content set: the answer
