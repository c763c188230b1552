#!/bin/sh
# Alertmanager in deploy/compose.yaml: writes its configuration from the environment, then runs it. Every alert of
# deploy/prometheus/rules.yml goes to one receiver, "operators": by e-mail, to a webhook, or both (at least one).
#   alertmanager.sh                 render into /tmp/alertmanager, run /bin/alertmanager with it
#   alertmanager.sh render DIR      only render DIR/alertmanager.yml (tests/ops/test_compose.py)
# Environment:
#   ALERT_EMAIL_TO          where alerts are mailed (e.g. drift@kiruna.se); empty: no e-mail
#   ALERT_EMAIL_FROM        their sender (required with ALERT_EMAIL_TO)
#   ALERT_SMTP_SMARTHOST    the mail server, host:port (required with ALERT_EMAIL_TO)
#   ALERT_SMTP_USERNAME, ALERT_SMTP_PASSWORD   its sign-in (optional); ALERT_SMTP_REQUIRE_TLS (true)
#   ALERT_WEBHOOK_URL       a webhook (chat, on-call tool) receiving Alertmanager's JSON; empty: none
# Secrets (the SMTP password, the webhook URL, which often carries a token) are written to files of their own
# (mode 600) that the configuration names, never into the configuration itself.
set -eu

say() { echo "alertmanager: $*" >&2; }

# A value written into the YAML as a double-quoted string: no quote, backslash or line break.
plain() {
  case "$2" in *'"'*|*'\'*) say "$1 must not contain quotes or backslashes"; exit 2 ;; esac
  if [ "$(printf '%s' "$2" | wc -l)" -ne 0 ]; then say "$1 must be a single line"; exit 2; fi
}

render() {
  dir=$1
  to=${ALERT_EMAIL_TO:-}
  webhook=${ALERT_WEBHOOK_URL:-}
  if [ -z "$to" ] && [ -z "$webhook" ]; then
    say "set ALERT_EMAIL_TO (with ALERT_EMAIL_FROM and ALERT_SMTP_SMARTHOST) or ALERT_WEBHOOK_URL, or both:" \
        "alerts must reach someone"
    exit 2
  fi
  mkdir -p "$dir"
  umask 077
  config="$dir/alertmanager.yml"
  {
    echo "# Written by deploy/alertmanager/alertmanager.sh from its environment; do not edit."
    echo "route:"
    echo "  receiver: operators"
    echo "  group_by: [alertname, job]"
    echo "  group_wait: 30s"
    echo "  group_interval: 5m"
    echo "  repeat_interval: 4h"
    echo "  routes:"
    echo "    - receiver: operators        # a service down, people's data waiting: say so at once, and hourly"
    echo "      matchers: ['severity=\"critical\"']"
    echo "      group_wait: 10s"
    echo "      repeat_interval: 1h"
    echo "    - receiver: operators        # figures for the innovation office: once a day is enough"
    echo "      matchers: ['severity=\"info\"']"
    echo "      repeat_interval: 24h"
    echo "receivers:"
    echo "  - name: operators"
    if [ -n "$to" ]; then
      from=${ALERT_EMAIL_FROM:?set ALERT_EMAIL_FROM, the sender of the alert e-mails}
      smarthost=${ALERT_SMTP_SMARTHOST:?set ALERT_SMTP_SMARTHOST, the mail server as host:port}
      tls=${ALERT_SMTP_REQUIRE_TLS:-true}
      case "$tls" in true|false) ;; *) say "ALERT_SMTP_REQUIRE_TLS must be true or false, not '$tls'"; exit 2 ;; esac
      case "$smarthost" in *:[0-9]*) ;; *) say "ALERT_SMTP_SMARTHOST must be host:port, not '$smarthost'"; exit 2 ;; esac
      plain ALERT_EMAIL_TO "$to"; plain ALERT_EMAIL_FROM "$from"; plain ALERT_SMTP_SMARTHOST "$smarthost"
      echo "    email_configs:"
      echo "      - to: \"$to\""
      echo "        from: \"$from\""
      echo "        smarthost: \"$smarthost\""
      echo "        require_tls: $tls"
      echo "        send_resolved: true"
      if [ -n "${ALERT_SMTP_USERNAME:-}" ]; then
        plain ALERT_SMTP_USERNAME "$ALERT_SMTP_USERNAME"
        printf '%s' "${ALERT_SMTP_PASSWORD:-}" > "$dir/smtp-password"
        echo "        auth_username: \"$ALERT_SMTP_USERNAME\""
        echo "        auth_password_file: \"$dir/smtp-password\""
      fi
    fi
    if [ -n "$webhook" ]; then
      case "$webhook" in http://*|https://*) ;; *) say "ALERT_WEBHOOK_URL must be an http(s) URL"; exit 2 ;; esac
      printf '%s' "$webhook" > "$dir/webhook-url"
      echo "    webhook_configs:"
      echo "      - url_file: \"$dir/webhook-url\""
      echo "        send_resolved: true"
    fi
  } > "$config.tmp"
  mv "$config.tmp" "$config"
}

case "${1:-run}" in
  render) [ -n "${2:-}" ] || { say "usage: $0 render DIR"; exit 2; }; render "$2"; echo "$2/alertmanager.yml" ;;
  run)
    render /tmp/alertmanager
    exec /bin/alertmanager --config.file=/tmp/alertmanager/alertmanager.yml --storage.path=/alertmanager \
      --web.listen-address=:9093 --cluster.listen-address=
    ;;
  *) say "usage: $0 [run | render DIR]"; exit 2 ;;
esac
