#!/usr/bin/env bash
# `make test`: use the Kafka, Redis and Keycloak already answering on 127.0.0.1 (each test has its own topics and
# keys; Keycloak's realm kiruna is only read), or start throwaway ones under var/test/ and stop and remove them
# afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Helm, kubeconform and the Kubernetes API schemas for tests/ops/test_helm.py, built from the Go module proxy while
# the rest of the suite runs (minutes on a fresh machine, at low priority so the tests keep the cores; nothing once
# built); the Helm tests run last, after waiting for the build.
mkdir -p var/tools
nice -n 15 deploy/helm.sh all >var/tools/helm-build.log 2>&1 &
helm_build=$!
export VAR_DIR="$root/var/test"
. deploy/dependencies.sh
.venv/bin/python -m tests.support.warmup
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider --ignore=tests/ops/test_helm.py "$@" tests || status=$?
echo "waiting for deploy/helm.sh (var/tools/helm-build.log) to finish building Helm and kubeconform" >&2
if ! wait "$helm_build"; then
  echo "deploy/helm.sh could not build Helm, kubeconform or the schemas (var/tools/helm-build.log):" >&2
  tail -n 30 var/tools/helm-build.log >&2
  exit 1
fi
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests/ops/test_helm.py || status=$?
exit "$status"
