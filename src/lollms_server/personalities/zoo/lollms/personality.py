"""``lollms.personality``: ``APScript`` and ``AIPersonality`` backed by lollms_server.

Processors run in a worker thread; every helper that generates or shows something goes
through the personality's bridge to the server's event loop, so callbacks become streamed
events and generations go through the server's bindings and scheduler.
"""

from __future__ import annotations

import base64
import html
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lollms_server.personalities.zoo import calls
from lollms_server.personalities.zoo.engine import ModelView
from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms._tasks import DocumentTasks
from lollms_server.personalities.zoo.lollms.config import TypedConfig
from lollms_server.personalities.zoo.lollms.helpers import ASCIIColors
from lollms_server.personalities.zoo.lollms.paths import LollmsPaths, zoo_categories
from lollms_server.personalities.zoo.lollms.tti import LollmsTTI
from lollms_server.personalities.zoo.lollms.types import MSG_OPERATION_TYPE, MSG_TYPE, SUMMARY_MODE
from lollms_server.personalities.zoo.lollms.utilities import PromptReshaper

if TYPE_CHECKING:
    from lollms_server.personalities.zoo.runtime import Workspace

__all__ = [  # lollms 9 processors import MSG_TYPE here
    "MSG_TYPE",
    "AIPersonality",
    "APScript",
    "LoLLMsAction",
    "craft_a_tag_to_specific_text",
]

_CODE_BLOCK = re.compile(r"```([\w.+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


class LoLLMsAction:
    """An action a processor offers (lollms' name, parameters, callback)."""

    def __init__(
        self,
        name: str,
        parameters: dict[str, Any],
        callback: Callable[..., Any],
        description: str = "",
    ) -> None:
        self.name = name
        self.parameters = parameters
        self.callback = callback
        self.description = description

    def run(self) -> Any:
        """Call the callback with the parameters."""
        return self.callback(**self.parameters)

    def to_dict(self) -> dict[str, Any]:
        """Name, parameters and description."""
        return {"name": self.name, "parameters": self.parameters, "description": self.description}

    def __str__(self) -> str:
        return f"LoLLMsAction(name={self.name}, parameters={self.parameters})"


def _context_getter(context_details: Any) -> Callable[..., Any]:
    """``get(key, default)`` on lollms' context details, a dict or an object."""
    if hasattr(context_details, "get"):
        return context_details.get  # type: ignore[no-any-return]
    return lambda key, default=None: getattr(context_details, key, default)


def craft_a_tag_to_specific_text(ascii_text: str, text: str, caption: str) -> str:
    """An HTML link, labelled ``caption``, to the place of ``text`` in ``ascii_text`` (its
    character offset, and the text itself base64-encoded, as data attributes; no script)."""
    offset = ascii_text.find(text)
    encoded = base64.b64encode(text.encode()).decode("ascii")
    return (
        f'<a href="#" class="lollms-text-tag" data-offset="{offset}" data-text="{encoded}">'
        f"{html.escape(caption)}</a>"
    )


class _Unavailable:
    """A lollms service the server does not give personalities (falsy; any use explains)."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __bool__(self) -> bool:
        return False

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"{self._service} is not available to personalities on lollms_server "
            f"(personality.app.{self._service}.{name})"
        )


class _Config:
    """The global lollms settings processors read (prompt templates and a few flags)."""

    separator_template = "\n"
    start_header_id_template = "!@>"
    end_header_id_template = ": "
    start_user_header_id_template = "!@>"
    end_user_header_id_template = ": "
    start_ai_header_id_template = "!@>"
    end_ai_header_id_template = ": "
    end_user_message_id_template = ""
    end_ai_message_id_template = ""
    system_message_template = "system"
    debug = False
    active_tti_service = "lollms_server"  # the server's [defaults] image binding

    def __init__(self, ctx_size: int, min_n_predict: int = 512) -> None:
        self.ctx_size = ctx_size
        self.min_n_predict = min_n_predict

    def __getattr__(self, name: str) -> Any:
        return None  # lollms options this server does not have read as unset

    def __getitem__(self, name: str) -> Any:  # config["ctx_size"], as lollms allows
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        value = getattr(self, name)
        return default if value is None else value


class _App:
    """``personality.app``: notifications become info events; ``tti`` paints with the
    server's image binding; speech, music and video services are not offered; the mounted
    personalities are the one answering."""

    def __init__(self, personality: AIPersonality) -> None:
        self._personality = personality
        self.tti = LollmsTTI("lollms_server", self)
        self.tts = _Unavailable("tts")
        self.stt = _Unavailable("stt")
        self.ttm = _Unavailable("ttm")
        self.ttv = _Unavailable("ttv")
        self.config = personality.config
        self.lollms_paths = personality.lollms_paths
        # lollms' mounted personalities: on a server, the one answering the request
        self.mounted_personalities = [personality]

    def notify(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self._personality._bridge.step("info", str(content))

    def ShowBlockingMessage(self, content: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        self._personality._bridge.step("info", str(content))  # no UI to block: shown as info

    def HideBlockingMessage(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        return None


class AIPersonality:
    """The mounted personality, as processors see it."""

    def __init__(
        self,
        personality: Any,
        bridge: Any,
        workspace: Workspace,
        image_files: list[Path],
        ctx_size: int = 4096,
    ) -> None:
        self._bridge = bridge
        self.name = personality.name
        self.personality_package_path = personality.folder
        self.personality_folder_name = personality.folder_name
        self.personality_output_folder = workspace.outputs
        categories = zoo_categories(personality.folder, personality.id)
        self.lollms_paths = LollmsPaths(workspace.home, workspace.outputs, categories)
        self.config = _Config(ctx_size, min(ctx_size // 4, 512))
        self.app = _App(self)
        self.callback: Callable[..., Any] | None = None
        self.processor: APScript | None = None
        self.help = personality.help
        self.welcome_message = personality.welcome_message
        self.personality_conditioning = personality.conditioning
        self.personality_description = personality.description
        self.user_message_prefix = personality.user_message_prefix
        self.ai_message_prefix = personality.ai_message_prefix
        self.link_text = personality.link_text
        self.anti_prompts = list(personality.anti_prompts)
        self.language = personality.language
        self.author = personality.author
        self.version = personality.version
        sampling = personality.sampling
        self.model_temperature = sampling.temperature
        self.model_top_k = sampling.top_k
        self.model_top_p = sampling.top_p
        self.model_repeat_penalty = sampling.repeat_penalty
        self.model_repeat_last_n = sampling.repeat_last_n
        self.model_n_predicts = sampling.max_tokens
        self.text_files: list[Path] = []
        self.image_files = image_files
        self.audio_files: list[Path] = []
        self.model = ModelView(bridge, ctx_size)

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"AIPersonality.{name} is not provided by lollms_server's zoo compatibility layer"
        )

    def info(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self._bridge.step("info", str(content))

    def InfoMessage(self, content: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        """A message lollms shows in a box; here an info step."""
        self._bridge.step("info", str(content))

    def success(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self._bridge.step("info", str(content))

    def warning(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self._bridge.step("warning", str(content))

    def error(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self._bridge.step("exception", str(content))

    def fast_gen(
        self,
        prompt: str,
        max_generation_size: int | None = None,
        *args: Any,
        callback: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> str:
        return str(self._bridge.generate(prompt, max_generation_size, callback=callback, **kwargs))

    def detect_antiprompt(self, text: str) -> str | None:
        """The first of the personality's anti-prompts found in ``text`` (case-insensitive)."""
        lowered = text.lower()
        return next((a for a in self.anti_prompts if a and a.lower() in lowered), None)

    # Helpers lollms also offers on the personality itself: they act through its processor.
    def _processor(self, name: str) -> Any:
        if self.processor is None:
            raise AttributeError(f"AIPersonality.{name} needs the processor to be built")
        return getattr(self.processor, name)

    def step_start(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("step_start")(*args, **kwargs)

    def step_end(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("step_end")(*args, **kwargs)

    def step(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("step")(*args, **kwargs)

    def sink(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("sink")(*args, **kwargs)

    def set_message_content(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("set_message_content")(*args, **kwargs)

    def yes_no(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("yes_no")(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("generate")(*args, **kwargs)

    def generate_with_images(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("fast_gen_with_images")(*args, **kwargs)

    def print_prompt(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("print_prompt")(*args, **kwargs)

    def build_prompt(self, *args: Any, **kwargs: Any) -> Any:
        return self._processor("build_prompt")(*args, **kwargs)


def _positional_room(function: Callable[..., Any], most: int) -> int:
    """How many positional arguments ``function`` takes, at most ``most`` (older zoo
    handlers take ``(prompt, full_context)``, newer ones also the callback, context, client)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return most
    kinds = [p.kind for p in parameters]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return most
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return min(most, sum(kind in positional for kind in kinds))


class APScript(DocumentTasks):
    """Base class of zoo processors."""

    def __init__(
        self,
        personality: AIPersonality,
        personality_config: TypedConfig | None = None,
        states_list: Any = None,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        self.personality = personality
        self.personality_config = personality_config
        self.states_list = states_list or []
        self.callback = callback
        self.config = personality.config
        self.function_definitions: list[Any] = []
        self.notify = personality.app.notify
        self.current_state = 0
        personality.processor = self

    # -- lollms' state machine (states_list: [{"name", "commands": {cmd: fn}, "default"}]) --
    def goto_state(self, state: int | str) -> None:
        if isinstance(state, str):
            names = [s.get("name") for s in self.states_list]
            if state not in names:
                raise ValueError(f"no state named {state!r}; states: {names}")
            state = names.index(state)
        if not 0 <= state < len(self.states_list):
            raise ValueError(f"no state {state}; {len(self.states_list)} states")
        self.current_state = state

    def process_state(
        self,
        command: str,
        full_context: str,
        callback: Callable[..., Any] | None = None,
        context_state: Any = None,
        client: Any = None,
    ) -> Any:
        """Run the current state's handler of ``command`` (its ``default`` otherwise)."""
        if not self.states_list:
            return None
        current = self.states_list[self.current_state]
        handler = (current.get("commands") or {}).get(command.strip()) or current.get("default")
        if handler is None:
            return None
        arguments = (command, full_context, callback, context_state, client)
        return handler(*arguments[: _positional_room(handler, len(arguments))])

    def remove_text_from_string(self, string: str, text_to_find: str) -> str:
        """``string`` cut where ``text_to_find`` first appears (case-insensitive)."""
        index = string.lower().find(text_to_find.lower())
        return string[:index] if index != -1 else string

    def add_file(
        self,
        path: Any,
        client: Any = None,
        callback: Callable[..., Any] | None = None,
        process: bool = True,
    ) -> bool:
        """Attach a file to the personality (images and text files, as lollms lists them)."""
        file = Path(path)
        is_image = file.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
        (self.personality.image_files if is_image else self.personality.text_files).append(file)
        return True

    def summarize_chunks(
        self,
        chunks: list[str],
        summary_instruction: str = "summarize",
        doc_name: str = "chunk",
        answer_start: str = "",
        max_generation_size: int = 3000,
        callback: Callable[..., Any] | None = None,
        chunk_summary_post_processing: Callable[[str], str] | None = None,
        summary_mode: SUMMARY_MODE = SUMMARY_MODE.SUMMARY_MODE_SEQUENCIAL,
    ) -> str:
        """lollms' two modes: one running summary that each chunk is fused into
        (sequential, the default), or each chunk summarized on its own, joined
        (hierarchical)."""
        summaries: list[str] = []
        summary = ""
        for index, chunk in enumerate(chunks):
            label = f"Summary of {doc_name}: chunk {index + 1} of {len(chunks)}"
            self.step_start(label)
            if summary_mode == SUMMARY_MODE.SUMMARY_MODE_SEQUENCIAL and summary:
                chunk = "\n".join(
                    [
                        f"{self.system_custom_header('previous chunks analysis')}{summary}",
                        f"{self.system_custom_header('current chunk')}{chunk}",
                        "Fuse the current chunk into the previous analysis.",
                    ]
                )
            summary = self._summarize_once(
                chunk, summary_instruction, doc_name, answer_start, max_generation_size
            )
            if chunk_summary_post_processing is not None:
                summary = chunk_summary_post_processing(summary)
            self.step_end(label)
            summaries.append(summary)
        if summary_mode == SUMMARY_MODE.SUMMARY_MODE_SEQUENCIAL:
            return summary
        return "\n".join(summaries)

    summerize_chunks = summarize_chunks  # lollms' older spelling

    def sequential_summarize(
        self,
        text: str,
        chunk_processing_prompt: str = "summarize",
        final_memory_processing_prompt: str = "",
        chunk_name: str = "chunk",
        max_generation_size: int = 3000,
        chunk_size: int = 4000,
        callback: Callable[..., Any] | None = None,
        **params: Any,
    ) -> str:
        """A running summary (the memory) updated chunk after chunk, then finished."""
        memory = ""
        chunks = [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)] or [""]
        for index, chunk in enumerate(chunks):
            self.step_start(f"Processing {chunk_name} {index + 1} of {len(chunks)}")
            memory = self._summarize_once(
                f"{memory}\n{chunk}".strip(),
                chunk_processing_prompt,
                chunk_name,
                "",
                max_generation_size,
            )
            self.step_end(f"Processing {chunk_name} {index + 1} of {len(chunks)}")
        if final_memory_processing_prompt:
            memory = self._summarize_once(
                memory, final_memory_processing_prompt, "memory", "", max_generation_size
            )
        return memory

    # -- hooks a processor may override ----------------------------------------------------
    def install(self) -> None:
        """Dependencies are never installed by the server."""

    def uninstall(self) -> None:
        pass

    def mounted(self) -> None:
        pass

    def selected(self) -> None:
        pass

    def settings_updated(self) -> None:
        pass

    def sink(self, s: Any = None, i: Any = None, d: Any = None) -> None:
        """A callback that drops what it gets."""

    def print_prompt(self, title: str, prompt: str) -> None:
        ASCIIColors.info(f"{title}:\n{prompt}")

    # -- message content -------------------------------------------------------------------
    def _send(
        self, data: Any, op: MSG_OPERATION_TYPE, callback: Callable[..., Any] | None, *extra: Any
    ) -> None:
        target = callback or self.callback
        if target is not None:
            target(data, op, *extra)
        else:
            self.personality._bridge.operation(data, op, *extra)

    def set_message_content(
        self,
        full_text: str,
        callback: Callable[..., Any] | None = None,
        msg_type: MSG_OPERATION_TYPE = MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_SET_CONTENT,
    ) -> None:
        self._send(full_text, msg_type, callback)

    def add_chunk_to_message_content(
        self, full_text: str, callback: Callable[..., Any] | None = None
    ) -> None:
        self._send(full_text, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_ADD_CHUNK, callback)

    def set_message_content_invisible_to_ai(
        self, full_text: str, callback: Callable[..., Any] | None = None
    ) -> None:
        self._send(
            full_text, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_SET_CONTENT_INVISIBLE_TO_AI, callback
        )

    def set_message_content_invisible_to_user(
        self, full_text: str, callback: Callable[..., Any] | None = None
    ) -> None:
        self._send(
            full_text, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_SET_CONTENT_INVISIBLE_TO_USER, callback
        )

    def set_message_html(self, html_ui: str, callback: Callable[..., Any] | None = None) -> None:
        self._send(html_ui, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_UI, callback)

    ui = set_message_html
    full = set_message_content  # lollms 9.x names
    chunk = add_chunk_to_message_content

    def new_message(
        self,
        message_text: str,
        message_type: Any = None,
        metadata: Any = None,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        self._send(message_text, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_NEW_MESSAGE, callback)

    def finished_message(
        self, message_text: str = "", callback: Callable[..., Any] | None = None
    ) -> None:
        self._send(message_text, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_FINISHED_MESSAGE, callback)

    # -- progress --------------------------------------------------------------------------
    def step_start(self, step_text: str, callback: Callable[..., Any] | None = None) -> None:
        self._send(step_text, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_STEP_START, callback)

    def step_end(
        self, step_text: str, status: bool = True, callback: Callable[..., Any] | None = None
    ) -> None:
        op = (
            MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_STEP_END_SUCCESS
            if status
            else MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_STEP_END_FAILURE
        )
        self._send(step_text, op, callback)

    def step(self, step_text: str, callback: Callable[..., Any] | None = None) -> None:
        self._send(step_text, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_STEP, callback)

    def step_progress(
        self, step_text: str, progress: float, callback: Callable[..., Any] | None = None
    ) -> None:
        self._send(
            step_text,
            MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_STEP_PROGRESS,
            callback,
            {"progress": progress},
        )

    def exception(self, ex: Any, callback: Callable[..., Any] | None = None) -> None:
        self._send(str(ex), MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_EXCEPTION, callback)

    def warning(self, warning: str, callback: Callable[..., Any] | None = None) -> None:
        self._send(warning, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_WARNING, callback)

    def info(self, info_text: str, callback: Callable[..., Any] | None = None) -> None:
        # lollms shows info() as the message's content.
        self._send(info_text, MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_SET_CONTENT, callback)

    def json(
        self,
        title: str,
        json_infos: dict[str, Any],
        callback: Callable[..., Any] | None = None,
        indent: int = 4,
    ) -> None:
        """JSON shown to the client; ``json(data, callback)`` (no title) is read as lollms 9
        processors meant it, and values JSON cannot hold are written as text."""
        if callable(json_infos) and callback is None:
            title, json_infos, callback = "JSON", title, json_infos  # type: ignore[assignment]
        self._send(
            [{"title": str(title), "content": json.dumps(json_infos, indent=indent, default=str)}],
            MSG_OPERATION_TYPE.MSG_OPERATION_TYPE_JSON_INFOS,
            callback,
        )

    def error(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self.personality.error(content)

    def success(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self.personality.success(content)

    def InfoMessage(self, content: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        self.personality.info(content)

    # -- generation ------------------------------------------------------------------------
    def fast_gen(
        self,
        prompt: str,
        max_generation_size: int | None = None,
        placeholders: dict[str, Any] | None = None,
        sacrifice: list[str] | None = None,
        debug: bool = False,
        callback: Callable[..., Any] | None = None,
        show_progress: bool = False,
        **params: Any,
    ) -> str:
        """Generate from a lollms-text ``prompt``; ``{{name}}`` placeholders are filled, the
        ``sacrifice`` ones cut to fit the context (``previous_discussion`` by default)."""
        if placeholders:
            ctx = int(self.personality.model.config["ctx_size"])
            room = max_generation_size or self.config.min_n_predict
            model = self.personality.model
            prompt = PromptReshaper(prompt).build(
                {k: str(v) for k, v in placeholders.items()},
                model.tokenize,
                model.detokenize,
                max(ctx - room, 0),
                ["previous_discussion"] if sacrifice is None else sacrifice,
            )
        params.pop("max_size", None)
        return str(
            self.personality._bridge.generate(
                prompt, max_generation_size, callback=callback, **params
            )
        )

    def generate(
        self,
        prompt: str,
        max_size: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repeat_penalty: float | None = None,
        repeat_last_n: int | None = None,
        callback: Callable[..., Any] | None = None,
        debug: bool = False,
        **params: Any,
    ) -> str:
        return str(
            self.personality._bridge.generate(
                prompt,
                max_size,
                callback=callback,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                repeat_penalty=repeat_penalty,
                repeat_last_n=repeat_last_n,
            )
        )

    def fast_gen_with_images(
        self, prompt: str, images: list[Any], *args: Any, **kwargs: Any
    ) -> str:
        bridge = self.personality._bridge
        return str(
            bridge.generate(
                prompt,
                kwargs.pop("max_generation_size", None),
                images=images,
                callback=kwargs.pop("callback", None),
            )
        )

    generate_with_images = fast_gen_with_images

    def generate_code(
        self,
        prompt: str,
        images: Any = None,
        template: str | None = None,
        language: str = "json",
        code_tag_format: str = "markdown",
        max_size: int | None = None,
        callback: Callable[..., Any] | None = None,
        **params: Any,
    ) -> str | None:
        ask = f"{prompt}\nAnswer with one ```{language} code block."
        if template:
            ask += f"\nFollow this template:\n```{language}\n{template}\n```"
        text = self.generate(ask, max_size, callback=callback)
        blocks = self.extract_code_blocks(text)
        return blocks[0]["content"] if blocks else None

    def extract_code_blocks(
        self, text: str, return_remaining_text: bool = False
    ) -> list[dict[str, Any]]:
        return [
            {
                "index": i,
                "file_name": "",
                "content": m.group(2).rstrip("\n"),
                "type": m.group(1) or "language-specific",
                "is_complete": True,
            }
            for i, m in enumerate(_CODE_BLOCK.finditer(text))
        ]

    def yes_no(
        self,
        question: str,
        context: str = "",
        max_answer_length: int | None = None,
        conditionning: str = "",
        return_explanation: bool = False,
        callback: Callable[..., Any] | None = None,
    ) -> Any:
        return self.personality._bridge.yes_no(question, context, conditionning, return_explanation)

    def multichoice_question(
        self,
        question: str,
        possible_answers: list[str],
        context: str = "",
        max_answer_length: int | None = None,
        conditionning: str = "",
        return_explanation: bool = False,
        callback: Callable[..., Any] | None = None,
    ) -> Any:
        return self.personality._bridge.multichoice(
            question, list(possible_answers), context, conditionning, return_explanation
        )

    # -- lollms prompt headers -------------------------------------------------------------
    def system_custom_header(self, name: str) -> str:
        return f"{self.config.start_header_id_template}{name}{self.config.end_header_id_template}"

    def user_custom_header(self, name: str = "user") -> str:
        c = self.config
        return f"{c.start_user_header_id_template}{name}{c.end_user_header_id_template}"

    def ai_custom_header(self, name: str = "assistant") -> str:
        c = self.config
        return f"{c.start_ai_header_id_template}{name}{c.end_ai_header_id_template}"

    @property
    def system_full_header(self) -> str:
        return self.system_custom_header(self.config.system_message_template)

    @property
    def user_full_header(self) -> str:
        return self.user_custom_header(self.personality.user_message_prefix)

    @property
    def ai_full_header(self) -> str:
        return self.ai_custom_header(self.personality.ai_message_prefix)

    def generate_text(
        self,
        prompt: str,
        images: Any = None,
        template: str | None = None,
        max_size: int | None = None,
        callback: Callable[..., Any] | None = None,
        **params: Any,
    ) -> str:
        return self.generate(prompt, max_size, callback=callback)

    def _summarize_once(
        self,
        text: str,
        summary_instruction: str = "summarize",
        doc_name: str = "chunk",
        answer_start: str = "",
        max_generation_size: int = 3000,
    ) -> str:
        """One generation: ``text`` with ``summary_instruction``."""
        prompt = "\n".join(
            [
                f"{self.system_full_header}{summary_instruction}",
                f"{self.user_custom_header(doc_name)}{text}",
                f"{self.ai_full_header}{answer_start}",
            ]
        )
        return answer_start + self.fast_gen(prompt, max_generation_size)

    def build_prompt(
        self,
        prompt_parts: list[str],
        sacrifice_id: int = -1,
        context_size: int | None = None,
        minimum_spare_context_size: int | None = None,
    ) -> str:
        """The non-empty parts joined; with ``sacrifice_id``, that part keeps only its end,
        so that the whole leaves ``minimum_spare_context_size`` tokens of the context free
        (lollms' behaviour)."""
        parts = list(prompt_parts)
        if sacrifice_id != -1 and len(parts[sacrifice_id]) >= 50:
            model = self.personality.model
            size = context_size or int(model.config["ctx_size"])
            spare = minimum_spare_context_size or self.config.min_n_predict
            others = sum(len(model.tokenize(p)) for i, p in enumerate(parts) if i != sacrifice_id)
            room = max(size - others - spare, 0)
            tokens = model.tokenize(parts[sacrifice_id])
            if len(tokens) > room:
                parts[sacrifice_id] = model.detokenize(tokens[len(tokens) - room :]) if room else ""
        return self.config.separator_template.join(p for p in parts if p)

    def answer(
        self,
        context_details: Any,
        custom_entries: str = "",
        send_full: bool = True,
        callback: Callable[..., Any] | None = None,
    ) -> str:
        """lollms' plain answer to the discussion: the prompt built from ``context_details``
        (plus ``custom_entries``) generated; when the user asked to continue, what came
        before (``previous_chunk``) leads it; shown as the message when ``send_full``."""
        get = _context_getter(context_details)
        prompt = self.build_prompt_from_context_details(context_details, custom_entries)
        out = self.fast_gen(prompt, callback=callback)
        if get("is_continue"):
            out = str(get("previous_chunk") or "") + out
        if send_full:
            self.set_message_content(out)
        return out

    def build_prompt_from_context_details(
        self, context_details: Any, custom_entries: str = "", suppress: Any = ()
    ) -> str:
        get = _context_getter(context_details)
        parts = [f"!@>system:\n{get('conditionning') or ''}".rstrip()]
        for key in ("documentation", "user_description", "extra"):
            if get(key) and key not in suppress:
                parts.append(f"!@>{key}:\n{get(key)}")
        if get("discussion_messages"):
            parts.append(str(get("discussion_messages")))
        if custom_entries:
            parts.append(custom_entries)
        parts.append(f"!@>{self.personality.ai_message_prefix}:")
        return self.build_prompt(parts)

    # -- HTML blocks ------------------------------------------------------------------------
    def build_a_document_block(
        self, title: Any = "Title", link: Any = "", content: Any = ""
    ) -> str:
        """A block showing a document (a linked title and its text), escaped; like lollms'
        f-string, any value shows as its text (processors pass lists)."""
        heading = html.escape(str(title))
        if link:
            heading = (
                f'<a href="{html.escape(str(link), quote=True)}" target="_blank">{heading}</a>'
            )
        return (
            f'<div class="lollms-document"><h3>{heading}</h3>'
            f"<pre>{html.escape(str(content))}</pre></div>"
        )

    # -- function calls ------------------------------------------------------------------
    def extract_function_calls_as_json(self, text: str) -> list[dict[str, Any]]:
        """The function calls in ``text`` (``function`` markdown blocks of JSON)."""
        return calls.extract_function_calls(text)

    def execute_function_calls(
        self, function_calls: list[dict[str, Any]], function_definitions: list[dict[str, Any]]
    ) -> list[Any]:
        """Run each call with its definition's ``function``; errors become text results."""
        return calls.execute_function_calls(function_calls, function_definitions)

    def generate_with_function_calls(
        self,
        context_details: Any,
        functions: list[dict[str, Any]],
        max_answer_length: int | None = None,
        callback: Callable[..., Any] | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        """One answer offered ``functions``, and the calls it makes."""
        details = dict(context_details.__dict__) if hasattr(context_details, "__dict__") else {}
        details = {**details, **(context_details if isinstance(context_details, dict) else {})}
        details["conditionning"] = "\n\n".join(
            p for p in (details.get("conditionning"), calls.function_prompt(functions)) if p
        )
        text = self.fast_gen(
            self.build_prompt_from_context_details(details), max_answer_length, callback=callback
        )
        return text, calls.extract_function_calls(text)

    def interact_with_function_call(
        self,
        context_details: Any,
        function_definitions: list[dict[str, Any]],
        prompt_after_execution: bool = True,
        callback: Callable[..., Any] | None = None,
        hide_function_call: bool = False,
        separate_output: bool = False,
        max_nested_function_calls: int = 10,
    ) -> str:
        """Answer with the model calling ``function_definitions`` (lollms' format), their
        results fed back until it answers without a call; returns the final text."""
        return calls.interact(
            self,
            context_details,
            function_definitions,
            prompt_after_execution,
            callback,
            max_nested_function_calls,
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"APScript.{name} is not provided by lollms_server's zoo compatibility layer"
        )


__getattr__ = missing_name(__name__)
