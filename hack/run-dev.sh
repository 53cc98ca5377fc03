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
free_port() { # [first port of a hundred]
  local p base=${1:-5200}
  for p in $(seq "$base" $((base + 99))); do
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

# The node's kubelet asks credbroker's credential provider for the dev
# registry's images (docs/secretless.md); the kubelet reads its config at
# start, so the config names the registry's port and dev mode's gRPC
# address before either listens.
registry_port=$(free_port 5300)
provider=$data/credential-provider
"$root/bin/credbroker-credential-provider" install --bin-dir "$provider/bin" --config "$provider/config.yaml" \
  --broker 127.0.0.1:9090 --plaintext --max-cache 1m --match-images "127.0.0.1:$registry_port" 2> /dev/null

if [ -n "${KUBECONFIG:-}" ]; then
  kubeconfig=$KUBECONFIG
else
  echo "starting a single-node cluster (the first run builds Kubernetes: about 15 minutes) ..." >&2
  if env=$(NODE_KUBELET_ARGS="--image-credential-provider-config=$provider/config.yaml --image-credential-provider-bin-dir=$provider/bin" \
    "$here/node.sh" start); then
    cluster=node
    kubeconfig=$(sed -n 's/^KUBECONFIG=//p' <<< "$env")
  else
    "$here/node.sh" stop > /dev/null 2>&1 || true
    echo "no node here (above: why); a kube-apiserver alone instead: Secrets are synced, no Pod runs" >&2
    cluster=apiserver
    kubeconfig=$("$here/kube-apiserver.sh" start)
  fi
  kubectl=$("$here/testbin.sh")/kubectl
  for ns in demo demo-pat demo-secretless; do
    "$kubectl" --kubeconfig "$kubeconfig" create namespace "$ns" --dry-run=client -o yaml |
      "$kubectl" --kubeconfig "$kubeconfig" apply -f - > /dev/null
  done
  # The node may request ServiceAccount tokens for credbroker's audience
  # (what the chart's credentialProvider.nodeRBAC grants).
  "$kubectl" --kubeconfig "$kubeconfig" apply -f - > /dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: credbroker-node-token-audience}
rules: [{apiGroups: [""], resources: [credbroker], verbs: [request-serviceaccounts-token-audience]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: credbroker-node-token-audience}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: credbroker-node-token-audience}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:nodes}]
EOF
  echo "kubectl for this cluster: export PATH=$(dirname "$kubectl"):\$PATH" >&2
fi
"$bin" serve --dev --data-dir "$data" --dev-registry-bin "$root/bin/registry" --dev-registry-port "$registry_port" \
  --kubeconfig "$kubeconfig" "$@"
