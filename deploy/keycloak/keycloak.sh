#!/usr/bin/env bash
# Local Keycloak (the OpenID Connect provider people sign in with) from Maven Central, for development and tests.
#   deploy/keycloak/keycloak.sh fetch|start|wait|stop|status|java
# Realm `kiruna` is imported from deploy/keycloak/kiruna-realm.json on first start (LOCAL ONLY: every password is
# kiruna-local). Data (the H2 database) under $VAR_DIR/keycloak/, log $VAR_DIR/log/keycloak.log.
# Environment: KEYCLOAK_PORT (8180), VAR_DIR (var), KEYCLOAK_JAVA_HOME (default: the newest JDK >= 21 found),
#              KEYCLOAK_HEAP (512m), KEYCLOAK_WAIT_S (240), KEYCLOAK_HOME (cache dir of the unpacked server).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's:.*<keycloak.version>\(.*\)</keycloak.version>.*:\1:p' "$here/pom.xml")
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kiruna-innovation
home=${KEYCLOAK_HOME:-$cache/keycloak-$version/keycloak-$version}
port=${KEYCLOAK_PORT:-8180}
var=${VAR_DIR:-$root/var}
case "$var" in /*) ;; *) var="$root/$var" ;; esac
data="$var/keycloak"
pidfile="$var/run/keycloak.pid"
logfile="$var/log/keycloak.log"
realm_url="http://127.0.0.1:$port/realms/kiruna/.well-known/openid-configuration"

say() { echo "keycloak: $*" >&2; }

# The newest JDK of version 21 or later: Keycloak 26 needs one (the system's default Java 17 runs Kafka).
find_java() {
  if [ -n "${KEYCLOAK_JAVA_HOME:-}" ]; then echo "$KEYCLOAK_JAVA_HOME"; return; fi
  local best="" best_major=0 candidate major
  for candidate in ${JAVA_HOME:-} /usr/lib/jvm/* /opt/java/* /opt/jdk*; do
    [ -x "$candidate/bin/java" ] || continue
    major=$("$candidate/bin/java" -XshowSettings:properties -version 2>&1 \
      | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
    if [ -n "$major" ] && [ "$major" -ge 21 ] && [ "$major" -gt "$best_major" ]; then
      best=$candidate; best_major=$major
    fi
  done
  [ -n "$best" ] || return 1
  echo "$best"
}

java_home() {
  local found
  if ! found=$(find_java); then
    say "no JDK 21 or newer found (looked in \$JAVA_HOME and /usr/lib/jvm); Keycloak $version needs one."
    say "install one (e.g. apt-get install openjdk-21-jdk-headless) or set KEYCLOAK_JAVA_HOME"
    exit 1
  fi
  echo "$found"
}

fetch() {
  if [ -f "$home/.complete" ]; then return; fi
  command -v mvn >/dev/null || { say "Maven (mvn) is required to fetch Keycloak $version from Maven Central"; exit 1; }
  command -v unzip >/dev/null || { say "unzip is required to unpack Keycloak $version"; exit 1; }
  local dir; dir=$(dirname "$home")
  say "fetching Keycloak $version from Maven Central (~180 MB) into $dir"
  mkdir -p "$dir"
  (cd "$here" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DincludeTypes=zip -DoutputDirectory="$dir")
  rm -rf "$home"
  unzip -q -o "$dir/keycloak-quarkus-dist-$version.zip" -d "$dir"
  rm -f "$dir/keycloak-quarkus-dist-$version.zip"
  touch "$home/.complete"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
answers() { curl -fsS -o /dev/null --max-time 2 "$realm_url" 2>/dev/null; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  if running; then say "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return; fi
  if port_taken; then say "something else already answers on 127.0.0.1:$port; not starting a second Keycloak"; exit 1; fi
  fetch
  local jdk; jdk=$(java_home)
  say "using the JDK in $jdk ($("$jdk/bin/java" -version 2>&1 | head -1))"
  mkdir -p "$data" "$home/data/import" "$var/run" "$var/log"
  # --import-realm reads the server's own data/import: the realm is imported when the database has no realm
  # kiruna yet; later starts keep what changed in it (realm.py sync brings the officers in step).
  cp "$here/kiruna-realm.json" "$home/data/import/kiruna-realm.json"
  say "starting Keycloak $version on 127.0.0.1:$port (data $data, log $logfile); first start takes ~30-60 s"
  # start-dev: HTTP on loopback, development settings; LOCAL ONLY. The master realm's admin is admin/kiruna-local.
  KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=kiruna-local \
  JAVA_HOME="$jdk" JAVA_OPTS_KC_HEAP="-Xms128m -Xmx${KEYCLOAK_HEAP:-512m}" \
    nohup "$home/bin/kc.sh" start-dev --http-host=127.0.0.1 --http-port="$port" \
      --db=dev-file --db-url="jdbc:h2:file:$data/h2/keycloakdb;NON_KEYWORDS=VALUE" \
      --import-realm --log-level=WARN,org.keycloak.services:INFO \
      --health-enabled=false --metrics-enabled=false >>"$logfile" 2>&1 &
  echo $! > "$pidfile"
}

wait_ready() {
  local deadline=$((SECONDS + ${KEYCLOAK_WAIT_S:-240}))
  until answers; do
    if [ -f "$pidfile" ] && ! running; then say "Keycloak exited; last lines of $logfile:"; tail -20 "$logfile" >&2; exit 1; fi
    if [ $SECONDS -ge $deadline ]; then say "realm kiruna not answering on 127.0.0.1:$port after ${KEYCLOAK_WAIT_S:-240}s"; exit 1; fi
    sleep 1
  done
  say "realm kiruna answering on http://127.0.0.1:$port/realms/kiruna"
}

stop() {
  if ! running; then say "not running (no live pid in $pidfile)"; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  say "stopping pid $pid"
  # kc.sh forwards TERM to its java process and waits for it
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
  java) jdk=$(java_home); echo "$jdk"; "$jdk/bin/java" -version 2>&1 | head -1 ;;
  *) echo "usage: $0 fetch|start|wait|stop|status|java" >&2; exit 2 ;;
esac
