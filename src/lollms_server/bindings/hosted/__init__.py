"""Process isolation as a binding wrapper: ``hosted(X)`` behaves like binding ``X`` while each
of its loaded models runs in a host process of its own.

``isolation = "process"`` in a ``[bindings.<instance>]`` table makes the server use
``hosted(cls)`` in place of ``cls``. Modules: ``binding`` (the wrapper), ``process`` (the
server side of one host), ``child`` (the host's own main), ``wire`` (their message format).
"""

from lollms_server.bindings.hosted.binding import HostedBinding, hosted

__all__ = ["HostedBinding", "hosted"]
