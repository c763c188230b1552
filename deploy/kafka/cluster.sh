#!/usr/bin/env bash
# A local three-node Apache Kafka cluster (KRaft; every node broker and controller) from the same Maven
# Central jars as deploy/kafka/kafka.sh, to run the platform (and its tests) with replication factor 3,
# secured as a real cluster is: SASL/SCRAM-SHA-512 and the StandardAuthorizer (ACLs).
#   deploy/kafka/cluster.sh up|down [--purge]|status|wait|bootstrap|access|env
# Brokers: 127.0.0.1:19092, :19093, :19094 (SASL_PLAINTEXT: loopback only, so no TLS); controllers:
# 127.0.0.1:19192-19194. Data, logs and pid files under var/cluster/ (CLUSTER_DIR). Heap per node: CLUSTER_HEAP
# (384m). Stops only the pids it recorded.
# The superuser kafka-admin (the nodes themselves, topic creation, the admin tools) has the password
# KAFKA_ADMIN_PASSWORD, a fixed local development value unless set; it is written into the nodes' configuration
# and, as a SCRAM credential, into the storage when it is formatted. `up` then runs `access`
# (python -m shared.kafka_access apply): one SCRAM user per service and per subscribing organisation, with its
# ACLs, passwords from KAFKA_PASSWORD_<USER> (local defaults; see shared/kafka_access.py).
# `env` prints the settings of the superuser for the platform's tools: eval "$(deploy/kafka/cluster.sh env)".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${CLUSTER_DIR:-$root/var/cluster}
case "$dir" in /*) ;; *) dir="$root/$dir" ;; esac
nodes=(1 2 3)
port() { echo $((19091 + $1)); }
controller_port() { echo $((19191 + $1)); }
voters="1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
bootstrap="127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
admin_user=kafka-admin
admin_password=${KAFKA_ADMIN_PASSWORD:-kafka-admin-local-only}   # local development only
bad_chars='["'"'"'\\,[]|]'   # they would break the JAAS line, --add-scram or the quoting of `env`
if [ -z "$admin_password" ] || [[ "$admin_password" =~ $bad_chars ]]; then
  echo "cluster: KAFKA_ADMIN_PASSWORD must be set without quotes, backslashes, commas or brackets" >&2; exit 2
fi
python=$root/.venv/bin/python
[ -x "$python" ] || python=python3

say() { echo "cluster: $*" >&2; }
pidfile() { echo "$dir/run/node-$1.pid"; }
running() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
sed_escaped() { printf '%s' "$1" | sed -e 's/[|&\\]/\\&/g'; }

up() {
  local libs; libs=$("$here/kafka.sh" classpath)
  mkdir -p "$dir/run" "$dir/log"
  local cluster_id_file="$dir/cluster.id"
  local java_opts=(-Xms128m "-Xmx${CLUSTER_HEAP:-384m}" -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
                   "-Dlog4j2.configurationFile=$here/log4j2.yaml")
  if [ ! -f "$cluster_id_file" ]; then
    java -cp "$libs" "${java_opts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 > "$cluster_id_file"
  fi
  local cluster_id; cluster_id=$(cat "$cluster_id_file")
  for n in "${nodes[@]}"; do
    if running "$n"; then say "node $n already running (pid $(cat "$(pidfile "$n")"))"; continue; fi
    if answers "$(port "$n")"; then say "something else answers on 127.0.0.1:$(port "$n"); not starting node $n"; exit 1; fi
    local data="$dir/node-$n/data" config="$dir/node-$n/server.properties" log="$dir/log/node-$n.log"
    mkdir -p "$data"
    (umask 077 && sed -e "s:@NODE_ID@:$n:g" -e "s|@VOTERS@|$voters|g" -e "s:@PORT@:$(port "$n"):g" \
        -e "s:@CONTROLLER_PORT@:$(controller_port "$n"):g" -e "s:@DATA_DIR@:$data:g" \
        -e "s|@ADMIN_PASSWORD@|$(sed_escaped "$admin_password")|g" \
        "$here/cluster.properties.in" > "$config")
    local secured="$dir/node-$n/formatted-with-scram"
    if [ ! -f "$data/meta.properties" ]; then
      java -cp "$libs" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$config" \
        --add-scram "SCRAM-SHA-512=[name=$admin_user,password=$admin_password]" >>"$log" 2>&1
      touch "$secured"
    elif [ ! -f "$secured" ]; then
      say "node $n was formatted before the cluster used SASL (no kafka-admin credential): $0 down --purge, then up"
      exit 1
    fi
    say "starting node $n on 127.0.0.1:$(port "$n") (controller :$(controller_port "$n"), log $log)"
    nohup java -cp "$libs" "${java_opts[@]}" kafka.Kafka "$config" >>"$log" 2>&1 &
    echo $! > "$(pidfile "$n")"
  done
  (umask 077 && client_properties > "$dir/admin.properties")
  wait_ready
  access
}

# Client settings of the superuser for Kafka's own Java tools (--command-config / --consumer.config ...).
client_properties() {
  echo "security.protocol=SASL_PLAINTEXT"
  echo "sasl.mechanism=SCRAM-SHA-512"
  echo "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$admin_user\" password=\"$admin_password\";"
}

# The same for the platform's own tools (python -m shared.topics create, shared.kafka_access, the tests).
admin_env() {
  echo "export KAFKA_BOOTSTRAP_SERVERS=$bootstrap KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
  echo "export KAFKA_SASL_USERNAME=$admin_user KAFKA_SASL_PASSWORD='$admin_password'"
  echo "export KAFKA_REPLICATION_FACTOR=3 KAFKA_MIN_INSYNC_REPLICAS=2"
}

# Users and ACLs of the services and the subscribing organisations (idempotent: prints what it created).
access() {
  (cd "$root" && eval "$(admin_env)" && "$python" -m shared.kafka_access apply)
}

wait_ready() {
  local deadline=$((SECONDS + ${CLUSTER_WAIT_S:-120}))
  for n in "${nodes[@]}"; do
    until answers "$(port "$n")"; do
      if [ -f "$(pidfile "$n")" ] && ! running "$n"; then
        say "node $n exited; last lines of $dir/log/node-$n.log:"; tail -20 "$dir/log/node-$n.log" >&2; exit 1
      fi
      if [ $SECONDS -ge $deadline ]; then say "node $n not answering after ${CLUSTER_WAIT_S:-120}s"; exit 1; fi
      sleep 0.5
    done
  done
  say "answering on $bootstrap"
}

down() {
  local pids=()
  for n in "${nodes[@]}"; do
    if running "$n"; then
      local pid; pid=$(cat "$(pidfile "$n")"); say "stopping node $n (pid $pid)"; kill -TERM "$pid"; pids+=("$n:$pid")
    else
      rm -f "$(pidfile "$n")"
    fi
  done
  for entry in "${pids[@]}"; do
    local n=${entry%%:*} pid=${entry##*:}
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then say "node $n (pid $pid) did not stop in 30s; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$(pidfile "$n")"
  done
  if [ "${1:-}" = "--purge" ]; then rm -rf "$dir"; say "removed $dir"; fi
}

status() {
  local up=0
  for n in "${nodes[@]}"; do
    if running "$n"; then echo "node $n: running pid $(cat "$(pidfile "$n")") port $(port "$n")"; up=$((up + 1))
    else echo "node $n: stopped"; fi
  done
  [ "$up" -eq 3 ]
}

case "${1:-}" in
  up) up ;;
  down) shift; down "${1:-}" ;;
  status) status ;;
  wait) wait_ready ;;
  bootstrap) echo "$bootstrap" ;;
  access) access ;;
  env) admin_env ;;
  *) echo "usage: $0 up|down [--purge]|status|wait|bootstrap|access|env" >&2; exit 2 ;;
esac
