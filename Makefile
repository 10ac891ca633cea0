# The README's two commands are `make demo` and `make test`; each sets the machine up first.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup demo test lint unit integration clean sandbox-down bench golden reliability

setup:
	bash .ci/setup

demo: setup
	$(BIN)/reproducer demo

lint: setup
	$(BIN)/ruff check reproducer tests bench
	$(BIN)/ruff format --check reproducer tests bench
	$(BIN)/mypy reproducer
	$(BIN)/lint-imports

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

test: lint
	$(BIN)/pytest -q

sandbox-down: setup
	$(BIN)/reproducer sandbox down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

bench: setup
	$(PY) bench/copy.py

golden: setup
	$(PY) -m tests.golden.regen

reliability: setup
	$(BIN)/pytest -q -m "fault or bad_input" --reliability-report docs/reliability.md tests
