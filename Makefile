# Two commands for a fresh machine: `make demo` and `make test`. Everything else is a step of those.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JOBS ?= 2

.PHONY: setup demo test lint lint-python lint-rust test-rust test-python bench postgres clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Builds the Rust core (release) and installs the package with its test extras. Not --quiet: the
# first build compiles the Rust core for minutes, and cargo's lines are the progress to watch.
$(STAMP): $(PY) pyproject.toml Cargo.toml ledger_core_rs/Cargo.toml $(wildcard ledger_core_rs/src/*.rs)
	@echo "building the Rust core and installing Entraide (the first time takes a few minutes)"
	$(PY) -m pip install --progress-bar off --verbose -e '.[test]' 2>&1 | grep -E --line-buffered \
		'Compiling|Finished|Built wheel|Successfully installed|error|ERROR|warning: unused' ; \
		$(PY) -c 'import ledger._core' || { echo "the Rust core did not build: rerun \`$(PY) -m pip install -v -e .[test]\`"; exit 1; }
	touch $(STAMP)

setup: $(STAMP)

# Seeds, verifies, then serves; it ends by printing the credentials file, what to open and a curl to sign in.
demo: setup
	$(VENV)/bin/entraide demo --data-dir .data/demo

postgres:
	@scripts/postgres.sh start

# ruff (its rules and its format), mypy (strict on the domain and service layers), clippy on the Rust core.
lint: lint-python lint-rust

lint-python: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

lint-rust:
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
	cargo clippy --quiet -p ledger_core_rs --all-targets -- -D warnings

test-rust:
	cargo test --quiet -p ledger_core_rs

# The whole suite, on SQLite and on a real PostgreSQL server that this target starts; the browser
# tests drive Debian's chromium, installed if missing. The slow tests start first (tests/conftest.py)
# and each worker is sent two tests at a time, so that the longest run side by side from the start.
test-python: setup
	@scripts/chromium.sh >/dev/null
	ENTRAIDE_TEST_PG_URL=$$(scripts/postgres.sh start) $(PY) -m pytest -q -n $(JOBS) --maxschedchunk 2 -p no:cacheprovider

# mypy checks on one core (~1 min on a clean clone, which has no cache) while cargo builds and runs
# clippy and the Rust tests on the others; the Python suite then has both cores to itself.
test: setup
	$(MAKE) --no-print-directory -j3 --output-sync=target lint test-rust
	$(MAKE) --no-print-directory test-python

bench: setup
	ENTRAIDE_BENCH_PG_URL=$$(scripts/postgres.sh start) $(PY) -m bench

clean:
	rm -rf $(VENV) .data target
