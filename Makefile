# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install demo test test-oldest test-newest test-uvloop lint typecheck pytest bench bench-quick bench-mypyc clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "koasession needs Python 3.10+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

## demo: serve the demo app on http://127.0.0.1:3000 (ARGS="--store redis://..." for a store)
demo: $(STAMP)
	$(BIN)/koasession demo $(ARGS)

## test: lint, type-check and run the whole test suite
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/koasession examples
	$(BIN)/pyright --pythonpath $(BIN)/python src/koasession examples

pytest: $(STAMP)
	$(BIN)/pytest

# $(call dev_venv,PYTHON,DIR,VARIABLE): a new venv of PYTHON in DIR with the dev extra (VARIABLE
# names the make variable that sets PYTHON, for the error when it is missing).
define dev_venv
	@command -v $(1) >/dev/null || { echo "$(1) not found (set $(3)=...)"; exit 1; }
	$(1) -m venv --clear $(2)
	$(2)/bin/python -m pip install --quiet --upgrade pip
	$(2)/bin/python -m pip install --quiet -e '.[dev]'
endef

## test-oldest: the engine, koa, security and store tests on the oldest supported Python (3.10),
## whose code paths differ (asyncio.wait_for, base64 without strict mode); CI runs it too.
## It runs on the json module (KOASESSION_JSON=std), the path of an install without the orjson
## extra, while `make test` runs with orjson (in the dev extra): the suite runs both ways.
OLDEST ?= python3.10
test-oldest:
	$(call dev_venv,$(OLDEST),.venv-oldest,OLDEST)
	KOASESSION_JSON=std .venv-oldest/bin/pytest -p no:cacheprovider tests/core tests/koa tests/security tests/stores

## test-newest: the whole test suite on a newer Python than the default one (3.12 or later),
## where asyncio differs (python/cpython#136234 and the Redis store's guard for it); CI runs it
## when such a Python is installed.
NEWEST ?= python3.13
test-newest:
	$(call dev_venv,$(NEWEST),.venv-newest,NEWEST)
	.venv-newest/bin/pytest -p no:cacheprovider

## test-uvloop: the engine and store tests on uvloop, the event loop of uvicorn[standard]
## (tests/conftest.py: KOASESSION_TEST_LOOP); CI runs it too.
test-uvloop: $(STAMP)
	KOASESSION_TEST_LOOP=uvloop $(BIN)/pytest -p no:cacheprovider tests/core tests/stores

## bench: run the benchmark suite (not part of `make test`)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@# orjson (also in the dev extra) feeds the "floor with orjson" reference row, and koasession
	@# uses it too; KOASESSION_JSON=std measures koasession on the json module alone.
	-$(BIN)/python -m pip install --quiet orjson
	$(BIN)/python benchmarks/run.py

## bench-quick: in-process rows and issue 12's in-process targets, printed (< 1 minute)
bench-quick: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run.py --quick $(ARGS)

## bench-mypyc: compile the core with mypyc in a temporary copy and compare (docs/performance.md)
bench-mypyc: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/mypyc_build.py $(ARGS)

clean:
	rm -rf $(VENV) .venv-oldest .venv-newest .pytest_cache .mypy_cache .ruff_cache dist build
