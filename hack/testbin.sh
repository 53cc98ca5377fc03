#!/usr/bin/env bash
# testbin.sh — build etcd and the Kubernetes binaries (kube-apiserver,
# kubectl, and for the single-node cluster of hack/node.sh kube-controller-
# manager, kube-scheduler and kubelet) from the Go module proxy (no release
# downloads) into a cache directory, and print that directory. It is laid out
# like envtest's KUBEBUILDER_ASSETS. A second run with the binaries in place
# only prints the directory.
#
#   K8S_VERSION   (1.36.3)  ETCD_VERSION (3.5.21)
#   TESTBIN_DIR   ($XDG_CACHE_HOME or ~/.cache)/credbroker/testbin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-1.36.3}
ETCD_VERSION=${ETCD_VERSION:-3.5.21}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/credbroker
TESTBIN_DIR=${TESTBIN_DIR:-$CACHE/testbin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION}
KUBE_CMDS="kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet"
complete=true
for b in etcd $KUBE_CMDS; do [ -x "$TESTBIN_DIR/$b" ] || complete=false; done
if $complete; then
  echo "$TESTBIN_DIR"; exit 0
fi
mkdir -p "$TESTBIN_DIR"
WORK=$CACHE/testbin-build
mkdir -p "$WORK"

# k8s.io/kubernetes replaces its staging modules with local paths, so it cannot
# be `go install`ed: build it from a scratch module that maps each staging
# module to its published v0.MINOR.PATCH. No `go mod tidy`: it would resolve
# test-only dependencies, some of which the proxy does not serve.
kmod=$WORK/k8s-$K8S_VERSION
if [ ! -f "$kmod/go.mod" ]; then
  mkdir -p "$kmod"
  gomod=$(cd "$kmod" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging=v0.${K8S_VERSION#1.}
  {
    printf 'module testbin\n\ngo %s\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$(awk '/^go /{print $2}' "$gomod")" "$K8S_VERSION"
    awk '/^replace \(/{r=1;next} r&&/^\)/{r=0} r && $2=="=>" && $3 ~ /^\.\/staging/ {print $1}' "$gomod" |
      while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging"; done
    printf ')\n'
  } > "$kmod/go.mod"
fi
pkgs=$(for c in $KUBE_CMDS; do printf 'k8s.io/kubernetes/cmd/%s ' "$c"; done)
# shellcheck disable=SC2086 # one word per package
(cd "$kmod" && go list -mod=mod -deps $pkgs > /dev/null)
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
# One build for all of them, so the packages they share compile once.
# shellcheck disable=SC2086
(cd "$kmod" && go build -ldflags "$ldflags" -o "$TESTBIN_DIR/" $pkgs) >&2

# etcd's server module also carries replace directives.
if [ -x "$TESTBIN_DIR/etcd" ]; then echo "$TESTBIN_DIR"; exit 0; fi
emod=$WORK/etcd-$ETCD_VERSION
mkdir -p "$emod"
if [ ! -f "$emod/go.sum" ]; then
  printf 'module etcdbuild\n\ngo 1.23.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" > "$emod/go.mod"
  printf '//go:build tools\n\npackage etcdbuild\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$emod/tools.go"
  (cd "$emod" && go mod tidy) >&2
fi
(cd "$emod" && go build -ldflags "-s -w" -o "$TESTBIN_DIR/etcd" go.etcd.io/etcd/server/v3) >&2
echo "$TESTBIN_DIR"
