#!/usr/bin/env bash
# Jaeger, to look at the services' traces locally (`make traces`): one binary built from the Go module proxy, spans
# kept in memory (gone when it stops), listening on 127.0.0.1 only.
#   deploy/jaeger.sh install|start|wait|stop|status
#     install  build github.com/jaegertracing/jaeger/cmd/jaeger at JAEGER_VERSION into var/tools/bin (once; the
#              module cache and build cache stay under var/go, so a rebuild is quick)
#     start    install, then run it in the background (pid var/run/jaeger.pid, log var/log/jaeger.log)
#     wait     until it answers (health check and UI), at most JAEGER_WAIT_S seconds
#   Environment: JAEGER_VERSION (v1.76.0), JAEGER_UI_PORT (16686: UI and its API, /api/traces?service=...),
#   JAEGER_OTLP_HTTP_PORT (4318), JAEGER_OTLP_GRPC_PORT (4317), JAEGER_QUERY_GRPC_PORT (16685),
#   JAEGER_HEALTH_PORT (13133), JAEGER_WAIT_S (60), VAR_DIR (var), GO (the go command; /usr/local/go/bin/go or PATH)
#
# `go install .../cmd/jaeger@v1.76.0` is refused: Jaeger's go.mod has a replace directive (Shopify/sarama). So the
# module's source is downloaded from the proxy (`go mod download`), copied under var/go/src and built there with
# its own go.mod: the same dependencies, verified by its go.sum. v1.76.0 is Jaeger v2 (the OpenTelemetry
# collector-based binary) under v1 numbering. The Jaeger UI's built assets are not in the Go module (they are
# made by npm from another repository), so http://127.0.0.1:16686/ shows Jaeger's placeholder page; the query
# API the UI uses (/api/services, /api/traces) answers in full.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${JAEGER_VERSION:-v1.76.0}
ui_port=${JAEGER_UI_PORT:-16686}
otlp_http_port=${JAEGER_OTLP_HTTP_PORT:-4318}
otlp_grpc_port=${JAEGER_OTLP_GRPC_PORT:-4317}
query_grpc_port=${JAEGER_QUERY_GRPC_PORT:-16685}
health_port=${JAEGER_HEALTH_PORT:-13133}
var=${VAR_DIR:-$root/var}
case "$var" in /*) ;; *) var="$root/$var" ;; esac
bin="$var/tools/bin/jaeger-$version"
pidfile="$var/run/jaeger.pid"
config="$var/jaeger/config.yaml"
log="$var/log/jaeger.log"
module=github.com/jaegertracing/jaeger
say() { echo "jaeger: $*" >&2; }

go_command() {
  if [ -n "${GO:-}" ]; then echo "$GO"; return; fi
  if [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go; return; fi
  command -v go || { say "Go (1.24 or newer) is needed to build Jaeger: install it (https://go.dev/dl/) or set GO"; exit 1; }
}

install() {
  if [ -x "$bin" ]; then return; fi
  local go; go=$(go_command)
  export GOMODCACHE="$var/go/mod" GOCACHE="$var/go/cache" GOFLAGS=-mod=readonly GOTOOLCHAIN=local
  local started=$SECONDS
  say "building $module/cmd/jaeger $version with $("$go" version | cut -d' ' -f3) (the first time 10-20 minutes on two cores: about 340 modules; later builds reuse var/go)"
  say "downloading the module $module@$version from the Go module proxy"
  local dir
  dir=$("$go" mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] && [ -f "$dir/go.mod" ] || { say "could not download $module@$version"; exit 1; }
  [ -d "$dir/cmd/jaeger" ] || { say "$module@$version has no cmd/jaeger (an older release?): set JAEGER_VERSION"; exit 1; }
  local src="$var/go/src/jaeger-$version"
  rm -rf "$src"; mkdir -p "$(dirname "$src")" "$(dirname "$bin")"
  cp -R "$dir" "$src"; chmod -R u+w "$src"
  say "downloading what cmd/jaeger imports ($(grep -c '^	' "$src/go.mod") modules in its go.mod) and compiling"
  (cd "$src" && "$go" build -trimpath -ldflags "-s -w" -o "$bin.tmp" ./cmd/jaeger)
  mv "$bin.tmp" "$bin"
  rm -rf "$src"
  say "built $bin in $((SECONDS - started)) s"
}

write_config() {
  mkdir -p "$(dirname "$config")"
  cat > "$config" <<EOF
# Written by deploy/jaeger.sh: Jaeger with in-memory storage, every port on 127.0.0.1.
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:$ui_port
    grpc:
      endpoint: 127.0.0.1:$query_grpc_port
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:$health_port
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$otlp_http_port
      grpc:
        endpoint: 127.0.0.1:$otlp_grpc_port
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
EOF
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
port_taken() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
answers() { curl -fsS -o /dev/null "http://127.0.0.1:$health_port/status" 2>/dev/null && curl -fsS -o /dev/null "http://127.0.0.1:$ui_port/api/services" 2>/dev/null; }

start() {
  install
  if running; then say "already running (pid $(cat "$pidfile")): UI http://127.0.0.1:$ui_port"; return; fi
  for port in "$ui_port" "$otlp_http_port" "$otlp_grpc_port" "$query_grpc_port" "$health_port"; do
    if port_taken "$port"; then
      say "port $port on 127.0.0.1 is in use (another Jaeger or collector?); free it or set the JAEGER_*_PORT variables"
      exit 1
    fi
  done
  mkdir -p "$var/run" "$var/log"
  write_config
  say "starting $version (in-memory storage): OTLP/HTTP 127.0.0.1:$otlp_http_port, UI and API 127.0.0.1:$ui_port, log $log"
  nohup "$bin" --config "$config" >"$log" 2>&1 &
  echo $! >"$pidfile"
}

wait_ready() {
  local deadline=$((SECONDS + ${JAEGER_WAIT_S:-60}))
  while [ $SECONDS -lt $deadline ]; do
    if answers; then say "answering: UI http://127.0.0.1:$ui_port, OTLP/HTTP http://127.0.0.1:$otlp_http_port"; return; fi
    if [ -f "$pidfile" ] && ! running; then say "exited; last lines of $log:"; tail -20 "$log" >&2; exit 1; fi
    sleep 0.5
  done
  say "not answering on 127.0.0.1:$health_port and :$ui_port after ${JAEGER_WAIT_S:-60} s; see $log"; exit 1
}

stop() {
  if ! running; then say "not running (no live pid in $pidfile)"; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  say "stopping pid $pid (its traces are kept in memory only: they go with it)"
  kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "stopped"; return; }; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true; rm -f "$pidfile"; say "killed (did not stop within 10 s)"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  wait) wait_ready ;;
  stop) stop ;;
  status) if running; then echo "running pid $(cat "$pidfile"), UI http://127.0.0.1:$ui_port"; else echo "stopped"; exit 3; fi ;;
  *) echo "usage: $0 install|start|wait|stop|status" >&2; exit 2 ;;
esac
