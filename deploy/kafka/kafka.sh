#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one broker+controller) from Maven Central jars.
#   deploy/kafka/kafka.sh fetch|start|wait|stop|status|classpath
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), VAR_DIR (var), KAFKA_HEAP (512m),
#              KAFKA_LOG_FLUSH_INTERVAL_MESSAGES (1), KAFKA_LIBS (cache dir of the jars).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
pom_hash=$(sha256sum "$here/pom.xml" | cut -c1-8)
libs=${KAFKA_LIBS:-${XDG_CACHE_HOME:-$HOME/.cache}/kiruna-innovation/kafka-$version-$pom_hash/libs}
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
var=${VAR_DIR:-$root/var}
case "$var" in /*) ;; *) var="$root/$var" ;; esac
data="$var/kafka/data"
config="$var/kafka/server.properties"
pidfile="$var/run/kafka.pid"
logfile="$var/log/kafka.log"

say() { echo "kafka: $*" >&2; }

fetch() {
  if [ -f "$libs/.complete" ]; then return; fi
  command -v mvn >/dev/null || { say "Maven (mvn) is required to fetch Kafka $version from Maven Central"; exit 1; }
  command -v java >/dev/null || { say "Java 17+ is required to run Kafka"; exit 1; }
  say "fetching Apache Kafka $version and its runtime dependencies from Maven Central into $libs"
  mkdir -p "$libs"
  (cd "$here" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs")
  touch "$libs/.complete"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  if running; then say "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return; fi
  if answers; then say "something else already answers on 127.0.0.1:$port; not starting a second broker"; exit 1; fi
  fetch
  mkdir -p "$data" "$var/run" "$var/log"
  sed -e "s:@PORT@:$port:g" -e "s:@CONTROLLER_PORT@:$controller_port:g" -e "s:@DATA_DIR@:$data:g" \
      -e "s:@FLUSH_INTERVAL@:${KAFKA_LOG_FLUSH_INTERVAL_MESSAGES:-1}:g" \
      "$here/server.properties.in" > "$config"
  local java_opts=(-Xms256m "-Xmx${KAFKA_HEAP:-512m}" -XX:+UseG1GC -Djava.awt.headless=true
                   "-Dlog4j2.configurationFile=$here/log4j2.yaml")
  if [ ! -f "$data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$libs/*" "${java_opts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    say "formatting storage under $data (cluster id $cluster_id)"
    java -cp "$libs/*" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$config" >>"$logfile" 2>&1
  fi
  say "starting Kafka $version on 127.0.0.1:$port (data $data, log $logfile)"
  nohup java -cp "$libs/*" "${java_opts[@]}" kafka.Kafka "$config" >>"$logfile" 2>&1 &
  echo $! > "$pidfile"
}

wait_ready() {
  local deadline=$((SECONDS + ${KAFKA_WAIT_S:-90}))
  until answers; do
    if [ -f "$pidfile" ] && ! running; then say "the broker exited; last lines of $logfile:"; tail -20 "$logfile" >&2; exit 1; fi
    if [ $SECONDS -ge $deadline ]; then say "not answering on 127.0.0.1:$port after ${KAFKA_WAIT_S:-90}s"; exit 1; fi
    sleep 0.5
  done
  say "answering on 127.0.0.1:$port"
}

stop() {
  if ! running; then say "not running (no live pid in $pidfile)"; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  say "stopping pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "stopped"; return; }; sleep 0.5; done
  say "pid $pid did not stop in 30s; killing it"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  wait) wait_ready ;;
  stop) stop ;;
  status) if running; then echo "running pid $(cat "$pidfile") port $port"; else echo "stopped"; exit 3; fi ;;
  classpath) fetch; echo "$libs/*" ;;
  *) echo "usage: $0 fetch|start|wait|stop|status|classpath" >&2; exit 2 ;;
esac
