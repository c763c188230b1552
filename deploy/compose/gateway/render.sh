#!/bin/sh
# The gateway of deploy/compose.yaml: the platform's one published address. It renders the same proxy
# configuration as `make run` (deploy/nginx/kiruna.conf.in, mounted read-only) for the compose network and runs
# nginx in the foreground:
#   - listens on every interface of the container, port GATEWAY_PORT (8080; compose publishes it);
#   - the four upstreams are the compose services (intake:8000 ...), every replica, re-resolved through Docker's
#     DNS (resolver 127.0.0.11, `server ... resolve`, nginx >= 1.27.3) so that a restarted or scaled replica is
#     found without reloading;
#   - logs to the container's stdout/stderr, temporary files under /tmp/kiruna, workers as the image's user nginx;
#   - includes /etc/nginx/kiruna/http.conf (http level) and /etc/nginx/kiruna/server.conf (server level): the
#     identity provider under /idp/ and Grafana under /grafana/ (deploy/compose/gateway/).
#   render.sh                      render into /etc/nginx/nginx.conf, check it (nginx -t), run nginx
#   render.sh render OUT [TEMPLATE] only render into OUT (tests/ops/test_compose.py)
# Environment: GATEWAY_PORT (8080), NGINX_WORKERS (auto), NGINX_RETRY_AFTER_S (30), KIRUNA_GATEWAY_TEMPLATE
#              (/etc/nginx/kiruna/kiruna.conf.in).
set -eu

say() { echo "gateway: $*" >&2; }

render() {
  out=$1
  template=${2:-${KIRUNA_GATEWAY_TEMPLATE:-/etc/nginx/kiruna/kiruna.conf.in}}
  port=${GATEWAY_PORT:-8080}
  workers=${NGINX_WORKERS:-auto}
  retry=${NGINX_RETRY_AFTER_S:-30}
  case "$port" in ''|*[!0-9]*) say "GATEWAY_PORT must be a number, not '$port'"; exit 2 ;; esac
  case "$retry" in ''|*[!0-9]*) say "NGINX_RETRY_AFTER_S must be a number, not '$retry'"; exit 2 ;; esac
  case "$workers" in auto) ;; ''|*[!0-9]*) say "NGINX_WORKERS must be a number or auto, not '$workers'"; exit 2 ;; esac
  [ -f "$template" ] || { say "the proxy configuration template $template is missing"; exit 1; }
  # Every line that is changed must be there, or the template changed in a way this script does not know.
  for line in 'daemon on;' 'listen 127.0.0.1:@PROXY_PORT@;' 'server_name _;' 'http {' \
              '@INTAKE_SERVERS@' '@ROUTING_SERVERS@' '@NOTIFICATIONS_SERVERS@' '@ANALYTICS_SERVERS@' \
              'error_log @VAR_DIR@/log/nginx-error.log warn;' 'access_log @VAR_DIR@/log/nginx-access.log kiruna;'; do
    grep -qF -- "$line" "$template" || { say "$template has no line '$line': update deploy/compose/gateway/render.sh"; exit 1; }
  done
  sed -e 's|^daemon on;|daemon off;|' \
      -e 's|listen 127\.0\.0\.1:@PROXY_PORT@;|listen @PROXY_PORT@;|' \
      -e 's|^\( *\)server_name _;|&\n\1include /etc/nginx/kiruna/server.conf;|' \
      -e 's|^http {$|&\n    resolver 127.0.0.11 valid=10s ipv6=off;\n    resolver_timeout 5s;\n    include /etc/nginx/kiruna/http.conf;|' \
      -e 's|^\( *\)upstream \([a-z]*\) {$|&\n\1    zone \2 64k;|' \
      -e 's|@INTAKE_SERVERS@|server intake:8000 resolve;|' \
      -e 's|@ROUTING_SERVERS@|server routing:8001 resolve;|' \
      -e 's|@NOTIFICATIONS_SERVERS@|server notifications:8002 resolve;|' \
      -e 's|@ANALYTICS_SERVERS@|server analytics:8003 resolve;|' \
      -e 's|error_log @VAR_DIR@/log/nginx-error.log warn;|error_log /dev/stderr warn;|' \
      -e 's|access_log @VAR_DIR@/log/nginx-access.log kiruna;|access_log /dev/stdout kiruna;|' \
      -e "s|@PROXY_PORT@|$port|g" \
      -e "s|@WORKERS@|$workers|g" \
      -e "s|@RETRY_AFTER_S@|$retry|g" \
      -e 's|@VAR_DIR@|/tmp/kiruna|g' \
      -e 's|@USER@|user nginx;|g' \
      -e 's|@MIME_TYPES@|include /etc/nginx/mime.types;|g' \
      "$template" > "$out.tmp"
  if grep -n '^[^#]*@[A-Z_]*@' "$out.tmp" >&2; then rm -f "$out.tmp"; say "placeholders left unrendered (above)"; exit 1; fi
  mv "$out.tmp" "$out"
}

case "${1:-run}" in
  render) [ -n "${2:-}" ] || { say "usage: $0 render OUT [TEMPLATE]"; exit 2; }; render "$2" "${3:-}" ;;
  run)
    mkdir -p /tmp/kiruna/run /tmp/kiruna/nginx
    render /etc/nginx/nginx.conf
    nginx -t -q
    say "answering on port ${GATEWAY_PORT:-8080} for intake, routing, notifications, analytics, /idp/ and /grafana/"
    exec nginx
    ;;
  *) say "usage: $0 [run | render OUT [TEMPLATE]]"; exit 2 ;;
esac
