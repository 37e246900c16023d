"""``lollms.utilities``: the helpers zoo processors import most, backed by lollms_server.

- URLs of files a processor wrote (``discussion_path_to_url``, ``output_file_path_to_url``):
  files under the personalities' data folder, served (keyed) by the server.
- ``PackageManager`` checks the server's environment and refuses every install;
  ``git_pull`` is refused (a personality does not update code on a server).
- ``PromptReshaper`` fills a prompt template, cutting the sacrificed parts to a token budget.
- Dialogs and console input have no one to ask on a server: they answer "no".

Relative paths given to these helpers lead to the personality's working folder.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import importlib
import io
import re
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml  # type: ignore[import-untyped]

from lollms_server.personalities.packages import (
    installed_version,
    module_available,
    requirement_met,
)
from lollms_server.personalities.registry import ISO_LANGUAGES
from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms.helpers import ASCIIColors, trace_exception
from lollms_server.personalities.zoo.runtime import file_url, working_folder
from lollms_server.personalities.zoo.sandbox import refuse_install

__all__ = [
    "ASCIIColors",
    "File_Path_Generator",
    "PackageManager",
    "PromptReshaper",
    "add_period",
    "app_path_to_url",
    "check_and_install_torch",
    "convert_language_name",
    "detect_antiprompt",
    "discussion_path_to_url",
    "encode_image",
    "file_path_to_url",
    "find_first_available_file_index",
    "find_next_available_filename",
    "gc",
    "git_pull",
    "is_asyncio_loop_running",
    "load_config",
    "output_file_path_to_url",
    "personality_path_to_url",
    "remove_text_from_string",
    "run_async",
    "safe_filename",
    "save_config",
    "show_console_custom_dialog",
    "show_custom_dialog",
    "show_message_dialog",
    "show_yes_no_dialog",
    "trace_exception",
    "yes_or_no_input",
]


def _place(path: str | Path) -> Path:
    """``path``, a relative one taken in the personality's working folder."""
    path = Path(path)
    return path if path.is_absolute() else working_folder() / path


# -- files and their URLs ---------------------------------------------------------------------
def discussion_path_to_url(file_path: str | Path) -> str:
    """The URL of a file in the discussion folder (any file under the data folder):
    ``/api/v1/personality_files/...``, fetched with the API key."""
    return file_url(_place(file_path))


def output_file_path_to_url(file_path: str | Path) -> str:
    """The URL of a file in the personality's outputs (any file under the data folder)."""
    return file_url(_place(file_path))


def personality_path_to_url(file_path: str | Path) -> str:
    """The URL of a file the processor wrote in its working folder (files of the
    personality's own folder are not served)."""
    return file_url(_place(file_path))


def app_path_to_url(file_path: str | Path) -> str:
    """The URL of an app (a web page) the processor wrote in its working folder."""
    return file_url(_place(file_path))


def file_path_to_url(file_path: str | Path) -> str:
    """The URL of a file the processor wrote (lollms' generic form of the three above)."""
    return file_url(_place(file_path))


def find_first_available_file_index(
    folder_path: str | Path, prefix: str, extension: str = ""
) -> int:
    """The smallest ``i`` (from 0) such that ``<prefix><i><extension>`` is not in the folder."""
    folder = _place(folder_path)
    taken = {
        f.name[len(prefix) : len(f.name) - len(extension)]
        for f in (folder.iterdir() if folder.is_dir() else ())
        if f.name.startswith(prefix) and f.name.endswith(extension)
    }
    index = 0
    while str(index) in taken:
        index += 1
    return index


def find_next_available_filename(folder_path: str | Path, prefix: str) -> Path:
    """``<folder>/<prefix>_<i>.png`` for the smallest ``i`` from 1 not taken (lollms names
    images this way); FileNotFoundError when the folder does not exist."""
    folder = _place(folder_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"The folder '{folder}' does not exist.")
    index = 1
    while (folder / f"{prefix}_{index}.png").exists():
        index += 1
    return folder / f"{prefix}_{index}.png"


class File_Path_Generator:  # noqa: N801 - lollms' name
    """lollms' generator of fresh file names in a folder."""

    @staticmethod
    def generate_unique_file_path(
        folder_path: str | Path, file_base_name: str, file_extension: str
    ) -> Path:
        """``<folder>/<base>_<i>.<extension>`` for the smallest ``i`` not taken."""
        folder = _place(folder_path)
        extension = "." + file_extension.lstrip(".")
        index = find_first_available_file_index(folder, f"{file_base_name}_", extension)
        return folder / f"{file_base_name}_{index}{extension}"


def encode_image(image_path: str | Path, max_image_width: int = -1) -> str:
    """The image file as base64 (narrowed to ``max_image_width`` pixels when wider; that
    needs Pillow)."""
    data = _place(image_path).read_bytes()
    if max_image_width > 0:
        try:
            from PIL import Image
        except ImportError:
            raise ImportError(
                "encode_image(max_image_width=...) needs Pillow, which is not installed"
            ) from None
        with Image.open(io.BytesIO(data)) as image:
            if image.width > max_image_width:
                height = round(image.height * max_image_width / image.width)
                out = io.BytesIO()
                image.resize((max_image_width, height)).save(out, format=image.format or "PNG")
                data = out.getvalue()
    return base64.b64encode(data).decode("ascii")


def load_config(file_path: str | Path) -> Any:
    """A YAML file's content."""
    with _place(file_path).open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def save_config(data: Any, file_path: str | Path) -> None:
    """Write ``data`` as YAML."""
    path = _place(file_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def convert_language_name(language: str) -> str:
    """A language name (``"French"``) or code as its ISO 639-1 code (``"fr"``); ``"en"`` for
    an unknown one."""
    wanted = language.strip().lower().replace(".", "")
    if wanted in ISO_LANGUAGES:
        return wanted
    return next((code for code, name in ISO_LANGUAGES.items() if name == wanted), "en")


# -- packages and code --------------------------------------------------------------------------
class PackageManager:
    """lollms' package manager: checks the server's environment; installs are refused."""

    @staticmethod
    def check_package_installed(package_name: str) -> bool:
        """Whether ``import package_name`` can work."""
        return module_available(package_name)

    @staticmethod
    def check_package_installed_with_version(
        package_name: str, min_version: str | None = None
    ) -> bool:
        """Whether the distribution is installed, at ``min_version`` or later."""
        return requirement_met(package_name, f">={min_version}" if min_version else None)

    @staticmethod
    def get_installed_version(package: str) -> str | None:
        """The installed version of a distribution, or None."""
        return installed_version(package)

    @staticmethod
    def install_package(package_name: str, *args: Any, **kwargs: Any) -> bool:
        """Refused (returns False)."""
        refuse_install([package_name], "PackageManager.install_package")
        return False

    @staticmethod
    def install_or_update(package_name: str, *args: Any, **kwargs: Any) -> bool:
        """Refused (returns False)."""
        refuse_install([package_name], "PackageManager.install_or_update")
        return False

    @staticmethod
    def reinstall(package_name: str, *args: Any, **kwargs: Any) -> bool:
        """Refused (returns False)."""
        refuse_install([package_name], "PackageManager.reinstall")
        return False

    @staticmethod
    def uninstall_package(package_name: str, *args: Any, **kwargs: Any) -> bool:
        """Refused (returns False)."""
        refuse_install([package_name], "PackageManager.uninstall_package")
        return False

    @staticmethod
    def safe_import(
        module_name: str, library_name: str | None = None, *args: Any, **kwargs: Any
    ) -> ModuleType:
        """The module, imported; when missing, its install is refused (ModuleNotFoundError)."""
        if not module_available(module_name):
            message = refuse_install([library_name or module_name], "PackageManager.safe_import")
            raise ModuleNotFoundError(f"No module named '{module_name}': {message}")
        return importlib.import_module(module_name)


def check_and_install_torch(enable_gpu: bool = False, version: float = 2.2) -> bool:
    """True when torch is installed; installing it is refused (False)."""
    if module_available("torch"):
        return True
    refuse_install(["torch"], "check_and_install_torch")
    return False


def git_pull(folder_path: str | Path) -> None:
    """Refused: a personality does not update code on the server (PermissionError)."""
    message = (
        f"git_pull of {Path(folder_path).name} was refused: a personality does not update "
        "code on the server; an operator updates the personalities folder"
    )
    ASCIIColors.warning(message)
    raise PermissionError(message)


# -- prompts --------------------------------------------------------------------------------
class PromptReshaper:
    """A prompt template with ``{{name}}`` placeholders, filled to fit a token budget."""

    def __init__(self, template: str) -> None:
        self.template = template

    def replace(self, placeholders: dict[str, str]) -> str:
        """The template with each key of ``placeholders`` (written as is) replaced."""
        text = self.template
        for placeholder, value in placeholders.items():
            text = text.replace(placeholder, value)
        return text

    def build(
        self,
        placeholders: dict[str, str],
        tokenize: Callable[[str], Sequence[int]],
        detokenize: Callable[[Sequence[int]], str],
        max_nb_tokens: int,
        place_holders_to_sacrifice: Sequence[str] = (),
    ) -> str:
        """Fill ``{{key}}`` placeholders; a sacrificed one keeps only its last tokens, as
        many as fit in ``max_nb_tokens`` with the rest of the text."""
        text = self.template
        for key, value in placeholders.items():
            mark = "{{" + key + "}}"
            if key in place_holders_to_sacrifice:
                room = max(max_nb_tokens - len(tokenize(text.replace(mark, ""))), 0)
                tokens = list(tokenize(value))
                if len(tokens) > room:
                    value = detokenize(tokens[len(tokens) - room :]) if room else ""
            text = text.replace(mark, value)
        return text


# -- text -----------------------------------------------------------------------------------------
def add_period(text: str) -> str:
    """``text`` ending with a full stop (added when it ends with none of ``.!?``)."""
    stripped = text.rstrip()
    return stripped if not stripped or stripped[-1] in ".!?" else stripped + "."


def remove_text_from_string(string: str, text_to_find: str) -> str:
    """``string`` cut at the first occurrence of ``text_to_find`` (ignoring case)."""
    index = string.lower().find(text_to_find.lower())
    return string[:index] if index >= 0 else string


def detect_antiprompt(text: str, anti_prompts: Sequence[str] = ("!@>",)) -> str | None:
    """The first of ``anti_prompts`` found in ``text`` (ignoring case, lower-cased), or None."""
    lowered = text.lower()
    for prompt in anti_prompts:
        if prompt.lower() in lowered:
            return prompt.lower()
    return None


def safe_filename(filename: str, max_length: int = 255) -> str:
    """``filename`` with only letters, digits, ``.``, ``-`` and ``_`` (``_`` for the rest),
    never a dot file or empty, at most ``max_length`` characters."""
    name = re.sub(r"[^\w.\-]", "_", Path(str(filename)).name).lstrip(".")
    return (name or "file")[:max_length]


# -- no one to ask on a server --------------------------------------------------------------------
def show_yes_no_dialog(title: str, text: str) -> bool:
    """No dialog on a server: logged, and answered "no"."""
    ASCIIColors.warning(f"dialog '{title}' not shown (no user interface on a server): {text}")
    return False


def show_message_dialog(title: str, text: str) -> bool:
    """No dialog on a server: logged."""
    ASCIIColors.info(f"{title}: {text}")
    return True


def show_custom_dialog(title: str, text: str, options: Sequence[str] = ()) -> Any:
    """No dialog on a server: logged, and answered None (no choice)."""
    ASCIIColors.warning(f"dialog '{title}' not shown (no user interface on a server): {text}")
    return None


def show_console_custom_dialog(title: str, text: str, options: Sequence[str] = ()) -> Any:
    """No console on a server: logged, and answered None (no choice)."""
    return show_custom_dialog(title, text, options)


def yes_or_no_input(prompt: str) -> bool:
    """No console on a server: logged, and answered "no"."""
    ASCIIColors.warning(f"question not asked (no console on a server): {prompt}")
    return False


# -- asyncio ------------------------------------------------------------------------------------
def is_asyncio_loop_running() -> bool:
    """Whether the calling thread runs an event loop (a processor's thread does not)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` to its end and return its result (in a thread of its own when the
    calling thread runs a loop)."""
    if not is_asyncio_loop_running():
        return asyncio.run(coroutine)
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:  # handed back to the caller
            errors.append(exc)

    thread = threading.Thread(target=target, name="lollms-run-async")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


__getattr__ = missing_name(__name__)
