# Two commands do all set-up: `make run` serves the API, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin

.PHONY: run test bench lint schema check-schema migrations-check graphiql ci clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

## Serve the API with GraphiQL on http://127.0.0.1:$(PORT)/graphql (SQLite unless DATABASE_URL is set).
run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

## Run the whole test suite (SQLite unless DATABASE_URL is set).
test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Load benchmark: req/s, latency, SQL and Redis commands per request, without and with Redis (about 4 minutes; bench/load.py).
bench: $(VENV)/.runtime
	$(BIN)/python bench/load.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Rewrite schema.graphql from the code (after an intended schema change).
schema: $(VENV)/.runtime
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py graphql_schema --schema schema.schema.schema --out schema.graphql

check-schema: $(VENV)/.runtime
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py graphql_schema --schema schema.schema.schema --out $(VENV)/schema.graphql >/dev/null
	diff -u schema.graphql $(VENV)/schema.graphql

migrations-check: $(VENV)/.runtime
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py makemigrations --check --dry-run

## Rebuild GraphiQL's static files (schema/static/graphiql/) from frontend/graphiql/ with Node; GRAPHIQL_OUT=DIR builds into DIR instead.
graphiql:
	cd frontend/graphiql && npm ci --no-audit --no-fund --loglevel=error && node build.mjs $(if $(GRAPHIQL_OUT),--out $(abspath $(GRAPHIQL_OUT)))

ci:
	bash .ci/run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
