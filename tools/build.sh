#!/usr/bin/env bash
# Builds the real Kubernetes parts the tests run against, from the Go module proxy,
# pinned by tools/*/go.mod + go.sum: kube-apiserver, kubectl and etcd (the versions
# kube-apiserver is built against) and the pod identity webhook.
# Output in .tools/bin; a tool is rebuilt only when its module files or this script change
# (Go's build cache makes a rebuild on the same machine fast too).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
out=${PODID_TOOLS_BIN:-.tools/bin}
mkdir -p "$out"
out=$(cd "$out" && pwd)

KUBE_VERSION=v1.34.4
kube_ldflags() {
  local major minor
  IFS=. read -r major minor _ <<<"${KUBE_VERSION#v}"
  local flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# build <module dir> <ldflags> <binary=package>...
build() {
  local dir=$1 ldflags=$2; shift 2
  local stamp
  stamp=$(cat "$dir/go.mod" "$dir/go.sum" "$0" | sha256sum | cut -c1-16)
  local missing=()
  for spec in "$@"; do
    local name=${spec%%=*}
    if [[ -x $out/$name && "$(cat "$out/$name.stamp" 2>/dev/null)" == "$stamp" ]]; then
      echo "tools: $name is up to date"
    else
      missing+=("$spec")
    fi
  done
  ((${#missing[@]})) || return 0
  for spec in "${missing[@]}"; do
    local name=${spec%%=*} pkg=${spec#*=} start=$SECONDS
    echo "tools: building $name from $pkg (a first build takes minutes; Go caches it)"
    (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
    mv "$out/$name.tmp" "$out/$name"
    echo "$stamp" >"$out/$name.stamp"
    echo "tools: built $name in $((SECONDS - start)) s"
  done
}

command -v go >/dev/null || { echo "tools: Go is required (https://go.dev/dl), not found on PATH" >&2; exit 1; }
build tools/kube "$(kube_ldflags)" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kubectl=k8s.io/kubernetes/cmd/kubectl \
  etcd=./etcd
build tools/webhook "-s -w" \
  amazon-eks-pod-identity-webhook=github.com/aws/amazon-eks-pod-identity-webhook
