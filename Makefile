# The two commands of the README (`make demo`, `make test`) set everything up themselves:
# both go through `make venv`, which fills .venv from the pinned lock (and reuses it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: venv test lint typecheck pytest demo lock bench schemas clean

venv: $(STAMP)

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -qq -r requirements/dev.lock
	$(PIP) install -qq --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: lint typecheck pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest

demo: venv
	$(BIN)/modelseal demo

schemas: venv
	$(BIN)/python docs/schemas/generate.py

bench: venv
	$(BIN)/python benchmarks/bench_environment.py
	$(BIN)/python benchmarks/bench_verify.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_serving.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_download.py

# Re-resolve the development environment from requirements/dev.in and pin it.
# torch's local build tag (+cpu) is dropped so the pin matches whichever build pip finds.
lock:
	rm -rf .cache/lock-venv
	$(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/python -m pip install -qq -r requirements/dev.in
	{ echo "# Pinned development environment of modelseal; regenerate with 'make lock'."; \
	  .cache/lock-venv/bin/python -m pip freeze --exclude-editable \
	    | sed -e 's/^torch==\([0-9.]*\)+.*$$/torch==\1/'; } > requirements/dev.lock

clean:
	rm -rf $(VENV) .cache build dist .mypy_cache .ruff_cache .pytest_cache
