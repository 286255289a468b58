# Two commands matter: `make run` (API on http://127.0.0.1:8000/docs, embedded store, demo data)
# and `make test` (lint, type-check and the whole test suite). Everything else supports them.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench lock clean openapi fuzz

$(STAMP): requirements/dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

# Benchmarks measure the deployed dependency set: a venv holding exactly requirements/lambda.txt.
LAMBDA_VENV := .venv-lambda
$(LAMBDA_VENV)/.installed: requirements/lambda.txt
	@test -x $(LAMBDA_VENV)/bin/python || $(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet -r requirements/lambda.txt
	@touch $@

bench: $(STAMP) $(LAMBDA_VENV)/.installed
	$(BIN)/python bench/cold_start.py --python $(LAMBDA_VENV)/bin/python

# Regenerate the committed OpenAPI document (a test fails while it is stale).
openapi: $(STAMP)
	$(BIN)/python -m app.openapi > docs/openapi.json

# A longer schemathesis run than the bounded one inside `make test`.
fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=200 $(BIN)/python -m pytest tests/test_fuzz.py -q

# Re-resolve the pinned dependency sets (uv resolves for another Python and platform than this one).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o requirements/dev.txt
	$(BIN)/uv pip compile pyproject.toml --extra mongo --python-version 3.12 --python-platform x86_64-manylinux2014 -o requirements/lambda.txt

clean:
	rm -rf $(VENV) $(LAMBDA_VENV) .pytest_cache .mypy_cache .ruff_cache .serverless
