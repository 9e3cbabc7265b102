# The two quick-start commands are `make demo` and `make test`; each builds .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench diagrams clean

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "importstate needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/python -m importstate demo

test: lint typecheck unit

lint: $(INSTALLED)
	$(BIN)/ruff check importstate tests benchmarks

typecheck: $(INSTALLED)
	$(BIN)/mypy --strict importstate

unit: $(INSTALLED)
	$(BIN)/python -m pytest

bench: $(INSTALLED)
	$(BIN)/python benchmarks/bench_core.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
