# Sourced by deploy/test.sh and deploy/fuzz.sh (with VAR_DIR set and the repository as the working directory):
# use the Kafka, Redis and Keycloak already answering on 127.0.0.1, or start throwaway ones under $VAR_DIR, and
# stop them and remove $VAR_DIR when the script exits.
started=()
stop_what_we_started() {
  local status=$?
  for what in "${started[@]}"; do
    case $what in
      kafka) deploy/kafka/kafka.sh stop ;; redis) deploy/redis.sh stop ;; keycloak) deploy/keycloak/keycloak.sh stop ;;
    esac
  done
  [ ${#started[@]} -gt 0 ] && rm -rf "$VAR_DIR"
  exit $status
}
trap stop_what_we_started EXIT INT TERM
if ! (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
  deploy/kafka/kafka.sh start; started+=(kafka)
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  deploy/redis.sh start; started+=(redis)
fi
# Sign-in: real tokens from a local Keycloak (realm kiruna); the browser signs in on its page.
if ! curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:${KEYCLOAK_PORT:-8180}/realms/kiruna/.well-known/openid-configuration"; then
  deploy/keycloak/keycloak.sh start; started+=(keycloak)
fi
deploy/kafka/kafka.sh wait
deploy/redis.sh wait
deploy/keycloak/keycloak.sh wait
