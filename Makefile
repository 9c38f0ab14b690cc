# CarePulse: `make demo` and `make test` set everything up themselves (idempotently).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every service, editable, with the extras that train its models (torch only here, never in images).
SERVICE_PROJECTS := services/ingestion services/care services/inference "services/imaging[train]" "services/nlp[train]"
PYTEST_ARGS ?=

.PHONY: setup system-deps nlp-index demo test bench protos protos-check lint clean

setup: $(STAMP) system-deps nlp-index

# Debian packages some integration tests need (e.g. a real PACS); installed when missing. The tests
# start their own redis-server (TLS); the one a systemd host would start on 6379 is turned off.
system-deps:
	@missing=$$(for p in $$(grep -v '^#' tests/debian-packages.txt); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "==> [setup] installing Debian packages: $$missing"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
			systemctl disable --now redis-server >/dev/null 2>&1 || true; \
		else echo "run as root or install: sudo apt-get install $$missing"; exit 1; fi; \
	fi

$(STAMP): pyproject.toml shared/pyproject.toml $(wildcard services/*/pyproject.toml) tests/requirements.txt
	@echo "==> [setup] virtualenv in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	@echo "==> [setup] installing shared, the services and the test tools"
	@$(BIN)/python -m pip install --quiet --progress-bar on \
		-e "shared[streams,cli,embedded,grpc,tracing]" $(addprefix -e ,$(SERVICE_PROJECTS)) -r tests/requirements.txt
	@touch $(STAMP)
	@echo "==> [setup] done"

# The sentence-embedding model (90 MB) and the ICD-10-CM index are built here, not committed;
# the builder skips what is up to date (a few seconds), so this runs on every set-up.
nlp-index: $(STAMP)
	@echo "==> [setup] text-embedding model and ICD-10-CM index (built once, about a minute)"
	@$(BIN)/python -m carepulse.nlp.index_build

protos: setup
	@echo "==> [protos] regenerating gRPC code from protos/"
	@$(BIN)/python protos/generate.py

protos-check: setup
	@$(BIN)/python protos/generate.py --check

demo: setup
	@echo "==> [demo] starting the embedded platform (Ctrl-C to stop)"
	@$(BIN)/carepulse demo

test: setup
	@echo "==> [test] unit, integration and end-to-end tests (real Tansu broker + Valkey)"
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	@echo "==> [bench] benchmarks (results in bench-results/)"
	@$(BIN)/python tests/bench/__main__.py

lint: setup
	@$(BIN)/ruff check shared services tests

clean:
	rm -rf $(VENV) .run bench-results .pytest_cache
