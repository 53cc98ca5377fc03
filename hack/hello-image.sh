#!/usr/bin/env bash
# hello-image.sh REF — build the hello image (hack/hello, a static binary
# that greets and waits for SIGTERM) without a container engine and push it
# to REF with crane. It is the node's sandbox (pause) image and the runnable
# image that dev mode and the end-to-end suite give their tenants.
#
#   CRANE          the crane binary (bin/crane)
#   DOCKER_CONFIG  where crane finds the registry's credentials, if any
set -euo pipefail
ref=${1:?usage: hack/hello-image.sh REGISTRY/REPOSITORY:TAG}
here=$(cd "$(dirname "$0")" && pwd)
crane=${CRANE:-$here/../bin/crane}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$here/.." && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "-s -w" -o "$work/root/hello" ./hack/hello)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/root" -cf "$work/layer.tar" hello
repo=${ref%:*}
# containerd refuses an image whose config names no platform.
crane() { "$crane" "$@" > /dev/null 2> "$work/crane.log" || { cat "$work/crane.log" >&2; return 1; }; }
crane append -f "$work/layer.tar" -t "$ref"
crane mutate "$ref" -t "$ref" --set-platform linux/amd64 --entrypoint /hello --cmd "${repo#*/}"
