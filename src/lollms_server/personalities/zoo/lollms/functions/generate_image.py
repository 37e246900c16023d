"""``lollms.functions.generate_image``: an image from the server's image binding
(``[defaults] tti_binding``), saved in the discussion folder and shown by its URL."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms.utilities import discussion_path_to_url

__all__ = ["build_image", "build_image_from_simple_prompt", "build_image_function"]

logger = logging.getLogger("lollms_server.personalities.zoo")


def build_image(
    prompt: str,
    negative_prompt: str = "",
    width: int = 1024,
    height: int = 1024,
    processor: Any = None,
    client: Any = None,
    return_format: str = "markdown",
) -> Any:
    """Paint ``prompt``; return it as markdown (default), ``url``, ``path`` or
    ``url_and_path``, or a sentence saying why it could not be made."""
    try:
        folder = client.discussion.discussion_folder if client is not None else None
        file, _ = processor.personality.app.tti.paint(
            prompt, negative_prompt, width=width, height=height, output_path=folder
        )
        url = discussion_path_to_url(file)
    except Exception as exc:  # the model (or the processor) reads why
        logger.warning("build_image failed: %s: %s", type(exc).__name__, exc)
        return f"Couldn't generate image: {exc}"
    formats: dict[str, Any] = {
        "markdown": f"\n![]({url})",
        "url": url,
        "path": file,
        "url_and_path": {"url": url, "path": file},
    }
    return formats.get(
        return_format,
        f"Invalid return_format: {return_format}. Supported formats are 'markdown', 'url', "
        "'path', and 'url_and_path'.",
    )


def build_image_from_simple_prompt(
    prompt: str,
    processor: Any,
    client: Any,
    width: int = 1024,
    height: int = 1024,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Paint a short idea: the model first writes the full image prompt, then the server's
    image binding paints it (markdown, or a sentence saying why it could not be made)."""
    from lollms_server.personalities.zoo.lollms.functions.prompting.image_gen_prompts import (
        get_image_gen_prompt,
    )

    try:
        system = get_image_gen_prompt("Default")
        full = processor.fast_gen(
            f"{processor.system_full_header}{system}\n{processor.user_full_header}{prompt}\n"
            f"{processor.ai_full_header}"
        ).strip()
    except Exception as exc:
        logger.warning("build_image_from_simple_prompt: %s: %s", type(exc).__name__, exc)
        full = ""
    return build_image(full or prompt, "", width, height, processor, client)


def build_image_function(processor: Any, client: Any) -> dict[str, Any]:
    """The function definition of ``build_image`` for ``interact_with_function_call``."""
    return {
        "function_name": "build_image",
        "function": partial(build_image, processor=processor, client=client),
        "function_description": "Builds and shows an image from a prompt, width and height "
        "(a square is 1024x1024, a portrait 1024x1820, a landscape 1820x1024; multiples of 8).",
        "function_parameters": [
            {"name": "prompt", "type": "str"},
            {"name": "negative_prompt", "type": "str"},
            {"name": "width", "type": "int"},
            {"name": "height", "type": "int"},
        ],
    }


__getattr__ = missing_name(__name__)
