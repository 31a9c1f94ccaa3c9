# Wharf: the README's commands. Needs only Python 3.11 on the machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8

.PHONY: demo test lint bench airflow stack psql db-stop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"

# Compiled bytecode: without it Airflow and Great Expectations import about 3x slower
# (this environment sets PYTHONDONTWRITEBYTECODE).
$(VENV)/.synced: requirements.txt pyproject.toml | $(BIN)/python
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip sync --compile-bytecode requirements.txt
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install --no-deps -e .
	touch $@

## Set up, then ingest every example dataset once and print rows extracted/loaded/status.
demo: $(VENV)/.synced
	$(BIN)/wharf demo

## Set up, then run the linters and the whole test suite.
test: lint
	$(BIN)/python -m pytest

lint: $(VENV)/.synced
	$(BIN)/ruff check plugins dags tests bench
	$(BIN)/ruff format --check plugins dags tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks (print numbers): DAG parsing, load throughput (psql \copy, pandas, dlt), validation,
## extraction memory per source type, extraction speed against each source's own dump, stream
## throughput.
bench: $(VENV)/.synced
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/parse_dags.py
	$(BIN)/python bench/load_throughput.py
	$(BIN)/python bench/validation.py
	$(BIN)/python bench/extract_memory.py
	$(BIN)/python bench/extract_speed.py
	$(BIN)/python bench/stream_throughput.py

## The Airflow UI and scheduler on http://127.0.0.1:8080, with the demo's source database
## written and its local API and Sheets servers on free ports, their connections in Airflow's
## environment, after `wharf db upgrade` and `wharf access apply` on the datasets database;
## prints the URL, the user and the password's file first (stop with Ctrl-C).
# standalone starts its components as `airflow ...` by name: the venv's bin goes first on PATH.
airflow: $(VENV)/.synced
	$(BIN)/wharf demo --source-only && $(BIN)/wharf db upgrade && $(BIN)/wharf access apply && \
	  $(BIN)/wharf airflow-info && \
	  PATH="$(abspath $(BIN)):$$PATH" $(BIN)/wharf serve-demo -- $(BIN)/airflow standalone

## Airflow on CeleryExecutor on this machine, as one unit (`wharf stack`): API server,
## scheduler, DAG processor, triggerer and Celery workers (WORKERS=1), the local Redis as
## broker (WHARF_STACK_BROKER_URL), a PostgreSQL metadata database, with the demo's sources as
## for `make airflow`; health-checked until Ctrl-C stops them all.
WORKERS ?= 1
stack: $(VENV)/.synced
	$(BIN)/wharf demo --source-only && $(BIN)/wharf db upgrade && $(BIN)/wharf access apply && \
	  $(BIN)/wharf serve-demo -- $(BIN)/wharf stack --workers $(WORKERS)

## docker compose's secrets (docker-compose.yaml reads .env): random passwords and keys in a
## new .env, readable by its owner only; an existing .env is kept.
.env:
	umask 077 && $(PYTHON) -c 'import base64, secrets; t = secrets.token_urlsafe; \
	  fernet = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(); \
	  print("\n".join(f"{k}={v}" for k, v in [("AIRFLOW_DB_PASSWORD", t(24)), \
	    ("DATASETS_DB_PASSWORD", t(24)), ("LOADER_DB_PASSWORD", t(24)), \
	    ("AIRFLOW_JWT_SECRET", t(32)), ("AIRFLOW_FERNET_KEY", fernet)]))' > $@.tmp && mv $@.tmp $@

PGBIN := $(VENV)/lib/python3.11/site-packages/pgserver/pginstall/bin

## psql on the embedded datasets database (a Unix socket in .wharf/pgdata), as its superuser.
psql: $(VENV)/.synced
	$(PGBIN)/psql -h "$(CURDIR)/.wharf/pgdata" -U postgres -d wharf

## Stop the embedded datasets database and, when one runs, the demo's embedded NATS server. As
## root, pgserver runs the database as the system user pgserver, and pg_ctl refuses to run as root.
db-stop:
	if [ -f .wharf/nats/nats-server.pid ]; then \
	  $(BIN)/nats-server --signal stop=.wharf/nats/nats-server.pid || true; fi
	if [ "$$(id -u)" = 0 ]; then \
	  su pgserver -s /bin/sh -c '"$(CURDIR)/$(PGBIN)/pg_ctl" -D "$(CURDIR)/.wharf/pgdata" stop'; \
	else $(PGBIN)/pg_ctl -D .wharf/pgdata stop; fi

clean:
	rm -rf $(VENV) .wharf
