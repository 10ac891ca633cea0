# The README's two commands are `make demo` and `make test`; each sets the machine up first.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# pytest-xdist workers for the unit and integration tiers (each has its own ports, emulator and directories).
# The integration tests mostly wait on servers and Ansible, so more workers than cores pay off.
UNIT_WORKERS ?= 2
WORKERS ?= 4
XDIST = --dist loadgroup

.PHONY: setup demo test lint unit integration test-hosts clean sandbox-down bench golden reliability

setup:
	bash .ci/setup

demo: setup
	$(BIN)/reproducer demo

lint: setup
	$(BIN)/ruff check reproducer tests bench
	$(BIN)/ruff format --check reproducer tests bench
	$(BIN)/mypy reproducer
	$(BIN)/lint-imports

# No server: tests/conftest.py fails a unit test that runs valkey-server; the unit-directory tests that need one
# are marked integration and run with that tier.
unit: setup
	$(BIN)/pytest -q -n $(UNIT_WORKERS) $(XDIST) -m "not integration" tests/unit

integration: setup
	$(BIN)/pytest -q -n $(WORKERS) $(XDIST) -m integration tests/unit tests/integration

# Real hosts in network namespaces over SSH (root only; skipped with the reason elsewhere), on their own: one
# session of six hosts, so one process.
test-hosts: setup
	$(BIN)/pytest -q -n 0 tests/hosts

# The unit and integration tiers in parallel, then the host tier alone: its Ansible runs over SSH are CPU-bound
# and overran their timeouts when run beside the other tiers on 2 cores.
# The host tier runs even when the others failed; make test fails if either did.
test: lint
	status=0; $(BIN)/pytest -q -n $(WORKERS) $(XDIST) tests/unit tests/integration || status=$$?; \
	$(MAKE) --no-print-directory test-hosts || status=$$?; exit $$status

sandbox-down: setup
	$(BIN)/reproducer sandbox down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

bench: setup
	$(PY) bench/copy.py

golden: setup
	$(PY) -m tests.golden.regen

reliability: setup
	$(BIN)/pytest -q -n $(WORKERS) $(XDIST) -m "fault or bad_input" --reliability-report docs/reliability.md tests
