#!/usr/bin/env bash
# run-dev.sh — what `make run` does: credbroker in dev mode against the
# current kubeconfig when KUBECONFIG is set, or else against a local
# kube-apiserver that this script starts (and stops on exit), with the
# namespaces of the demo tenants created.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${CREDBROKER_BIN:-$here/../bin/credbroker}
if [ -n "${KUBECONFIG:-}" ]; then
  exec "$bin" serve --dev --kubeconfig "$KUBECONFIG" "$@"
fi
echo "starting a local kube-apiserver (the first run builds it: about 10 minutes) ..." >&2
kubeconfig=$("$here/kube-apiserver.sh" start)
trap '"$here/kube-apiserver.sh" stop' EXIT
kubectl=$("$here/testbin.sh")/kubectl
for ns in demo demo-pat; do
  "$kubectl" --kubeconfig "$kubeconfig" create namespace "$ns" > /dev/null
done
"$bin" serve --dev --kubeconfig "$kubeconfig" "$@"
