#!/usr/bin/env bash
# Helm and kubeconform, built from the Go module proxy into var/tools/bin (module and build caches under
# var/tools/go/), for checking the chart in deploy/helm/kiruna/. Idempotent: a tool already built at the pinned
# version is not built again. Needs Go >= 1.24 (`go` on PATH or /usr/local/go/bin/go).
#   deploy/helm.sh              build what is missing, print the path of helm
#   deploy/helm.sh kubeconform  build what is missing, print the path of kubeconform
#   deploy/helm.sh schemas      make the Kubernetes JSON schemas kubeconform reads, print their directory
#   deploy/helm.sh all          all three (what `make test` needs), printing the three paths
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
helm_version=${HELM_VERSION:-v3.22.0}
kubeconform_version=${KUBECONFORM_VERSION:-v0.7.0}
# The Kubernetes whose API the manifests are checked against: its OpenAPI document (api/openapi-spec/swagger.json)
# comes in the module k8s.io/kubernetes, which the Go module proxy serves (the usual JSON schemas do not).
kubernetes_version=${KUBERNETES_SCHEMA_VERSION:-v1.36.3}
tools="$root/var/tools"
bin="$tools/bin"
say() { echo "helm.sh: $*" >&2; }

go=$(command -v go || true)
[ -n "$go" ] || go=/usr/local/go/bin/go
[ -x "$go" ] || { say "Go is required to build Helm (install Go >= 1.24 or put it on PATH)"; exit 1; }
export GOBIN="$bin" GOMODCACHE="$tools/go/mod" GOCACHE="$tools/go/cache" GOPATH="$tools/go/path"
export GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$bin"
# One build at a time: `make test` starts one in the background and the tests call this script again.
exec 9>"$tools/.lock"
flock 9

# build NAME VERSION PACKAGE LDFLAGS: `go install PACKAGE@VERSION` unless var/tools/bin/NAME.version says it is
# there, built with the same flags.
build() {
  local name=$1 version=$2 package=$3 ldflags=${4:-}
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/$name.version" 2>/dev/null)" = "$version $ldflags" ]; then return 0; fi
  say "building $name $version from the Go module proxy ($package@$version) into $bin ..."
  local started=$SECONDS
  "$go" install -trimpath -ldflags "-s -w $ldflags" "$package@$version" >&2
  echo "$version $ldflags" >"$bin/$name.version"
  say "built $name $version in $((SECONDS - started)) s"
}

helm() {
  # As Helm's own Makefile links it: its version, and the Kubernetes version `helm template` and `helm lint` assume
  # (that of its k8s.io/client-go v0.37: 1.37; without it 1.20, older than the chart's kubeVersion).
  local k8s=helm.sh/helm/v3/pkg
  build helm "$helm_version" helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$helm_version \
-X $k8s/chartutil.k8sVersionMajor=1 -X $k8s/chartutil.k8sVersionMinor=37 \
-X $k8s/lint/rules.k8sVersionMajor=1 -X $k8s/lint/rules.k8sVersionMinor=37"
  echo "$bin/helm"
}

kubeconform() {
  build kubeconform "$kubeconform_version" github.com/yannh/kubeconform/cmd/kubeconform "-X main.version=$kubeconform_version"
  echo "$bin/kubeconform"
}

schemas() {
  local dir="$tools/k8s-schemas/$kubernetes_version"
  if [ ! -f "$dir/.complete" ]; then
    say "fetching Kubernetes $kubernetes_version's OpenAPI document (module k8s.io/kubernetes) ..."
    local module
    module=$(cd "$tools" && "$go" mod download -json "k8s.io/kubernetes@$kubernetes_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -f "$module/api/openapi-spec/swagger.json" ] \
      || { say "k8s.io/kubernetes@$kubernetes_version has no api/openapi-spec/swagger.json"; exit 1; }
    rm -rf "$dir"
    python3 "$root/deploy/helm/k8s_schemas.py" "$module/api/openapi-spec/swagger.json" "$dir"
    touch "$dir/.complete"
  fi
  echo "$dir"
}

case "${1:-helm}" in
  helm) helm ;;
  kubeconform) kubeconform ;;
  schemas) schemas ;;
  all) helm; kubeconform; schemas ;;
  *) say "usage: deploy/helm.sh [helm|kubeconform|schemas|all]"; exit 2 ;;
esac
