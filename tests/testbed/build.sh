#!/usr/bin/env bash
# Builds the test bed's real components from their Go modules, idempotently, into a cache
# outside the clone keyed by version:
#   $CACHE/k8s-<v>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl}
#   $CACHE/etcd-<v>/bin/etcd   $CACHE/kwok-<v>/bin/kwok (+ stages.yaml)
#   $CACHE/krew-<v>/bin/{krew,validate-krew-manifest}   $CACHE/istioctl-<module>/bin/istioctl
#   $CACHE/istio-charts-<module>/manifests   (an older chart generation istioctl renders with
#                                             `--manifests`: every ISTIO_*_CHARTS not `istioctl`)
#   $CACHE/gateway-api-<v>/crds/*.yaml (the Gateway API's standard CRDs, for waypoints)
# CACHE = $KUBECTL_MESH_TESTBED_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/kubectl-mesh-testbed.
# Usage: build.sh [component...]
#   (default: all; components: k8s etcd kwok krew istioctl charts gatewayapi)
# Prints the cache root on the last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${KUBECTL_MESH_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mesh-testbed}
mkdir -p "$CACHE/logs"
export CGO_ENABLED=0 GOFLAGS="-modcacherw -buildvcs=false"

log() { printf '[testbed-build] %s\n' "$*" >&2; }

# retry CMD...: runs a download step up to three times (the module proxy sometimes drops a
# connection); its output goes to the component's log, so a failure says why.
retry() {
  local n
  for n in 1 2 3; do
    "$@" && return 0
    echo "[testbed-build] attempt $n of 3 failed: $*" >&2
    sleep $((n * 5))
  done
  return 1
}

# done_marker DIR KEY: true when DIR was built for KEY (the marker holds the key).
is_built() { [ -f "$1/.built" ] && [ "$(cat "$1/.built")" = "$2" ]; }

build_k8s() {
  local v=$K8S_VERSION dir=$CACHE/k8s-$K8S_VERSION
  is_built "$dir" "$v" && return 0
  local minor patch gomod gd ldf kv
  minor=$(cut -d. -f2 <<<"$v"); patch=$(cut -d. -f3 <<<"$v")
  mkdir -p "$dir/src" "$dir/bin"; cd "$dir/src"
  [ -f go.mod ] || go mod init testbed.local/k8sbuild >/dev/null 2>&1
  gomod=$(retry go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  # The tagged module replaces every staging module with ./staging/...; map each to its tag.
  for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod"); do
    go mod edit -replace="$m=$m@v0.$minor.$patch"
  done
  gd=$(sed -n 's/^godebug default=\(.*\)$/\1/p' "$gomod")
  if [ -n "$gd" ]; then go mod edit -godebug="default=$gd"; fi
  retry go get "k8s.io/kubernetes/cmd/kube-apiserver@v$v" "k8s.io/kubernetes/cmd/kube-controller-manager@v$v" \
    "k8s.io/kubernetes/cmd/kube-scheduler@v$v" "k8s.io/kubernetes/cmd/kubectl@v$v"
  ldf="-s -w"
  for kv in "gitVersion=v$v" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
            "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    ldf="$ldf -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldf" -o "$dir/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  "$dir/bin/kube-apiserver" --version | grep -q "v$v"
  echo "$v" >"$dir/.built"
}

build_etcd() {
  local v=$ETCD_VERSION dir=$CACHE/etcd-$ETCD_VERSION
  is_built "$dir" "$v" && return 0
  mkdir -p "$dir/src" "$dir/bin"; cd "$dir/src"
  [ -f go.mod ] || go mod init testbed.local/etcdbuild >/dev/null 2>&1
  # server/go.mod has replace directives, so `go install pkg@v` refuses it: build it as a dependency.
  retry go get "go.etcd.io/etcd/server/v3@v$v"
  go build -trimpath -ldflags "-s -w" -o "$dir/bin/etcd" go.etcd.io/etcd/server/v3
  "$dir/bin/etcd" --version | grep -q "$v"
  echo "$v" >"$dir/.built"
}

build_kwok() {
  local v=$KWOK_VERSION dir=$CACHE/kwok-$KWOK_VERSION stage
  is_built "$dir" "$v" && return 0
  mkdir -p "$dir/bin"
  GOBIN=$dir/bin go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$v"
  # Standalone kwok needs its stages in --config; they ship inside the module.
  stage=$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$v/kustomize/stage
  : >"$dir/stages.yaml"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { cat "$stage/$f"; echo '---'; } >>"$dir/stages.yaml"
  done
  echo "$v" >"$dir/.built"
}

build_krew() {
  local v=$KREW_VERSION dir=$CACHE/krew-$KREW_VERSION
  is_built "$dir" "$v" && return 0
  mkdir -p "$dir/src" "$dir/bin"; cd "$dir/src"
  # `go install pkg@v` reads the module's version list, which the proxy here refuses for krew:
  # build it as a dependency of a throwaway module instead.
  [ -f go.mod ] || go mod init testbed.local/krewbuild >/dev/null 2>&1
  retry go get "sigs.k8s.io/krew/cmd/krew@v$v" "sigs.k8s.io/krew/cmd/validate-krew-manifest@v$v"
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=v$v" -o "$dir/bin/" \
    sigs.k8s.io/krew/cmd/krew sigs.k8s.io/krew/cmd/validate-krew-manifest
  "$dir/bin/krew" version | grep -q "v$v"
  echo "$v" >"$dir/.built"
}

build_istioctl() {
  local v=$ISTIOCTL_VERSION dir=$CACHE/istioctl-$ISTIO_MODULE_VERSION ldf kv
  is_built "$dir" "$v" && return 0
  mkdir -p "$dir/bin"
  ldf="-s -w"
  # Without these, images render as registry.istio.io/testing/pilot:latest and labels say unknown.
  for kv in "buildVersion=$v" "buildTag=$v" buildHub=docker.io/istio buildStatus=Clean \
            buildOS=linux buildArch=amd64; do
    ldf="$ldf -X istio.io/istio/pkg/version.$kv"
  done
  GOBIN=$dir/bin go install -trimpath -tags vtprotobuf,disable_pgv -ldflags "$ldf" \
    "istio.io/istio/istioctl/cmd/istioctl@$ISTIO_MODULE_VERSION"
  "$dir/bin/istioctl" version --remote=false | grep -q "$v"
  echo "$v" >"$dir/.built"
}

# The `manifests/` directory (charts and profiles) of istio.io/istio at one module version, from
# the Go module proxy: nothing is compiled, the module is only downloaded and the directory copied
# out of the module cache (which `go clean -modcache` may empty).
build_charts_of() {
  local v=$1 dir=$CACHE/istio-charts-$1 src
  is_built "$dir" "$v" && return 0
  cd "$CACHE"   # outside any go.mod: the download is of the module alone
  src=$(retry go mod download -json "istio.io/istio@$v" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -f "$src/manifests/charts/istio-control/istio-discovery/Chart.yaml" ]
  rm -rf "$dir"; mkdir -p "$dir"
  cp -R "$src/manifests" "$dir/manifests"
  chmod -R u+w "$dir/manifests"
  [ -f "$dir/manifests/profiles/default.yaml" ]
  echo "$v" >"$dir/.built"
}

build_charts() {
  local c
  for c in "$ISTIO_OLD_CHARTS" "$ISTIO_NEW_CHARTS"; do
    [ "$c" = istioctl ] || build_charts_of "$c"
  done
}

build_gatewayapi() {
  local v=$GATEWAY_API_VERSION dir=$CACHE/gateway-api-$GATEWAY_API_VERSION src
  is_built "$dir" "$v" && return 0
  # Nothing to compile: the module (already in the module cache when istioctl was built, it is
  # one of istio's dependencies) ships the CRDs Istio's waypoints are Gateways of.
  cd "$CACHE"   # outside any go.mod: the download is of the module alone
  src=$(retry go mod download -json "sigs.k8s.io/gateway-api@v$v" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$src/config/crd/standard" ]
  rm -rf "$dir/crds"; mkdir -p "$dir/crds"
  cp "$src"/config/crd/standard/*.yaml "$dir/crds/"
  chmod u+w "$dir"/crds/*.yaml
  grep -q "name: gateways.gateway.networking.k8s.io" "$dir/crds/gateway.networking.k8s.io_gateways.yaml"
  echo "$v" >"$dir/.built"
}

run() { # run NAME: build one component, log to a file, report the time taken
  local name=$1 start rc=0
  start=$(date +%s)
  # errexit is ignored in a function called under `||`, so run it in its own strict subshell.
  set +e
  ( set -e; "build_$name" ) >"$CACHE/logs/$name.log" 2>&1
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    log "$name FAILED after $(( $(date +%s) - start ))s; last lines of $CACHE/logs/$name.log:"
    tail -n 20 "$CACHE/logs/$name.log" >&2
    return $rc
  fi
  log "$name ready in $(( $(date +%s) - start ))s"
}

main() {
  local comps=("$@") pids=() failed=0 t0
  [ ${#comps[@]} -gt 0 ] || comps=(etcd kwok krew charts gatewayapi k8s istioctl)
  t0=$(date +%s)
  log "cache: $CACHE; building: ${comps[*]}"
  # The two large builds run side by side: their download and link phases overlap on 2 cores.
  for c in "${comps[@]}"; do
    run "$c" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  log "total $(( $(date +%s) - t0 ))s"
  [ $failed -eq 0 ] || exit 1
  echo "$CACHE"
}
main "$@"
