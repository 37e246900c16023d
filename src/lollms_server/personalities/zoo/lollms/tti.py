"""``lollms.tti``: text-to-image services; here every one paints with the server's own
image binding (``[defaults] tti_binding`` / ``tti_model``), whatever service a processor
names (``LollmsSD``, ``LollmsDalle``...). Images are saved in the discussion folder (or the
``output_path`` given), where the server serves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lollms_server.bindings.types import MediaOptions
from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.runtime import current

__all__ = ["LollmsTTI"]


def _number(value: Any, low: float, high: float) -> Any:
    if not isinstance(value, int | float) or value < 0:
        return None  # unset, or lollms' -1: the engine's choice
    return min(max(value, low), high)


def _seed(seed: Any) -> int | None:
    return seed if isinstance(seed, int) and seed >= 0 else None


def _options(negative_prompt: str, width: Any, height: Any) -> MediaOptions:
    """Only what every image binding takes: size and negative prompt (lollms' steps, scale
    and sampler are its engine's settings; the server's binding keeps its own)."""
    return MediaOptions(
        negative_prompt=negative_prompt or None,
        width=_number(width, 8, 8192),
        height=_number(height, 8, 8192),
    )


class LollmsTTI:
    """A text-to-image service: :meth:`paint` returns ``(file path, infos)``."""

    def __init__(self, name: str = "lollms_server", app: Any = None, *args: Any, **kwargs: Any):
        self.name = name
        self.app = app
        self.model = ""

    def paint(
        self,
        positive_prompt: str,
        negative_prompt: str = "",
        sampler_name: str = "",
        seed: int | None = None,
        scale: float | None = None,
        steps: int | None = None,
        img2img_denoising_strength: float | None = None,
        width: int | None = None,
        height: int | None = None,
        restore_faces: bool = True,
        output_path: str | Path | None = None,
        **kwargs: Any,
    ) -> tuple[str, dict[str, Any]]:
        """An image for ``positive_prompt`` from the server's image binding."""
        return self._paint(
            positive_prompt,
            [],
            _options(negative_prompt, width, height),
            _seed(seed),
            output_path or kwargs.get("output_folder"),
        )

    def paint_from_images(
        self,
        positive_prompt: str,
        images: list[str | Path],
        negative_prompt: str = "",
        sampler_name: str = "",
        seed: int | None = None,
        scale: float | None = None,
        steps: int | None = None,
        img2img_denoising_strength: float | None = None,
        width: int | None = None,
        height: int | None = None,
        restore_faces: bool = True,
        output_path: str | Path | None = None,
        **kwargs: Any,
    ) -> tuple[str, dict[str, Any]]:
        """An image from ``images`` and ``positive_prompt`` (image to image)."""
        return self._paint(
            positive_prompt,
            [Path(i) for i in images],
            _options(negative_prompt, width, height),
            _seed(seed),
            output_path or kwargs.get("output_folder"),
        )

    def _paint(
        self,
        prompt: str,
        images: list[Path],
        options: MediaOptions,
        seed: int | None,
        output: str | Path | None,
    ) -> tuple[str, dict[str, Any]]:
        run = current()
        if run is None:
            raise RuntimeError("images are painted only while the personality answers a request")
        folder = Path(output) if output else run.workspace.discussion
        if not folder.is_absolute():
            folder = run.workspace.home / folder
        path, infos = run.bridge.paint(prompt, options, seed, images, folder)
        return str(path), infos

    @staticmethod
    def verify(app: Any = None) -> bool:
        """The server's image binding is always the service."""
        return True

    @staticmethod
    def install(app: Any = None) -> bool:
        """Nothing to install."""
        return True

    @staticmethod
    def get(app: Any = None) -> type[LollmsTTI]:
        """The service class."""
        return LollmsTTI


__getattr__ = missing_name(__name__)
