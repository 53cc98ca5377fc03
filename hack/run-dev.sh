#!/usr/bin/env bash
# run-dev.sh — what `make run` does: credbroker in dev mode, with the GitHub
# emulator in front of a real registry (CNCF Distribution) that holds a
# runnable demo image, against
#   - the cluster of $KUBECONFIG when it is set, or else
#   - a single-node cluster that hack/node.sh starts (a kubelet and
#     containerd run the demo Pods), or, where no node can run here,
#   - a local kube-apiserver alone (hack/kube-apiserver.sh): Secrets are
#     synced, no Pod runs.
# What it starts it stops on exit, and the dev data goes with it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${CREDBROKER_BIN:-$root/bin/credbroker}
data=$(mktemp -d "${TMPDIR:-/tmp}/credbroker-dev-XXXXXX")
cluster=""
cleanup() {
  case $cluster in
    node) "$here/node.sh" stop ;;
    apiserver) "$here/kube-apiserver.sh" stop ;;
  esac
  rm -rf "$data"
}
trap cleanup EXIT

# The demo image, pushed into the dev registry's storage by a registry
# without auth over the same storage (only for the time of the push);
# dev mode then serves that storage behind the emulator's realm.
free_port() {
  local p
  for p in $(seq 5200 5299); do
    (echo > "/dev/tcp/127.0.0.1/$p") 2> /dev/null || { echo "$p"; return; }
  done
  return 1
}
seed() {
  local port cfg=$data/seed.yml pid
  port=$(free_port)
  mkdir -p "$data/registry/data"
  printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s"}\n' \
    "$data/registry/data" "$port" > "$cfg"
  "$root/bin/registry" serve "$cfg" > "$data/seed.log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/v2/" > /dev/null; do
    kill -0 "$pid" 2> /dev/null || { cat "$data/seed.log" >&2; return 1; }
    sleep 0.1
  done
  CRANE=$root/bin/crane "$here/hello-image.sh" "127.0.0.1:$port/octo-org/hello:latest"
  kill "$pid"
  wait "$pid" 2> /dev/null || true
}
seed

if [ -n "${KUBECONFIG:-}" ]; then
  kubeconfig=$KUBECONFIG
else
  echo "starting a single-node cluster (the first run builds Kubernetes: about 15 minutes) ..." >&2
  if env=$("$here/node.sh" start); then
    cluster=node
    kubeconfig=$(sed -n 's/^KUBECONFIG=//p' <<< "$env")
  else
    "$here/node.sh" stop > /dev/null 2>&1 || true
    echo "no node here (above: why); a kube-apiserver alone instead: Secrets are synced, no Pod runs" >&2
    cluster=apiserver
    kubeconfig=$("$here/kube-apiserver.sh" start)
  fi
  kubectl=$("$here/testbin.sh")/kubectl
  for ns in demo demo-pat; do
    "$kubectl" --kubeconfig "$kubeconfig" create namespace "$ns" --dry-run=client -o yaml |
      "$kubectl" --kubeconfig "$kubeconfig" apply -f - > /dev/null
  done
  echo "kubectl for this cluster: export PATH=$(dirname "$kubectl"):\$PATH" >&2
fi
"$bin" serve --dev --data-dir "$data" --dev-registry-bin "$root/bin/registry" --kubeconfig "$kubeconfig" "$@"
