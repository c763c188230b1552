#!/usr/bin/env bash
# Local Redis from the system's packages, append-only persistence under var/redis/.
#   deploy/redis.sh install|start|wait|stop|status      Environment: REDIS_PORT (6379), VAR_DIR (var)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${REDIS_PORT:-6379}
var=${VAR_DIR:-$root/var}
case "$var" in /*) ;; *) var="$root/$var" ;; esac
pidfile="$var/run/redis.pid"
say() { echo "redis: $*" >&2; }

install() {
  command -v redis-server >/dev/null && return
  say "installing redis-server from the system's packages"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  # The package may start a system-wide instance; this project runs its own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    $sudo systemctl stop redis-server || true
  fi
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
answers() { redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; }

start() {
  install
  if running; then say "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return; fi
  if answers; then say "something else already answers on 127.0.0.1:$port; not starting a second server"; exit 1; fi
  mkdir -p "$var/redis" "$var/run" "$var/log"
  say "starting on 127.0.0.1:$port (data $var/redis)"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$var/redis" --appendonly yes --appendfsync everysec \
    --daemonize yes --pidfile "$pidfile" --logfile "$var/log/redis.log" --save ""
}

wait_ready() {
  for _ in $(seq 1 100); do answers && { say "answering on 127.0.0.1:$port"; return; }; sleep 0.2; done
  say "not answering on 127.0.0.1:$port"; exit 1
}

stop() {
  if ! running; then say "not running (no live pid in $pidfile)"; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  say "stopping pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "stopped"; return; }; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true; rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  wait) wait_ready ;;
  stop) stop ;;
  status) if running; then echo "running pid $(cat "$pidfile") port $port"; else echo "stopped"; exit 3; fi ;;
  *) echo "usage: $0 install|start|wait|stop|status" >&2; exit 2 ;;
esac
