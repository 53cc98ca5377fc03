#!/usr/bin/env bash
# eso.sh — build External Secrets Operator's controller (the side-by-side of
# `make bench`, docs/performance.md) from the Go module proxy into a cache
# directory with its CustomResourceDefinitions, and print that directory:
#   $ESO_DIR/external-secrets, $ESO_DIR/crds/*.yaml
# A second run with both in place only prints it.
#
# ESO carries a replace directive and pins its whole build list, so it is
# built from a scratch module that copies ESO's go.mod requirements and its
# go.sum as they are (no `go mod tidy`: it would resolve test-only
# dependencies the proxy does not all serve), as hack/testbin.sh does for
# Kubernetes. v0.20.4 is the newest release whose dependencies the proxy
# serves whole.
#
#   ESO_VERSION (0.20.4)   ESO_DIR ($XDG_CACHE_HOME or ~/.cache)/credbroker/eso-$ESO_VERSION
set -euo pipefail
ESO_VERSION=${ESO_VERSION:-0.20.4}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/credbroker
ESO_DIR=${ESO_DIR:-$CACHE/eso-$ESO_VERSION}
bin=$ESO_DIR/external-secrets
if [ -x "$bin" ] && [ -d "$ESO_DIR/crds" ]; then
  echo "$ESO_DIR"; exit 0
fi
module=github.com/external-secrets/external-secrets
mod=$CACHE/eso-build/eso-$ESO_VERSION
if [ ! -f "$mod/go.sum" ]; then
  mkdir -p "$mod"
  info=$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "$module@v$ESO_VERSION")
  field() { echo "$info" | sed -n "s/.*\"$1\": \"\(.*\)\".*/\1/p"; }
  src=$(field Dir)
  # ESO's own go.mod, renamed, plus ESO itself: its requirement list is its
  # whole build list, so adding it changes no version.
  {
    sed "s#^module .*#module esobuild#" "$src/go.mod"
    printf '\nrequire %s v%s\n' "$module" "$ESO_VERSION"
  } > "$mod/go.mod"
  {
    cat "$src/go.sum"
    printf '%s v%s %s\n%s v%s/go.mod %s\n' "$module" "$ESO_VERSION" "$(field Sum)" "$module" "$ESO_VERSION" "$(field GoModSum)"
  } > "$mod/go.sum"
fi
mkdir -p "$ESO_DIR/crds"
(cd "$mod" && go build -ldflags "-s -w" -o "$bin.tmp" "$module") >&2
mv "$bin.tmp" "$bin"
src=$(cd "$mod" && go list -m -f '{{.Dir}}' "$module")
cp "$src"/config/crds/bases/*.io_*.yaml "$ESO_DIR/crds/"
chmod u+w "$ESO_DIR"/crds/*.yaml
echo "$ESO_DIR"
