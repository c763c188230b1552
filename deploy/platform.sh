#!/usr/bin/env bash
# Start/stop the whole platform locally: Kafka, Redis, topics, the four services (logs under var/log/).
#   deploy/platform.sh start|stop|status
# <SERVICE>_REPLICAS (1): processes of a service in its one consumer group (see replicas() below).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export VAR_DIR=${VAR_DIR:-$root/var}
run="$VAR_DIR/run"; logs="$VAR_DIR/log"
services=(intake:8000 routing:8001 notifications:8002 analytics:8003)
py="$root/.venv/bin/python"
say() { echo "platform: $*" >&2; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Replicas: <SERVICE>_REPLICAS (1) processes of a service in its one consumer group. Replica i (0, 1, ...) answers
# on the service's port + 100*i (INTAKE_PORT 8000: 8000, 8100, 8200; the proxy lists them all, deploy/nginx);
# replica 0 keeps the names of a single process (var/run/<name>.pid, var/log/<name>.log), replica i >= 1 has
# var/run/<name>-<i>.pid and var/log/<name>-<i>.log. Routing's replica i >= 1 is ROUTING_INSTANCE <instance>-<i>
# (its Kafka transactional id must be its own); intake's replica i >= 1 has no mail door (replica 0 has it; for
# more intake processes behind the one mail door use INTAKE_WORKERS, which share both ports).
replicas() {
  local var; var="$(echo "$1" | tr '[:lower:]' '[:upper:]')_REPLICAS"
  local n=${!var:-1}
  if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt 20 ]; then say "$var must be a whole number from 1 to 20, not '$n'"; exit 2; fi
  echo "$n"
}
base_port() { local var; var="$(echo "$1" | tr '[:lower:]' '[:upper:]')_PORT"; echo "${!var:-$2}"; }
suffix() { [ "$1" -eq 0 ] || echo "-$1"; }
# Every pid file of a service that is there, whatever <SERVICE>_REPLICAS says now (a stop finds them all).
pidfiles() { local f; for f in "$run/$1.pid" "$run/$1"-[0-9]*.pid; do [ -f "$f" ] && echo "$f"; done; return 0; }

start_replica() {  # name base-port index
  local name=$1 port=$(($2 + 100 * $3)) sfx; sfx=$(suffix "$3")
  local pidfile="$run/$name$sfx.pid" upper; upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
  if alive "$pidfile"; then say "$name$sfx already running (pid $(cat "$pidfile"))"; return; fi
  local -a env=("${upper}_PORT=$port")
  if [ "$3" -ge 1 ]; then
    case "$name" in
      routing) env+=("ROUTING_INSTANCE=${ROUTING_INSTANCE:-$(hostname)}-$3") ;;
      intake) env+=("INTAKE_SMTP_ENABLED=false") ;;
    esac
  fi
  env "${env[@]}" nohup "$py" -m "services.$name" >>"$logs/$name$sfx.log" 2>&1 &
  echo $! > "$pidfile"
  [ "$3" -eq 0 ] || say "started $name replica $3 (pid $!, port $port, log $logs/$name$sfx.log)"
}

start() {
  for entry in "${services[@]}"; do replicas "${entry%%:*}" >/dev/null; done  # a bad count stops before anything
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
  local entry name count i
  for entry in "${services[@]}"; do
    name=${entry%%:*}; count=$(replicas "$name")
    for ((i = 0; i < count; i++)); do start_replica "$name" "$(base_port "$name" "${entry##*:}")" "$i"; done
  done
  # One address for people: the reverse proxy in front of the four services
  deploy/nginx/nginx.sh start; touch "$run/nginx.ours"
  local port sfx
  for entry in "${services[@]}"; do
    name=${entry%%:*}; count=$(replicas "$name")
    for ((i = 0; i < count; i++)); do
      port=$(($(base_port "$name" "${entry##*:}") + 100 * i)); sfx=$(suffix "$i")
      for _ in $(seq 1 120); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        alive "$run/$name$sfx.pid" || { say "$name$sfx exited; last lines of $logs/$name$sfx.log:"; tail -20 "$logs/$name$sfx.log" >&2; exit 1; }
        sleep 0.5
      done
      curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { say "$name$sfx is not ready after 60s (see $logs/$name$sfx.log)"; exit 1; }
    done
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
  local entry pidfile pid label
  local -a stopping=()
  for entry in "${services[@]}"; do
    for pidfile in $(pidfiles "${entry%%:*}"); do
      label=$(basename "$pidfile" .pid)
      if alive "$pidfile"; then
        pid=$(cat "$pidfile"); say "stopping $label (pid $pid)"; kill -TERM "$pid"; stopping+=("$label:$pid")
      fi
      rm -f "$pidfile"
    done
  done
  # all at once (the replicas of a group leave it together), each given 30 s
  for entry in "${stopping[@]}"; do
    label=${entry%%:*}; pid=${entry##*:}
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then say "$label did not stop in 30s; killing it"; kill -KILL "$pid"; fi
  done
  if [ -f "$run/nginx.ours" ]; then deploy/nginx/nginx.sh stop; rm -f "$run/nginx.ours"; fi
  if alive "$run/mailsink.pid"; then say "stopping the mail sink"; kill -TERM "$(cat "$run/mailsink.pid")"; fi
  rm -f "$run/mailsink.pid"
  if [ -f "$run/redis.ours" ]; then deploy/redis.sh stop; rm -f "$run/redis.ours"; fi
  if [ -f "$run/kafka.ours" ]; then deploy/kafka/kafka.sh stop; rm -f "$run/kafka.ours"; fi
  if [ -f "$run/keycloak.ours" ]; then deploy/keycloak/keycloak.sh stop; rm -f "$run/keycloak.ours"; fi
}

status() {
  local entry name base pidfile label index port found
  for entry in "${services[@]}"; do
    name=${entry%%:*}; base=$(base_port "$name" "${entry##*:}"); found=0
    for pidfile in $(pidfiles "$name"); do
      found=1; label=$(basename "$pidfile" .pid); index=${label#"$name"}; index=${index#-}; port=$((base + 100 * ${index:-0}))
      if alive "$pidfile"; then
        echo "$label: running pid $(cat "$pidfile") port $port, ready: $(curl -s "http://127.0.0.1:$port/readyz" || echo no)"
      else echo "$label: stopped (stale $pidfile)"; fi
    done
    [ "$found" -eq 1 ] || echo "$name: stopped"
  done
  echo "kafka: $(deploy/kafka/kafka.sh status || true)"; echo "redis: $(deploy/redis.sh status || true)"
  echo "keycloak: $(deploy/keycloak/keycloak.sh status || true)"; echo "nginx: $(deploy/nginx/nginx.sh status || true)"
}

case "${1:-}" in start) start ;; stop) stop ;; status) status ;; *) echo "usage: $0 start|stop|status" >&2; exit 2 ;; esac
