#!/usr/bin/env bash
# `make test`: use the Kafka, Redis and Keycloak already answering on 127.0.0.1 (each test has its own topics and
# keys; Keycloak's realm kiruna is only read), or start throwaway ones under var/test/ and stop and remove them
# afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export VAR_DIR="$root/var/test"
. deploy/dependencies.sh
.venv/bin/python -m tests.support.warmup
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
