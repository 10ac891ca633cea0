# The README's two commands are `make demo` and `make test`; each sets the machine up first.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# pytest-xdist workers for the unit and integration tiers (each has its own ports, emulator and directories).
# The integration tests mostly wait on servers and Ansible, so more workers than cores pay off.
UNIT_WORKERS ?= 2
WORKERS ?= 5
XDIST = --dist loadgroup

.PHONY: setup demo test lint lint-checks unit integration test-hosts hosts-checks clean sandbox-down bench golden reliability

setup:
	bash .ci/setup

demo: setup
	$(BIN)/reproducer demo

lint: setup
	$(MAKE) --no-print-directory lint-checks

# The checks alone, on a machine already set up (make test runs them beside the tests).
lint-checks:
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
	$(MAKE) --no-print-directory hosts-checks

# The host tier alone, on a machine already set up (make test runs it beside the other tiers).
hosts-checks:
	$(BIN)/pytest -q -n 0 tests/hosts

# Lint and the host tier (one process) run beside the unit and integration tiers; their output is printed when
# the tiers end. Every step runs even when another failed; make test fails if any did.
test: setup
	status=0; lint_log=$$(mktemp); hosts_log=$$(mktemp); \
	( $(MAKE) --no-print-directory lint-checks >"$$lint_log" 2>&1 ) & lint_pid=$$!; \
	( $(MAKE) --no-print-directory hosts-checks >"$$hosts_log" 2>&1 ) & hosts_pid=$$!; \
	$(BIN)/pytest -q -n $(WORKERS) $(XDIST) --durations=30 tests/unit tests/integration || status=$$?; \
	wait $$lint_pid || status=$$?; cat "$$lint_log"; \
	wait $$hosts_pid || status=$$?; cat "$$hosts_log"; rm -f "$$lint_log" "$$hosts_log"; exit $$status

sandbox-down: setup
	$(BIN)/reproducer sandbox down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

# BENCH=copy (speed against replication) or BENCH=memory (peak RSS on big values and keys: bench/memory.py)
BENCH ?= copy
bench: setup
	$(PY) bench/$(BENCH).py $(BENCH_ARGS)

golden: setup
	$(PY) -m tests.golden.regen

reliability: setup
	$(BIN)/pytest -q -n $(WORKERS) $(XDIST) -m "fault or bad_input" --reliability-report docs/reliability.md tests
