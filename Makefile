# The two commands: `make run` (install everything, start the platform) and `make test` (run the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install run stop status test test-unit lint topics bench clean cluster-up cluster-down

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/.installed  ## virtual environment, Kafka and Keycloak from Maven Central, Redis and nginx from the system's packages
	deploy/kafka/kafka.sh fetch
	deploy/keycloak/keycloak.sh fetch
	deploy/keycloak/keycloak.sh java >/dev/null
	deploy/redis.sh install
	deploy/nginx/nginx.sh install

run: install  ## start Kafka, Redis, Keycloak, the four services and the proxy in the background; print the URLs
	deploy/platform.sh start

stop:  ## stop exactly what `make run` started
	deploy/platform.sh stop

status:
	deploy/platform.sh status

test: install  ## start Kafka, Redis and Keycloak if none is answering, run the whole suite, stop what it started
	deploy/browser.sh
	deploy/promtool.sh
	deploy/asyncapi.sh
	deploy/test.sh

test-unit: $(BIN)/.installed
	$(BIN)/pytest -q tests/unit

lint: $(BIN)/.installed
	$(BIN)/ruff check shared services tests bench
	$(BIN)/ruff format --check shared services tests bench

topics: install
	$(BIN)/python -m shared.topics create

bench: install  ## start (or reuse) Kafka and Redis, benchmark the four services on throwaway topics, print the table
	$(BIN)/python -m bench.run

cluster-up: install  ## a local three-broker KRaft cluster on 127.0.0.1:19092-19094 (data under var/cluster/)
	deploy/kafka/cluster.sh up

cluster-down:  ## stop the three-broker cluster (by its recorded pids)
	deploy/kafka/cluster.sh down

clean: stop
	rm -rf var
