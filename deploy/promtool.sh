#!/usr/bin/env bash
# Prometheus's own `promtool` (checks the scrape configuration, the alert rules and their unit tests, and the
# services' /metrics text). Installs Debian's `prometheus` package if promtool is missing; idempotent.
#   deploy/promtool.sh            install if missing, print the path of promtool
set -euo pipefail
say() { echo "promtool: $*" >&2; }
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then say "apt-get not found: install Prometheus's promtool by hand"; exit 1; fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { say "not root and no sudo: install the 'prometheus' package by hand"; exit 1; }
  as_root=(sudo -n)
fi
say "installing Debian's 'prometheus' package (for /usr/bin/promtool)"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus >&2
# The package starts a Prometheus server where systemd runs; the tests need only the promtool binary.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  "${as_root[@]}" systemctl disable --now prometheus >&2 || true
fi
command -v promtool
