#!/usr/bin/env bash
# image.sh REF — build credbroker's container image without a container
# engine and push it to REF with crane. The image holds what the Dockerfile
# describes: the static binaries credbroker and credbroker-credential-provider
# (the chart's node DaemonSet installs the latter) in /usr/local/bin, a CA bundle,
# /etc/passwd and /etc/group naming the nonroot user 65532, and /tmp; it
# runs as 65532:65532, `credbroker serve` by default, linux/amd64.
#
#   CRANE          the crane binary (bin/crane)
#   CREDBROKER_BINARIES  a directory holding both binaries, already built
#                  with this script's flags (the tests' builds): put into the
#                  image as they are instead of compiled again
#   DOCKER_CONFIG  where crane finds the registry's credentials, if any
set -euo pipefail
ref=${1:?usage: hack/image.sh REGISTRY/REPOSITORY:TAG}
cd "$(dirname "$0")/.."
crane=${CRANE:-$PWD/bin/crane}
bundle=/etc/ssl/certs/ca-certificates.crt
[ -r "$bundle" ] || { echo "image.sh: no CA bundle at $bundle (apt-get install ca-certificates)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
if [ -n "${CREDBROKER_BINARIES:-}" ]; then
  cp -L "$CREDBROKER_BINARIES/credbroker" "$CREDBROKER_BINARIES/credbroker-credential-provider" "$root/usr/local/bin/"
else
  CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "-s -w" -o "$root/usr/local/bin/" ./cmd/credbroker ./cmd/credbroker-credential-provider
fi
cp "$bundle" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
# Reproducible: sorted names, root ownership (but the nonroot home), no timestamps.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$work/layer.tar" .

"$crane" append -f "$work/layer.tar" -t "$ref" >/dev/null
"$crane" mutate "$ref" -t "$ref" --set-platform linux/amd64 --user 65532:65532 \
  --entrypoint /usr/local/bin/credbroker --cmd serve --exposed-ports 9090/tcp,8080/tcp \
  -l org.opencontainers.image.source=https://github.com/credbroker/credbroker
