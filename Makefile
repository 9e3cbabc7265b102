# The two quick-start commands are `make demo` and `make test`; each builds .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint typecheck unit docs bench diagrams clean

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "importstate needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(INSTALLED)

# The API demo, then a CSV import zip and a Slack export written and the Slack one loaded.
demo: $(INSTALLED)
	$(BIN)/python -m importstate demo
	$(BIN)/python -m importstate demo --export slack --users 1000 --channels 20 --messages 5000

test: lint typecheck unit docs

lint: $(INSTALLED)
	$(BIN)/ruff check importstate tests benchmarks examples docs

typecheck: $(INSTALLED)
	$(BIN)/mypy --strict importstate examples docs/hooks.py docs/griffe_comments.py

unit: $(INSTALLED)
	$(BIN)/python -m pytest

# The documentation site (docs/mkdocs.yml) into build/docs; a warning fails it.
docs: $(INSTALLED)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -f docs/mkdocs.yml

bench: $(INSTALLED)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_http.py
	$(BIN)/python benchmarks/bench_postgres.py
	$(BIN)/python benchmarks/bench_workers.py
	$(BIN)/python benchmarks/bench_loaders.py

# Mermaid and DOT always; SVG only where Graphviz's `dot` is installed. The example of an
# operation's path (examples/operation_path.py) writes its .mmd, and its .svg where it can.
diagrams: $(INSTALLED)
	$(BIN)/python -m importstate diagram --format mermaid --output diagrams/states.mmd
	$(BIN)/python -m importstate diagram --format dot --output diagrams/states.dot
	$(BIN)/python -m importstate diagram --steps --format mermaid --output diagrams/steps.mmd
	$(BIN)/python -m importstate diagram --steps --format dot --output diagrams/steps.dot
	$(BIN)/python -m importstate diagram --events --format mermaid --output diagrams/events.mmd
	$(BIN)/python examples/operation_path.py diagrams
	@if command -v dot >/dev/null 2>&1; then \
		$(BIN)/python -m importstate diagram --format svg --output diagrams/states.svg && \
		$(BIN)/python -m importstate diagram --steps --format svg --output diagrams/steps.svg; \
	else \
		echo "make diagrams: SVG skipped: Graphviz's dot program is not installed" \
			"(apt install graphviz, or brew install graphviz); .mmd and .dot are up to date"; \
	fi

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
