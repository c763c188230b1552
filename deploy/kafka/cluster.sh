#!/usr/bin/env bash
# A local three-node Apache Kafka cluster (KRaft; every node broker and controller) from the same Maven
# Central jars as deploy/kafka/kafka.sh, to run the platform (and its tests) with replication factor 3.
#   deploy/kafka/cluster.sh up|down|status|wait|bootstrap
# Brokers: 127.0.0.1:19092, :19093, :19094; controllers: 127.0.0.1:19192-19194. Data, logs and pid files
# under var/cluster/ (CLUSTER_DIR). Heap per node: CLUSTER_HEAP (384m). Stops only the pids it recorded.
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

say() { echo "cluster: $*" >&2; }
pidfile() { echo "$dir/run/node-$1.pid"; }
running() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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
    sed -e "s:@NODE_ID@:$n:g" -e "s|@VOTERS@|$voters|g" -e "s:@PORT@:$(port "$n"):g" \
        -e "s:@CONTROLLER_PORT@:$(controller_port "$n"):g" -e "s:@DATA_DIR@:$data:g" \
        "$here/cluster.properties.in" > "$config"
    if [ ! -f "$data/meta.properties" ]; then
      java -cp "$libs" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$config" >>"$log" 2>&1
    fi
    say "starting node $n on 127.0.0.1:$(port "$n") (controller :$(controller_port "$n"), log $log)"
    nohup java -cp "$libs" "${java_opts[@]}" kafka.Kafka "$config" >>"$log" 2>&1 &
    echo $! > "$(pidfile "$n")"
  done
  wait_ready
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
  *) echo "usage: $0 up|down [--purge]|status|wait|bootstrap" >&2; exit 2 ;;
esac
