#!/usr/bin/env bash
# The official AsyncAPI CLI (@asyncapi/cli) from the npm registry, installed once into a cache outside the
# repository. Version 4.1.1 is the newest that runs on Node 20 (5.x and 6.x need Node 24).
#   deploy/asyncapi.sh                 install if missing, print the path of the `asyncapi` command
#   deploy/asyncapi.sh validate FILE   validate one document
set -euo pipefail
version=${ASYNCAPI_CLI_VERSION:-4.1.1}
prefix=${ASYNCAPI_CLI_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiruna-innovation/asyncapi-cli-$version}
bin="$prefix/node_modules/.bin/asyncapi"
say() { echo "asyncapi: $*" >&2; }
if [ ! -x "$bin" ] || [ ! -f "$prefix/.complete" ]; then
  command -v npm >/dev/null || { say "npm (Node 20+) is required to install @asyncapi/cli"; exit 1; }
  say "installing @asyncapi/cli@$version into $prefix"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "@asyncapi/cli@$version" >&2
  "$bin" config analytics --disable >/dev/null 2>&1 || true   # no usage analytics sent anywhere
  touch "$prefix/.complete"
fi
case "${1:-}" in
  "") echo "$bin" ;;
  *) exec "$bin" "$@" ;;
esac
