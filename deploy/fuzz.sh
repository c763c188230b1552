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
started=()
cleanup() {
  local status=$?
  for what in "${started[@]}"; do
    case $what in
      kafka) deploy/kafka/kafka.sh stop ;; redis) deploy/redis.sh stop ;; keycloak) deploy/keycloak/keycloak.sh stop ;;
    esac
  done
  [ ${#started[@]} -gt 0 ] && rm -rf "$VAR_DIR"
  exit $status
}
trap cleanup EXIT INT TERM
if ! (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
  deploy/kafka/kafka.sh start; started+=(kafka)
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  deploy/redis.sh start; started+=(redis)
fi
if ! curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:${KEYCLOAK_PORT:-8180}/realms/kiruna/.well-known/openid-configuration"; then
  deploy/keycloak/keycloak.sh start; started+=(keycloak)
fi
deploy/kafka/kafka.sh wait
deploy/redis.sh wait
deploy/keycloak/keycloak.sh wait
"$py" -m tests.support.warmup
"$py" -m tests.fuzz.run "$@"
