"""The document and code helpers of lollms' ``APScript`` that build on its generation:
summaries that shrink a text until it fits, extraction, translation, saving text, and
running Python the model wrote.

Python runs in the processor's own process (:mod:`..child`), held to the same policy as the
processor: writes only in its working folder, no network unless allowed, its CPU and memory
limits. lollms runs ``execute_python`` as a ``python`` subprocess, which would escape the
audit hooks; here it runs in a thread of the processor's process instead, with its output
captured.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lollms_server.personalities.zoo.lollms.types import SUMMARY_MODE

if TYPE_CHECKING:
    from lollms_server.personalities.zoo.lollms.personality import AIPersonality, _Config

__all__ = ["DocumentTasks", "token_chunks"]

logger = logging.getLogger("lollms_server.personalities.zoo")

MAX_DEPTH = 8  # rounds of summarizing a text that still does not fit (lollms: unbounded)


def token_chunks(text: str, size: int, tokenize: Any, detokenize: Any) -> list[str]:
    """``text`` cut into pieces of at most ``size`` tokens."""
    tokens = tokenize(text)
    size = max(size, 1)
    return [detokenize(tokens[i : i + size]) for i in range(0, len(tokens), size)] or [""]


class DocumentTasks:
    """Mixed into ``APScript``: what it needs is its ``personality``, ``fast_gen``,
    ``summarize_chunks``, ``step_start``/``step``/``step_end``, ``extract_code_blocks``,
    ``build_prompt``, its ``config`` and ``system_custom_header``."""

    personality: AIPersonality
    fast_gen: Callable[..., str]
    summarize_chunks: Callable[..., str]
    step_start: Callable[..., None]
    step_end: Callable[..., None]
    step: Callable[..., None]
    extract_code_blocks: Callable[..., list[dict[str, Any]]]
    build_prompt: Callable[..., str]
    system_custom_header: Callable[[str], str]
    config: _Config  # the personality's lollms config (its prompt templates)

    def _system(self) -> str:
        return self.system_custom_header(self.config.system_message_template)

    def _chunks_of(self, text: str) -> list[str]:
        """``text`` in pieces of 60% of the context, lollms' chunk size for summaries."""
        model = self.personality.model
        size = int(int(model.config["ctx_size"]) * 0.6)
        return token_chunks(text, size, model.tokenize, model.detokenize)

    def summarize_text(
        self,
        text: str,
        summary_instruction: str = "summarize",
        doc_name: str = "chunk",
        answer_start: str = "",
        max_generation_size: int = 3000,
        max_summary_size: int = 512,
        callback: Callable[..., Any] | None = None,
        chunk_summary_post_processing: Callable[[str], str] | None = None,
        summary_mode: SUMMARY_MODE = SUMMARY_MODE.SUMMARY_MODE_SEQUENCIAL,
    ) -> str:
        """``text`` summarized chunk by chunk, again and again, until it is at most
        ``max_summary_size`` tokens or a round no longer shortens it (lollms: by more than
        10 tokens); a text that fits already comes back as it is."""
        count = len(self.personality.model.tokenize(text))
        depth = 0
        while count > max_summary_size and depth < MAX_DEPTH:
            label = f"Compressing {doc_name}... [depth {depth + 1}]"
            self.step_start(label)
            chunks = self._chunks_of(text)
            text = self.summarize_chunks(
                chunks,
                summary_instruction,
                doc_name,
                answer_start,
                max_generation_size,
                callback,
                chunk_summary_post_processing=chunk_summary_post_processing,
                summary_mode=summary_mode,
            )
            before, count = count, len(self.personality.model.tokenize(text))
            self.step(f"Current text size: {count}, max summary size: {max_summary_size}")
            self.step_end(label)
            depth += 1
            if before - count <= 10 or len(chunks) == 1:
                break
        return text

    summerize_text = summarize_text  # lollms' older spelling, still called by the zoo

    def smart_data_extraction(
        self,
        text: str,
        data_extraction_instruction: str = "summarize",
        final_task_instruction: str = "reformulate with better wording",
        doc_name: str = "chunk",
        answer_start: str = "",
        max_generation_size: int = 3000,
        max_summary_size: int = 512,
        callback: Callable[..., Any] | None = None,
        chunk_summary_post_processing: Callable[[str], str] | None = None,
        summary_mode: SUMMARY_MODE = SUMMARY_MODE.SUMMARY_MODE_SEQUENCIAL,
    ) -> str:
        """The data ``data_extraction_instruction`` asks for, shrunk to fit, then rewritten
        once with ``final_task_instruction``."""
        text = self.summarize_text(
            text,
            data_extraction_instruction,
            doc_name,
            answer_start,
            max_generation_size,
            max_summary_size,
            callback,
            chunk_summary_post_processing,
            summary_mode,
        )
        self.step_start("Rewriting...")
        text = self.summarize_chunks(
            [text],
            final_task_instruction,
            doc_name,
            answer_start,
            max_generation_size,
            callback,
            chunk_summary_post_processing=chunk_summary_post_processing,
        )
        self.step_end("Rewriting...")
        return text

    def translate(
        self, text_chunk: str, output_language: str = "french", max_generation_size: int = 3000
    ) -> str:
        """``text_chunk`` in ``output_language``, nothing added."""
        prompt = "\n".join(
            [
                f"{self._system()}Translate the following text to {output_language}.",
                "Be faithful to the original text: do not add or remove any information.",
                "Answer with the translated text only, without comments.",
                f"{self.system_custom_header('text to translate')}{text_chunk}",
                f"{self.system_custom_header('translation')}",
            ]
        )
        return self.fast_gen(prompt, max_generation_size)

    def save_text(self, text: str, path: str | Path) -> None:
        """Write ``text`` to ``path`` (UTF-8; in the working folder unless absolute)."""
        Path(path).write_text(text, encoding="utf-8")

    def execute_python(
        self, code: str, code_folder: str | Path | None = None, code_file_name: str | None = None
    ) -> str:
        """Run ``code`` as a script (saved as ``code_file_name`` in ``code_folder``, by
        default the personality's outputs folder); what it printed, or the error."""
        folder = Path(code_folder or self.personality.lollms_paths.personal_outputs_path)
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / (code_file_name or "ai_code.py")
        script.write_text(code, encoding="utf-8")
        output = io.StringIO()
        before = Path.cwd()
        try:
            os.chdir(folder)
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                return f"Error executing Python code: exit status {exc.code}\n{output.getvalue()}"
        except Exception:
            lines = traceback.format_exc().splitlines()
            return f"Error executing Python code: {output.getvalue()}" + "\n".join(lines[-8:])
        finally:
            os.chdir(before)
        return output.getvalue()

    def build_and_execute_python_code(
        self,
        context: str,
        instructions: str,
        execution_function_signature: str,
        extra_imports: str = "",
    ) -> tuple[types.ModuleType, str] | None:
        """Ask the model for a function with ``execution_function_signature`` doing
        ``instructions``; the module that defines it and its code (None without code)."""
        prompt = self.build_prompt(
            [
                f"{self.system_custom_header('context')}{context}",
                f"{self._system()}{instructions}",
                f"Here is the signature of the function:\n{execution_function_signature}",
                "Do not call the function, just write it, without usage example or comments.",
                f"{self.system_custom_header('coder')}```python",
            ],
            1,
        )
        text = self.fast_gen(prompt)  # the prompt opened the block; a model may open it again
        blocks = self.extract_code_blocks(
            text if text.lstrip().startswith("```") else "```python\n" + text
        )
        if not blocks:
            return None
        code = "\n".join([extra_imports, blocks[0]["content"]])
        module = types.ModuleType("custom_module")
        exec(compile(code, "<model code>", "exec"), module.__dict__)  # noqa: S102 - lollms' API
        return module, code

    def play_mp3(self, file_path: str | Path) -> None:
        """There is no speaker on a server: nothing is played (logged)."""
        logger.info("play_mp3(%s): a server plays no sound; skipped", Path(file_path).name)
