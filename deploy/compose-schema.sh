#!/usr/bin/env bash
# The Compose specification's JSON schema (schema/compose-spec.json of github.com/compose-spec/compose-go/v2 at one
# pinned version), fetched once from the Go module proxy as the module's zip, checked against its pinned sha256
# and cached under var/; prints the path of the schema. deploy/compose.yaml is validated against it by
# tests/ops/test_compose.py (in `make test`).
#   deploy/compose-schema.sh           fetch if missing, print the path of compose-spec.json
# Environment: VAR_DIR (var), GOPROXY_URL (https://proxy.golang.org).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
module=github.com/compose-spec/compose-go/v2
version=v2.17.0
# sha256 of ${module}@${version}.zip as the proxy serves it (module zips are immutable once published)
sha256=3af3c020ea6875a44c6663755650439aa4749cf3f036095e23c115e25ba6051e
proxy=${GOPROXY_URL:-https://proxy.golang.org}
var=${VAR_DIR:-$root/var}
case "$var" in /*) ;; *) var="$root/$var" ;; esac
cache="$var/cache/compose-spec/$version"
schema="$cache/compose-spec.json"

say() { echo "compose-schema: $*" >&2; }

if [ -f "$schema" ] && [ -f "$cache/.verified" ]; then echo "$schema"; exit 0; fi
command -v curl >/dev/null || { say "curl is required to fetch $module@$version from $proxy"; exit 1; }
command -v unzip >/dev/null || { say "unzip is required to unpack $module@$version"; exit 1; }
mkdir -p "$cache"
zip="$cache/module.zip"
say "fetching $module@$version from $proxy"
if ! curl -fsSL --retry 3 --max-time 120 -o "$zip.tmp" "$proxy/$module/@v/$version.zip"; then
  rm -f "$zip.tmp"; say "could not download $proxy/$module/@v/$version.zip"; exit 1
fi
actual=$(sha256sum "$zip.tmp" | cut -d' ' -f1)
if [ "$actual" != "$sha256" ]; then
  rm -f "$zip.tmp"; say "sha256 of $module@$version.zip is $actual, expected $sha256: refusing it"; exit 1
fi
mv "$zip.tmp" "$zip"
unzip -p "$zip" "$module@$version/schema/compose-spec.json" > "$schema.tmp"
mv "$schema.tmp" "$schema"
rm -f "$zip"
touch "$cache/.verified"
echo "$schema"
