# The handful of commands a newcomer needs. `make run` and `make test` build .venv from
# requirements.lock (exact pins) the first time; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format typecheck bench soak demo screenshots migrate clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

## run: the service on the embedded default (SQLite under ./var, worker in-process, dev tokens)
run: $(STAMP)
	$(BIN)/discount-codes serve --dev $(RUN_ARGS)

## test: the whole suite, SQLite and PostgreSQL, over the machine's cores (pytest-xdist: each
## worker process makes its own databases, PgBouncer and ports)
test: $(STAMP)
	$(BIN)/python -m pytest --numprocesses=auto --maxprocesses=4 $(PYTEST_ARGS)

## test-fast: the tests that need no service (rules, codecs, schemas, signing...), well under a minute
test-fast: $(STAMP)
	$(BIN)/python -m pytest --fast $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

migrate: $(STAMP)
	$(BIN)/discount-codes migrate

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

## soak: 10 minutes of mixed traffic with worker crashes; SOAK_ARGS="--minutes 3" for less
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

## demo: end to end on SQLite: 100,000 codes, 1,000 shoppers, verified webhooks (DEMO_ARGS=--quick)
demo: $(STAMP)
	$(BIN)/python -m discount_codes.demo $(DEMO_ARGS)

## screenshots: the README's console pictures (docs/img/), by Chromium over a seeded demo
screenshots: $(STAMP)
	$(BIN)/python -m tests.console.screenshots

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
