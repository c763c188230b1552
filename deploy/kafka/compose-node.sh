#!/usr/bin/env bash
# One node of deploy/compose.yaml's Kafka cluster, in the apache/kafka image, secured as the local cluster is
# (deploy/kafka/cluster.properties.in): SASL/SCRAM-SHA-512 for clients and between brokers, SASL/PLAIN towards
# the controllers, the StandardAuthorizer with the superuser kafka-admin. The image formats its storage without
# SCRAM credentials, so this script writes the configuration, formats the storage once with the superuser's
# credential (--add-scram) and starts Kafka.
# Configuration: every KAFKA_<NAME> variable becomes the property <name> as the image names them (lower case,
# "_" -> ".", "__" -> "_", "___" -> "-"); CLUSTER_ID; KAFKA_ADMIN_PASSWORD (required; no quotes, backslashes,
# commas or brackets). It also writes /tmp/admin.properties, the superuser's client settings, for the health check.
set -euo pipefail
home=${KAFKA_HOME:-/opt/kafka}
config=${KAFKA_NODE_CONFIG:-/tmp/server.properties}
admin_properties=${KAFKA_ADMIN_PROPERTIES:-/tmp/admin.properties}
password=${KAFKA_ADMIN_PASSWORD:?set KAFKA_ADMIN_PASSWORD, the password of the superuser kafka-admin}
bad_chars='["'"'"'\\,[]|]'
if [[ "$password" =~ $bad_chars ]]; then echo "KAFKA_ADMIN_PASSWORD must hold no quotes, backslashes, commas or brackets" >&2; exit 2; fi
: "${CLUSTER_ID:?set CLUSTER_ID}"

umask 077
{
  while IFS='=' read -r name value; do
    case "$name" in
      KAFKA_ADMIN_PASSWORD|KAFKA_HOME|KAFKA_NODE_CONFIG|KAFKA_ADMIN_PROPERTIES|KAFKA_VERSION) continue ;;
      KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_GC_LOG_OPTS|KAFKA_LOG4J_OPTS|KAFKA_JMX_OPTS) continue ;;
      KAFKA_*) ;;
      *) continue ;;
    esac
    key=$(printf '%s' "${name#KAFKA_}" | tr '[:upper:]' '[:lower:]' | sed -e 's/___/-/g' -e 's/__/\x01/g' -e 's/_/./g' -e 's/\x01/_/g')
    printf '%s=%s\n' "$key" "$value"
  done < <(env)
  echo "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"kafka-admin\" password=\"$password\";"
  echo "listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"kafka-admin\" password=\"$password\" user_kafka-admin=\"$password\";"
} > "$config"
{
  echo "security.protocol=SASL_PLAINTEXT"
  echo "sasl.mechanism=SCRAM-SHA-512"
  echo "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"kafka-admin\" password=\"$password\";"
} > "$admin_properties"

# Once: a formatted storage is left as it is (--ignore-formatted).
"$home/bin/kafka-storage.sh" format --ignore-formatted -t "$CLUSTER_ID" -c "$config" \
  --add-scram "SCRAM-SHA-512=[name=kafka-admin,password=$password]"
exec "$home/bin/kafka-server-start.sh" "$config"
