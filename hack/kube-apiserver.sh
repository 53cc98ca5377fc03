#!/usr/bin/env bash
# kube-apiserver.sh start|stop — a local control plane (etcd + kube-apiserver,
# loopback only, no controllers) for dev mode, from the binaries testbin.sh
# builds. `start` prints the path of an admin kubeconfig.
#
#   DEV_CLUSTER_DIR  (${XDG_CACHE_HOME:-~/.cache}/credbroker/dev-cluster)
#   ETCD_PORT (23790)  APISERVER_PORT (16443)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${DEV_CLUSTER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/credbroker/dev-cluster}
etcd_port=${ETCD_PORT:-23790}
api_port=${APISERVER_PORT:-16443}

stop() {
  for p in kube-apiserver etcd; do
    [ -f "$dir/$p.pid" ] || continue
    pid=$(cat "$dir/$p.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$p.pid"
  done
}

start() {
  bin=$("$here/testbin.sh")
  stop
  rm -rf "$dir"; mkdir -p "$dir/etcd" "$dir/certs"
  "$bin/etcd" --name=dev --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$((etcd_port + 10))" \
    --initial-advertise-peer-urls="http://127.0.0.1:$((etcd_port + 10))" \
    --initial-cluster="dev=http://127.0.0.1:$((etcd_port + 10))" \
    --unsafe-no-fsync --log-level=warn > "$dir/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"
  until curl -sf "http://127.0.0.1:$etcd_port/health" > /dev/null; do
    kill -0 "$(cat "$dir/etcd.pid")" 2>/dev/null || { tail -20 "$dir/etcd.log" >&2; exit 1; }
    sleep 0.1
  done

  token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "$token,dev-admin,dev-admin,system:masters" > "$dir/tokens.csv"
  openssl genrsa -out "$dir/certs/sa.key" 2048 2> /dev/null
  openssl rsa -in "$dir/certs/sa.key" -pubout -out "$dir/certs/sa.pub" 2> /dev/null
  "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --cert-dir="$dir/certs" --token-auth-file="$dir/tokens.csv" --authorization-mode=RBAC \
    --service-cluster-ip-range=10.0.0.0/24 --service-account-issuer="https://127.0.0.1:$api_port" \
    --service-account-key-file="$dir/certs/sa.pub" --service-account-signing-key-file="$dir/certs/sa.key" \
    --disable-admission-plugins=ServiceAccount > "$dir/kube-apiserver.log" 2>&1 &
  echo $! > "$dir/kube-apiserver.pid"
  until curl -skf -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz" > /dev/null 2>&1; do
    kill -0 "$(cat "$dir/kube-apiserver.pid")" 2>/dev/null || { tail -20 "$dir/kube-apiserver.log" >&2; exit 1; }
    sleep 0.2
  done
  cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$dir/certs/apiserver.crt"}
users:
- name: dev-admin
  user: {token: "$token"}
contexts:
- name: dev
  context: {cluster: dev, user: dev-admin}
current-context: dev
KC
  chmod 600 "$dir/kubeconfig"
  echo "$dir/kubeconfig"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
