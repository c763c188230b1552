#!/usr/bin/env bash
# `make test`: use the Kafka, Redis and Keycloak already answering on 127.0.0.1 (each test has its own topics and
# keys; Keycloak's realm kiruna is only read), or start throwaway ones under var/test/ and stop and remove them
# afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export VAR_DIR="$root/var/test"
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
# Sign-in: the tests take real tokens from a local Keycloak (realm kiruna) and the browser signs in on its page.
if ! curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:${KEYCLOAK_PORT:-8180}/realms/kiruna/.well-known/openid-configuration"; then
  deploy/keycloak/keycloak.sh start; started+=(keycloak)
fi
deploy/kafka/kafka.sh wait
deploy/redis.sh wait
deploy/keycloak/keycloak.sh wait
.venv/bin/python -m tests.support.warmup
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
