"""The front-end kit: what every API dialect (native, OpenAI, Ollama, lollms) shares.

A dialect is a schema module, a translator and a route module; the translator builds a
``GenerationRequest`` with :func:`~lollms_server.api.kit.media.decode_media` and
``SamplingParams.from_wire``, and shows a run through an
:class:`~lollms_server.api.kit.encode.Encoder` (a stream with :func:`encode`, a whole answer
from the same fold with :func:`lollms_server.generation.run.collect`). Listing models over
every instance is :func:`~lollms_server.api.kit.models.gather_models`.
"""

from lollms_server.api.kit.encode import Encoder, encode
from lollms_server.api.kit.media import decode_media
from lollms_server.api.kit.models import gather_models

__all__ = ["Encoder", "decode_media", "encode", "gather_models"]
