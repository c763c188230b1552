#!/usr/bin/env bash
# One address for people: nginx from the system's packages on 127.0.0.1:8080 in front of the four services.
#   deploy/nginx/nginx.sh install|start|wait|stop|status|reload|render
# Environment: PROXY_PORT (8080), INTAKE_PORT (8000), ROUTING_PORT (8001), NOTIFICATIONS_PORT (8002),
#              ANALYTICS_PORT (8003), VAR_DIR (var), NGINX_WORKERS (1), NGINX_RETRY_AFTER_S (30),
#              NGINX_WAIT_S (20), <SERVICE>_REPLICAS (1): a service's upstream lists replica i on its port + 100*i
#              (deploy/platform.sh starts them so).
# The configuration is rendered from deploy/nginx/kiruna.conf.in into $VAR_DIR/nginx/nginx.conf; the pid file is
# $VAR_DIR/run/nginx.pid, the logs $VAR_DIR/log/nginx-{error,access}.log. /etc/nginx is never touched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${PROXY_PORT:-8080}
var=${VAR_DIR:-$root/var}
case "$var" in /*) ;; *) var="$root/$var" ;; esac
prefix="$var/nginx"
config="$prefix/nginx.conf"
pidfile="$var/run/nginx.pid"
errlog="$var/log/nginx-error.log"

say() { echo "nginx: $*" >&2; }

nginx_bin() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }

install() {
  [ -n "$(nginx_bin)" ] && return
  say "installing nginx from the system's packages"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx-light >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx >/dev/null
  # The package may start a system-wide nginx on port 80; this project runs its own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
    $sudo systemctl stop nginx || true
  fi
  [ -n "$(nginx_bin)" ] || { say "nginx is still missing after installing it"; exit 1; }
}

# The upstream's servers: replica i of a service answers on its port + 100*i (one line: "server a; server b;").
servers() {
  local base=$1 count=$2 i line=""
  for ((i = 0; i < count; i++)); do line+="${line:+ }server 127.0.0.1:$((base + 100 * i));"; done
  echo "$line"
}

render() {
  local port_var value
  for port_var in PROXY_PORT INTAKE_PORT ROUTING_PORT NOTIFICATIONS_PORT ANALYTICS_PORT NGINX_WORKERS NGINX_RETRY_AFTER_S \
                  INTAKE_REPLICAS ROUTING_REPLICAS NOTIFICATIONS_REPLICAS ANALYTICS_REPLICAS; do
    value=${!port_var:-}
    if [ -n "$value" ] && ! [[ "$value" =~ ^[0-9]+$ ]]; then say "$port_var must be a number, not '$value'"; exit 2; fi
    if [[ "$port_var" == *_REPLICAS ]] && [ -n "$value" ] && [ "$value" -lt 1 ]; then
      say "$port_var must be at least 1, not '$value'"; exit 2
    fi
  done
  case "$var" in *[\|\;\ \'\"\{\}\&\\]*) say "VAR_DIR must not contain spaces, quotes, braces, backslashes, ';', '&' or '|': $var"; exit 2 ;; esac
  local user mime
  # As root, the workers run as the invoking user (as Redis and Kafka do), so that they can use the temp paths
  # under VAR_DIR; as anyone else nginx keeps the invoking user anyway.
  if [ "$(id -u)" -eq 0 ]; then user="user $(id -un) $(id -gn);"; else user="# runs as $(id -un)"; fi
  if [ -f /etc/nginx/mime.types ]; then
    mime="include /etc/nginx/mime.types;"
  else
    mime="types { text/html html; text/plain txt; text/css css; application/javascript js; application/json json; image/svg+xml svg; image/png png; }"
  fi
  mkdir -p "$prefix" "$var/run" "$var/log"
  sed -e "s|@PROXY_PORT@|$port|g" \
      -e "s|@INTAKE_SERVERS@|$(servers "${INTAKE_PORT:-8000}" "${INTAKE_REPLICAS:-1}")|g" \
      -e "s|@ROUTING_SERVERS@|$(servers "${ROUTING_PORT:-8001}" "${ROUTING_REPLICAS:-1}")|g" \
      -e "s|@NOTIFICATIONS_SERVERS@|$(servers "${NOTIFICATIONS_PORT:-8002}" "${NOTIFICATIONS_REPLICAS:-1}")|g" \
      -e "s|@ANALYTICS_SERVERS@|$(servers "${ANALYTICS_PORT:-8003}" "${ANALYTICS_REPLICAS:-1}")|g" \
      -e "s|@WORKERS@|${NGINX_WORKERS:-1}|g" \
      -e "s|@RETRY_AFTER_S@|${NGINX_RETRY_AFTER_S:-30}|g" \
      -e "s|@VAR_DIR@|$var|g" \
      -e "s|@USER@|$user|g" \
      -e "s|@MIME_TYPES@|$mime|g" \
      "$here/kiruna.conf.in" > "$config.tmp"
  mv "$config.tmp" "$config"
}

check() {
  local out
  if ! out=$("$(nginx_bin)" -t -q -c "$config" -p "$prefix/" -e "$errlog" 2>&1); then
    say "the configuration $config does not pass 'nginx -t':"; echo "$out" >&2; exit 1
  fi
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

healthy() {
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n" "$1" >&3
    IFS= read -r status <&3 && [[ "$status" == *" 200 "* ]]
  ' _ "$port" 2>/dev/null
}

start() {
  install
  if running; then say "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return; fi
  if answers; then say "something else already answers on 127.0.0.1:$port; not starting a second proxy"; exit 1; fi
  rm -f "$pidfile"
  render
  check
  say "starting on http://127.0.0.1:$port (intake ${INTAKE_PORT:-8000}, routing ${ROUTING_PORT:-8001}," \
      "notifications ${NOTIFICATIONS_PORT:-8002}, analytics ${ANALYTICS_PORT:-8003}; logs $var/log/nginx-*.log)"
  "$(nginx_bin)" -c "$config" -p "$prefix/" -e "$errlog"
}

wait_ready() {
  local deadline=$((SECONDS + ${NGINX_WAIT_S:-20}))
  until healthy; do
    if [ $SECONDS -ge $deadline ]; then
      say "not answering on 127.0.0.1:$port/healthz after ${NGINX_WAIT_S:-20}s; last lines of $errlog:"
      tail -20 "$errlog" >&2 2>/dev/null || true; exit 1
    fi
    sleep 0.1
  done
  say "answering on http://127.0.0.1:$port"
}

reload() {
  if ! running; then say "not running; starting it"; start; return; fi
  render
  check
  say "reloading pid $(cat "$pidfile") with $config"
  kill -HUP "$(cat "$pidfile")"
}

stop() {
  if ! running; then say "not running (no live pid in $pidfile)"; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  say "stopping pid $pid"
  # TERM, not QUIT: a graceful stop would wait for open event streams (up to an hour).
  kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "stopped"; return; }; sleep 0.2; done
  say "pid $pid did not stop in 10s; killing it"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  render) render; echo "$config" ;;
  start) start ;;
  wait) wait_ready ;;
  stop) stop ;;
  reload) reload ;;
  status) if running; then echo "running pid $(cat "$pidfile") port $port"; else echo "stopped"; exit 3; fi ;;
  *) echo "usage: $0 install|start|wait|stop|status|reload|render" >&2; exit 2 ;;
esac
