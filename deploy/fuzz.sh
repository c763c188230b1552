#!/usr/bin/env bash
# `make fuzz`: schemathesis against the four services' OpenAPI documents, bad records into every consumed topic,
# XSS payloads rendered in Chromium (python -m tests.fuzz.run; its last line is the summary). Uses the Kafka, Redis
# and Keycloak already answering on 127.0.0.1, or starts throwaway ones under var/fuzz-deps/ and removes them after.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
# schemathesis: the optional group `fuzz` of pyproject.toml (not in `make install`: only this command needs it)
if ! "$py" -c 'import schemathesis' 2>/dev/null; then
  spec=$("$py" -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["fuzz"])')
  # shellcheck disable=SC2086
  .venv/bin/pip install -q $spec
fi
export VAR_DIR="$root/var/fuzz-deps"
. deploy/dependencies.sh
"$py" -m tests.support.warmup
"$py" -m tests.fuzz.run "$@"
