# clusterdb: `make test` from a fresh machine sets up everything and runs every check.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test lint unit servers demo bench soak venv clean fuzz

# Pure-logic tests on both cores (pytest-xdist); server tests one at a time, as their
# bounds assume the servers have the machine.
test: $(STAMP) servers lint
	$(PY) -m pytest -q -n 2 tests/unit
	$(PY) -m pytest -q --ignore=tests/unit

SOURCES := $(wildcard clusterdb tests examples bench)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy $(SOURCES)
	$(VENV)/bin/lint-imports
	$(PY) scripts/check-module-size.py

unit: $(STAMP)
	$(PY) -m pytest -q -n 2 tests/unit

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Installs the PostgreSQL, MariaDB and Galera server packages when they are missing (root on Debian),
# otherwise says what to run. Never touches the machine's own services.
servers:
	@bash scripts/ensure-servers.sh

demo: $(STAMP) servers
	$(PY) -m clusterdb demo

# The AWS Advanced Python Wrapper is one more peer where it installs (never a dependency of
# clusterdb): when pip cannot get it, the bench runs without it and says so.
bench: $(STAMP) servers
	@$(PY) -m pip install -q aws-advanced-python-wrapper 2>/dev/null \
		|| echo "bench: aws-advanced-python-wrapper did not install; running without that peer"
	$(PY) bench/run.py

# Coverage-guided fuzzing (atheris) of the DSN parser and the statement classifier, longer than
# the few seconds `make test` gives them: FUZZ_SECONDS per target (default 300). The corpus
# grows in .fuzz/corpus-<target> across runs; a crash input lands in .fuzz/ and fails the run.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	@mkdir -p .fuzz
	@for t in dsn statement; do \
		mkdir -p .fuzz/corpus-$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		$(PY) tests/fuzz/fuzz_$$t.py .fuzz/corpus-$$t -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=.fuzz/ -dict=tests/fuzz/$$t.dict -print_final_stats=1 \
			2>.fuzz/$$t.log || { tail -40 .fuzz/$$t.log; exit 1; }; \
		grep -E "^stat::number_of_executed_units" .fuzz/$$t.log; \
	done

# The chaos suite for SOAK_MINUTES (default 10) of faults on PostgreSQL and MariaDB clusters of
# its own; the summary goes to bench/results/soak.md (SOAK_SEED=N replays a run's schedules).
soak: $(STAMP) servers
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .fuzz
