# Two commands matter: `make run` (API on http://127.0.0.1:8000/docs, embedded store, demo data)
# and `make test` (lint, type-check and the whole test suite). Everything else supports them.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench lock clean

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

bench: $(STAMP)
	$(BIN)/python bench/cold_start.py

# Re-resolve the pinned dependency sets (needs `uv`: pip install uv).
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o requirements/dev.txt
	uv pip compile pyproject.toml --extra mongo --python-version 3.12 --python-platform x86_64-manylinux2014 -o requirements/lambda.txt
	uv pip compile pyproject.toml --extra mongo --extra server --python-version 3.12 --python-platform x86_64-unknown-linux-gnu -o requirements/server.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .serverless .serverless-offline node_modules
