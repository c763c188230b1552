#!/usr/bin/env bash
# Start/stop the whole platform locally: Kafka, Redis, topics, the four services (logs under var/log/).
#   deploy/platform.sh start|stop|status
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export VAR_DIR=${VAR_DIR:-$root/var}
run="$VAR_DIR/run"; logs="$VAR_DIR/log"
services=(intake:8000 routing:8001 notifications:8002 analytics:8003)
py="$root/.venv/bin/python"
say() { echo "platform: $*" >&2; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  mkdir -p "$run" "$logs"
  # Start Kafka and Redis unless something already answers; only what this run starts is stopped by 'make stop'.
  if (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
    say "Kafka already answers on 127.0.0.1:9092; using it (make stop will leave it running)"
  else
    deploy/kafka/kafka.sh start; touch "$run/kafka.ours"
  fi
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "Redis already answers on 127.0.0.1:6379; using it (make stop will leave it running)"
  else
    deploy/redis.sh start; touch "$run/redis.ours"
  fi
  # Sign-in: a local Keycloak with the realm kiruna (LOCAL ONLY: every password is kiruna-local)
  if curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:${KEYCLOAK_PORT:-8180}/realms/kiruna/.well-known/openid-configuration"; then
    say "Keycloak's realm kiruna already answers on 127.0.0.1:${KEYCLOAK_PORT:-8180}; using it"
  else
    deploy/keycloak/keycloak.sh start; touch "$run/keycloak.ours"
  fi
  deploy/kafka/kafka.sh wait
  deploy/redis.sh wait
  "$py" -m shared.topics create
  # A history written before the personal fields were sealed (issue 13) is on the .v1 topics and the services read
  # the .v2 ones: say so; moving it is a command run with the services stopped (README, "Moving a .v1 history to .v2")
  "$py" - <<'PY' || true
import asyncio
from aiokafka import AIOKafkaConsumer
from shared.kafka import client_options
from shared.replay import topic_partitions
from shared.settings import KafkaSettings
from shared.topics import Topics

async def left_on_v1() -> dict[str, int]:
    settings = KafkaSettings()
    moves = Topics(settings.topic_prefix).migrated()
    partitions = await topic_partitions(settings, list(moves))
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await asyncio.sleep(0)  # let aiokafka's own tasks start, or stopping them raises CancelledError
        await consumer.stop()
    found = {old: sum(n for tp, n in ends.items() if tp.topic == old) for old in moves}
    return {f"{old} -> {moves[old]}": n for old, n in found.items() if n}

try:
    waiting = asyncio.run(asyncio.wait_for(left_on_v1(), 30))
except Exception:
    waiting = {}
if waiting:
    print("platform: the .v1 topics hold a history with people in the clear: " + ", ".join(
        f"{move} ({n} records)" for move, n in waiting.items()))
    print("platform: move it with the services stopped (make stop): .venv/bin/python -m shared.migration, then each "
          "service's rebuild (README, \"Moving a .v1 history to .v2\")")
PY
  deploy/keycloak/keycloak.sh wait
  # The catalogue says who is an officer where: bring the realm's officers in step with it
  "$py" deploy/keycloak/realm.py sync || say "could not bring Keycloak's officers in step with the catalogue (see above)"
  # A local mail sink: every mail notifications sends lands as an .eml file under var/mail/.
  if ! alive "$run/mailsink.pid"; then
    nohup "$py" -m services.notifications.mailsink --host 127.0.0.1 --port 1025 --dir "$VAR_DIR/mail" \
      >>"$logs/mailsink.log" 2>&1 &
    echo $! > "$run/mailsink.pid"
  fi
  # One machine, shared cores: the throughput-bound consumers yield to the path an employee waits on (intake,
  # routing). make bench at 200 ideas/s: the 202 p50 190-240 -> 51 ms, routed p50 121-136 -> 58 ms.
  export NOTIFICATIONS_NICENESS=${NOTIFICATIONS_NICENESS:-10} ANALYTICS_NICENESS=${ANALYTICS_NICENESS:-10}
  # People reach everything through the proxy: links in receipts, notifications and e-mails point at it
  export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:${PROXY_PORT:-8080}}
  export NOTIFICATIONS_PUBLIC_URL=${NOTIFICATIONS_PUBLIC_URL:-$PUBLIC_BASE_URL}
  for entry in "${services[@]}"; do
    local name=${entry%%:*}
    if alive "$run/$name.pid"; then say "$name already running (pid $(cat "$run/$name.pid"))"; continue; fi
    nohup "$py" -m "services.$name" >>"$logs/$name.log" 2>&1 &
    echo $! > "$run/$name.pid"
  done
  # One address for people: the reverse proxy in front of the four services
  deploy/nginx/nginx.sh start; touch "$run/nginx.ours"
  for entry in "${services[@]}"; do
    local name=${entry%%:*} port=${entry##*:}
    for _ in $(seq 1 120); do
      curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
      alive "$run/$name.pid" || { say "$name exited; last lines of $logs/$name.log:"; tail -20 "$logs/$name.log" >&2; exit 1; }
      sleep 0.5
    done
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { say "$name is not ready after 60s (see $logs/$name.log)"; exit 1; }
  done
  deploy/nginx/nginx.sh wait
  cat <<MSG

The Kiruna innovation platform is running (logs in $logs, stop it with 'make stop'):
  the site       http://127.0.0.1:8080/   one address for people: the form, status pages, dashboard, inbox,
                 my ideas, my feed and settings; sign in as anna.svensson, per.niemi, erik.lindberg, ... or admin
                 (password kiruna-local: LOCAL ONLY)
  sign-in        http://127.0.0.1:${KEYCLOAK_PORT:-8180}/realms/kiruna   (Keycloak; its console /admin: admin / kiruna-local)
  intake         http://127.0.0.1:8000   submit ideas: POST /api/v1/ideas   API docs: /docs
  routing        http://127.0.0.1:8001   catalogue in use: /api/v1/catalogue
  notifications  http://127.0.0.1:8002   your feed: /api/v1/people/me/feed
  analytics      http://127.0.0.1:8003   an idea's timeline: /api/v1/ideas/<id>
  every service: /healthz /readyz /metrics /asyncapi   (through the site: /services/<name>/...)
  Kafka 127.0.0.1:9092   Redis 127.0.0.1:6379   mail sink 127.0.0.1:1025 -> $VAR_DIR/mail/*.eml
  a token for curl (README, "Try it"): POST grant_type=password client_id=kiruna-cli username=... password=...
      to http://127.0.0.1:${KEYCLOAK_PORT:-8180}/realms/kiruna/protocol/openid-connect/token
MSG
}

stop() {
  for entry in "${services[@]}"; do
    local name=${entry%%:*} pidfile="$run/${entry%%:*}.pid"
    if alive "$pidfile"; then
      local pid; pid=$(cat "$pidfile"); say "stopping $name (pid $pid)"; kill -TERM "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && { say "$name did not stop in 30s; killing it"; kill -KILL "$pid"; }
    fi
    rm -f "$pidfile"
  done
  if [ -f "$run/nginx.ours" ]; then deploy/nginx/nginx.sh stop; rm -f "$run/nginx.ours"; fi
  if alive "$run/mailsink.pid"; then say "stopping the mail sink"; kill -TERM "$(cat "$run/mailsink.pid")"; fi
  rm -f "$run/mailsink.pid"
  if [ -f "$run/redis.ours" ]; then deploy/redis.sh stop; rm -f "$run/redis.ours"; fi
  if [ -f "$run/kafka.ours" ]; then deploy/kafka/kafka.sh stop; rm -f "$run/kafka.ours"; fi
  if [ -f "$run/keycloak.ours" ]; then deploy/keycloak/keycloak.sh stop; rm -f "$run/keycloak.ours"; fi
}

status() {
  for entry in "${services[@]}"; do
    local name=${entry%%:*} port=${entry##*:}
    if alive "$run/$name.pid"; then
      echo "$name: running pid $(cat "$run/$name.pid"), ready: $(curl -s "http://127.0.0.1:$port/readyz" || echo no)"
    else echo "$name: stopped"; fi
  done
  echo "kafka: $(deploy/kafka/kafka.sh status || true)"; echo "redis: $(deploy/redis.sh status || true)"
  echo "keycloak: $(deploy/keycloak/keycloak.sh status || true)"; echo "nginx: $(deploy/nginx/nginx.sh status || true)"
}

case "${1:-}" in start) start ;; stop) stop ;; status) status ;; *) echo "usage: $0 start|stop|status" >&2; exit 2 ;; esac
