# Two commands for a fresh machine: `make demo` and `make test`. Everything else is a step of those.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JOBS ?= 2

.PHONY: setup demo test test-rust test-python bench postgres clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Builds the Rust core (release) and installs the package with its test extras.
$(STAMP): $(PY) pyproject.toml Cargo.toml ledger_core_rs/Cargo.toml $(wildcard ledger_core_rs/src/*.rs)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/entraide demo --data-dir .data/demo

postgres:
	@scripts/postgres.sh start

test-rust:
	cargo test --quiet -p ledger_core_rs

# The whole suite, on SQLite and on a real PostgreSQL server that this target starts.
test-python: setup
	ENTRAIDE_TEST_PG_URL=$$(scripts/postgres.sh start) $(PY) -m pytest -q -n $(JOBS) -p no:cacheprovider

test: test-rust test-python

bench: setup
	ENTRAIDE_BENCH_PG_URL=$$(scripts/postgres.sh start) $(PY) -m bench

clean:
	rm -rf $(VENV) .data target
