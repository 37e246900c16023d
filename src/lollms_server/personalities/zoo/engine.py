"""``personality.model``: the request's model as lollms' binding object.

Processors read ``model.config["ctx_size"]``, count with ``model.tokenize`` and sometimes
generate with ``model.generate``; all of it goes through the bridge (the server's binding,
scheduler and the client's limits). Nothing else of an engine is reachable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lollms_server.personalities.zoo.fit import answer_room
from lollms_server.personalities.zoo.lollms.config import BaseConfig

if TYPE_CHECKING:
    from lollms_server.personalities.zoo.bridge import Bridge

__all__ = ["ModelView"]


class ModelView:
    """The model answering the request (``personality.model``)."""

    def __init__(self, bridge: Bridge, ctx_size: int) -> None:
        self._bridge = bridge
        request = bridge.request
        self.model_name = request.model_name or ""
        self.binding_name = request.binding_name or ""
        self.binding_folder_name = self.binding_name
        self.config = BaseConfig(
            config={
                "ctx_size": ctx_size,
                "max_n_predict": request.params.max_tokens or ctx_size,
                "min_n_predict": answer_room(ctx_size, None),
                "model_name": self.model_name,
                "binding_name": self.binding_name,
            }
        )

    def tokenize(self, prompt: str) -> list[int]:
        """Token ids of ``prompt``."""
        return self._bridge.tokenize(prompt)

    def detokenize(self, tokens_list: Sequence[int]) -> str:
        """The text of token ids."""
        return self._bridge.detokenize(list(tokens_list))

    def count_tokens(self, prompt: str) -> int:
        """How many tokens ``prompt`` takes."""
        return len(self.tokenize(prompt))

    def get_ctx_size(self) -> int:
        """The context size in tokens."""
        return int(self.config["ctx_size"])

    def generate(
        self,
        prompt: str,
        n_predict: int | None = None,
        callback: Callable[..., Any] | None = None,
        verbose: bool = False,
        **gpt_params: Any,
    ) -> str:
        """Generate from the raw ``prompt`` (lollms text), each piece passed to ``callback``."""
        return self._bridge.generate(prompt, n_predict, callback=callback, **gpt_params)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"personality.model.{name} is not provided on lollms_server (the model is reached "
            "through generate, tokenize and config only)"
        )
