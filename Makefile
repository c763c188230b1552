# The two commands: `make run` (install everything, start the platform) and `make test` (run the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Every Python package `make run` and `make test` install, pinned with hashes (`make lock` regenerates it).
LOCK   := requirements.lock

.PHONY: install run stop status test test-unit lint topics bench chaos clean cluster-up cluster-down lock similar-eval demo helm-check traces traces-stop

$(BIN)/.installed: pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	@$(BIN)/pip check >/dev/null \
	  || { $(BIN)/pip check; echo "$(LOCK) does not satisfy pyproject.toml: run 'make lock'"; exit 1; }
	@touch $@

# All of pyproject.toml's dependencies and optional groups for Python 3.11 on linux x86_64, with the hashes of every
# file of each pinned release. Versions already in the lock are kept; `make lock LOCK_ARGS=--upgrade` takes newer ones.
lock:  ## regenerate requirements.lock from pyproject.toml (run it after changing the dependencies)
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q 'uv>=0.5,<1'; }
	$(BIN)/uv pip compile pyproject.toml --all-extras --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --custom-compile-command 'make lock' --quiet $(LOCK_ARGS) -o $(LOCK)

install: $(BIN)/.installed  ## virtual environment, Kafka and Keycloak from Maven Central, Redis and nginx from the system's packages
	deploy/kafka/kafka.sh fetch
	deploy/keycloak/keycloak.sh fetch
	deploy/keycloak/keycloak.sh java >/dev/null
	deploy/redis.sh install
	deploy/nginx/nginx.sh install

run: install  ## start Kafka, Redis, Keycloak, the four services and the proxy in the background; print the URLs
	deploy/platform.sh start

# DEMO_ARGS passes more: --limit 40 (the first N ideas of demo/ideas.toml), --api-ideas 6 (recent ideas sent
# through intake's API as anna.svensson / per.niemi).
demo: $(BIN)/.installed  ## load a year of demo history (~240 ideas) into the running platform; twice loads nothing twice
	$(BIN)/python -m demo $(DEMO_ARGS)

helm-check:  ## build Helm and kubeconform (Go module proxy) and check the chart in deploy/helm/kiruna/
	deploy/helm.sh all >/dev/null
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/ops/test_helm.py

traces:  ## Jaeger on 127.0.0.1 (UI and API :16686, OTLP/HTTP :4318; built once from the Go module proxy, spans in memory), and how to send the services' spans to it
	deploy/jaeger.sh start
	deploy/jaeger.sh wait
	@echo
	@echo "Jaeger is running: UI http://127.0.0.1:16686  (its API: curl 'http://127.0.0.1:16686/api/traces?service=kiruna-intake&limit=5')"
	@echo "Send the services' spans to it: the services read OTEL_EXPORTER_OTLP_ENDPOINT when they start, so"
	@echo "  make stop && OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 make run"
	@echo "then submit an idea: its trace is under the service kiruna-intake, operation 'POST /api/v1/ideas'."
	@echo "Without the variable the services record no spans at all. Stop Jaeger with: make traces-stop"

traces-stop:  ## stop the Jaeger that `make traces` started (its traces were in memory only)
	deploy/jaeger.sh stop

stop:  ## stop exactly what `make run` started
	deploy/platform.sh stop

status:
	deploy/platform.sh status

test: install  ## start Kafka, Redis and Keycloak if none is answering, run the whole suite, stop what it started
	deploy/audit.sh
	deploy/browser.sh
	deploy/promtool.sh
	deploy/asyncapi.sh
	deploy/test.sh

test-unit: $(BIN)/.installed
	$(BIN)/pytest -q tests/unit

lint: $(BIN)/.installed
	$(BIN)/ruff check shared services tests bench chaos demo
	$(BIN)/ruff format --check shared services tests bench chaos demo

topics: install
	$(BIN)/python -m shared.topics create

bench: install  ## start (or reuse) Kafka and Redis, benchmark the four services on throwaway topics, print the table
	$(BIN)/python -m bench.run --scaling

# FILE is JSON lines in submission order: {"title", "description", "duplicate_of": 0-based index of an earlier line or null}.
similar-eval: $(BIN)/.installed  ## the similar-ideas engine on FILE=<jsonl>: prints its missed duplicates and false alarms, then last `duplicates_recall_at_3=<x> false_alarm_rate=<x> ideas=<n>`
	@test -n "$(FILE)" || { echo "usage: make similar-eval FILE=<jsonl>, e.g. FILE=../shared/data/similar-sample.jsonl" >&2; exit 2; }
	$(BIN)/python -m shared.similarity_eval $(FILE)

# SCENARIOS=kill-routing,redis-flush,... runs a subset; CHAOS_ARGS passes more (--ideas 500 --smtp-down-s 10 ...).
chaos: install  ## the fault suite: kill -9, broker failover, Redis and SMTP outages under load; invariants checked (~25 min)
	$(BIN)/python -m chaos.run $(if $(SCENARIOS),--scenarios $(SCENARIOS)) $(CHAOS_ARGS)

fuzz: install  ## schemathesis on the four APIs, bad records into every consumed topic, XSS in Chromium (~3-5 min)
	deploy/browser.sh
	deploy/fuzz.sh

cluster-up: install  ## a local three-broker KRaft cluster on 127.0.0.1:19092-19094 (data under var/cluster/)
	deploy/kafka/cluster.sh up

cluster-down:  ## stop the three-broker cluster (by its recorded pids)
	deploy/kafka/cluster.sh down

clean: stop
	rm -rf var
