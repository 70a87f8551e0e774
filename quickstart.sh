#!/usr/bin/env bash
# Quick start: builds kubectl-mesh and runs `kubectl mesh precheck` against your cluster — or,
# when no cluster is configured (no reachable current context), against a local test bed: a real
# Kubernetes control plane with Istio 1.30.5 (default revision, older charts) and a 1.31.1 canary
# (tests/testbed/versions.env), started by `mesh-testbed up --istio` (binaries built once from Go
# modules into ~/.cache; ~20 min cold).
#   ./quickstart.sh [precheck flags...]      e.g. ./quickstart.sh --target-version 1.31.1
# Stop the local test bed with: target/release/mesh-testbed down
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --locked -p kubectl-mesh -p kubectl-mesh-precheck -p kubectl-mesh-tag \
  -p kubectl-mesh-uninstall -p kubectl-mesh-upgrade -p mesh-testbed
export PATH="$PWD/target/release:$PATH"
if kubectl-mesh-precheck --request-timeout 5s -o json >/dev/null 2>&1 || [ $? -eq 1 ]; then
  echo "Using your current kubeconfig context." >&2
else
  echo "No reachable cluster configured: starting the local test bed (with Istio)." >&2
  bash tests/testbed/build.sh >&2
  state="${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mesh-testbed/run/quickstart"
  mesh-testbed status --dir "$state" >/dev/null 2>&1 || mesh-testbed up --istio --detach --dir "$state" >&2
  export KUBECONFIG="$state/kubeconfig"
  echo "Test bed: export KUBECONFIG=$KUBECONFIG   (stop: mesh-testbed down --dir $state)" >&2
fi
exec kubectl-mesh precheck "$@"
