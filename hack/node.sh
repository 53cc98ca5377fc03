#!/usr/bin/env bash
# node.sh start|stop|status|trust-registry HOST:PORT — a single-node
# Kubernetes cluster on this machine, for dev mode and the end-to-end suite:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet
# (v1.36.x, built by testbin.sh), Debian's containerd and runc, a CNI bridge,
# and a plain-HTTP registry on loopback for the node's own images (the
# sandbox image, and whatever a test pushes there).
#
# `start` prints, as NAME=VALUE lines, what a client needs: KUBECONFIG, the
# node's name, the address at which Pods reach this host (NODE_HOST_IP), the
# infra registry. It needs root (a mount namespace, a bridge).
#
# The host stays clean: containerd and the kubelet run in a private mount
# namespace in which /run, /var/log, /var/lib and the sysctls the kubelet and
# the CNI plugin write are files under NODE_DIR; Pods get cgroups under
# /credbroker-node<slot>; stop signals only the PIDs recorded in NODE_DIR, the
# shims of this node's containerd socket and what is left in its cgroups.
#
# Networking without kube-proxy or iptables: the bridge carries the Pods'
# gateway (NODE_HOST_IP, where Pods reach what runs on this host) and the
# first Service IP, on which the API server listens at 443, so that Pods'
# in-cluster configuration (KUBERNETES_SERVICE_HOST) reaches it as is. Other
# ClusterIP Services do not route: reach them with kubectl port-forward.
#
#   NODE_DIR   (${XDG_CACHE_HOME:-~/.cache}/credbroker/node<slot>)  state and logs
#   NODE_SLOT  (0)  0-9: two slots (dev mode and the tests) run side by side
#   NODE_KUBELET_ARGS  further kubelet flags (the credential provider's two)
#   CRANE      (bin/crane)  builds the sandbox image
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
slot=${NODE_SLOT:-0}
[[ $slot =~ ^[0-9]$ ]] || { echo "node.sh: NODE_SLOT must be 0-9" >&2; exit 2; }
dir=${NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/credbroker/node$slot}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd) # nsenter changes the working directory: absolute paths only
bridge=credbroker$slot
host_ip=10.244.$slot.1 pod_cidr=10.244.$slot.0/24
api_ip=10.96.$slot.1 service_cidr=10.96.$slot.0/24
etcd_port=$((23800 + slot * 20)) kubelet_port=$((10350 + slot * 10)) healthz_port=$((10348 + slot * 10))
registry=localhost:$((5100 + slot))
node=localhost # the API server reaches the kubelet by this name (--kubelet-preferred-address-types=Hostname)
cgroup_root=/credbroker-node$slot
# The node's cgroup in every hierarchy: each controller's on cgroup v1 (and
# the unified one of a hybrid host), the one tree on a cgroup v2 host.
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  cgroups=("/sys/fs/cgroup${cgroup_root}")
else
  cgroups=()
  for h in /sys/fs/cgroup/*/; do [ -e "${h}cgroup.procs" ] && cgroups+=("${h%/}${cgroup_root}"); done
fi
pids=$dir/pids logs=$dir/logs
sock=$dir/containerd/containerd.sock
mkdir -p "$pids" "$logs"

log() { echo "node.sh: $*" >&2; }
alive() { [ -f "$pids/$1" ] && kill -0 "$(cat "$pids/$1")" 2>/dev/null; }
ns() { nsenter -t "$(cat "$pids/mntns")" -m -- "$@"; }
kubectl() { "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" "$@"; }
wait_for() { # seconds what process command...
  local end=$(($(date +%s) + $1)) what=$2 proc=$3
  shift 3
  until "$@" > /dev/null 2>&1; do
    if ! alive "$proc"; then log "$proc exited before $what:"; tail -20 "$logs/$proc.log" >&2; return 1; fi
    if [ "$(date +%s)" -ge "$end" ]; then log "no $what after ${1}s:"; tail -20 "$logs/$proc.log" >&2; return 1; fi
    sleep 0.2
  done
}
run() { # name command... — start in the background, record the PID (a
  # command, not a shell function, so that the PID is the program's)
  "${@:2}" > "$logs/$1.log" 2>&1 < /dev/null &
  echo $! > "$pids/$1"
}
stop_pid() {
  local f=$pids/$1 p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p"
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

preflight() {
  local missing=()
  [ "$(id -u)" = 0 ] || missing+=("root (a mount namespace and a network bridge)")
  for c in containerd runc ctr unshare nsenter ip; do command -v "$c" > /dev/null || missing+=("$c"); done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || missing+=("the CNI plugins in /usr/lib/cni")
  if [ ${#missing[@]} -gt 0 ]; then
    log "cannot start a node here, missing: ${missing[*]}"
    log "(apt-get install containerd runc containernetworking-plugins, as root)"
    exit 3
  fi
}

print_env() {
  cat <<ENV
KUBECONFIG=$dir/admin.kubeconfig
NODE_NAME=$node
NODE_HOST_IP=$host_ip
NODE_REGISTRY=$registry
NODE_DIR=$dir
ENV
}

network_up() {
  # The bridge the CNI plugin would create, made first so that the API
  # server can listen on the Service IP before any Pod exists.
  ip link show "$bridge" > /dev/null 2>&1 || ip link add "$bridge" type bridge
  ip addr replace "$host_ip/24" dev "$bridge"
  ip addr replace "$api_ip/32" dev "$bridge"
  ip link set "$bridge" up
  mkdir -p "$dir/cni/net.d"
  cat > "$dir/cni/net.d/10-credbroker.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "$bridge", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": false,
   "ipam": {"type": "host-local", "dataDir": "$dir/cni/ipam", "ranges": [[{"subnet": "$pod_cidr", "gateway": "$host_ip"}]],
           "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
}

registry_up() {
  alive registry && return 0
  mkdir -p "$dir/registry"
  printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s/registry}}\nhttp: {addr: "127.0.0.1:%s", secret: node-local}\n' \
    "$dir" "${registry#localhost:}" > "$dir/registry.yml"
  run registry "$here/../bin/registry" serve "$dir/registry.yml"
  wait_for 20 "registry" registry curl -sf "http://$registry/v2/"
  if ! "$crane" digest "$registry/pause:v1" > /dev/null 2>&1; then
    CRANE=$crane "$here/hello-image.sh" "$registry/pause:v1"
  fi
}

mntns_up() {
  alive mntns && return 0
  mkdir -p "$dir/ns/run" "$dir/ns/log" "$dir/ns/lib-upper" "$dir/ns/lib-work" "$dir/ns/sysctl"
  # The values the kubelet sets (and IP forwarding, which the bridge plugin
  # turns on for a gateway): it finds them set, and the host's stay as they are.
  local sysctls="vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 net/ipv4/ip_forward=1"
  for s in $sysctls; do
    f=${s%%=*}
    echo "${s#*=}" > "$dir/ns/sysctl/${f//\//.}"
  done
  unshare --mount --propagation private -- sleep infinity < /dev/null > /dev/null 2>&1 &
  echo $! > "$pids/mntns"
  sleep 0.2
  ns sh -euc "
    mount -n --bind '$dir/ns/run' /run
    mount -n --bind '$dir/ns/log' /var/log
    mount -n -t overlay overlay -o lowerdir=/var/lib,upperdir='$dir/ns/lib-upper',workdir='$dir/ns/lib-work' /var/lib
    for s in $sysctls; do f=\${s%%=*}; mount -n --bind '$dir/ns/sysctl/'\$(echo \$f | tr / .) /proc/sys/\$f; done"
}

containerd_up() {
  alive containerd && return 0
  mkdir -p "$dir/containerd" "$dir/certs.d"
  cat > "$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$registry/pause:v1"
  disable_apparmor = true
  # No CAP_SYS_RESOURCE on these machines: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
EOF
  run containerd nsenter -t "$(cat "$pids/mntns")" -m -- containerd --config "$dir/containerd/config.toml"
  wait_for 30 "containerd" containerd ctr -a "$sock" version
}

control_plane_up() {
  alive kube-apiserver && return 0
  rm -rf "$dir/etcd"
  mkdir -p "$dir/certs"
  run etcd "$bin/etcd" --name=node --data-dir="$dir/etcd" --unsafe-no-fsync --log-level=warn \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$((etcd_port + 10))" --initial-advertise-peer-urls="http://127.0.0.1:$((etcd_port + 10))" \
    --initial-cluster="node=http://127.0.0.1:$((etcd_port + 10))"
  wait_for 30 "etcd" etcd curl -sf "http://127.0.0.1:$etcd_port/health"
  if [ ! -f "$dir/certs/sa.key" ]; then
    openssl genrsa -out "$dir/certs/sa.key" 2048 2> /dev/null
    openssl rsa -in "$dir/certs/sa.key" -pubout -out "$dir/certs/sa.pub" 2> /dev/null
  fi
  local admin kubelet
  admin=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  kubelet=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s,admin,admin,system:masters\n%s,system:node:%s,node,system:nodes\n' "$admin" "$kubelet" "$node" > "$dir/tokens.csv"
  run kube-apiserver "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address="$api_ip" --advertise-address="$api_ip" --secure-port=443 \
    --service-cluster-ip-range="$service_cidr" --cert-dir="$dir/certs" --token-auth-file="$dir/tokens.csv" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/certs/sa.pub" --service-account-signing-key-file="$dir/certs/sa.key" \
    --kubelet-preferred-address-types=Hostname
  wait_for 90 "kube-apiserver" kube-apiserver curl -sf --cacert "$dir/certs/apiserver.crt" \
    -H "Authorization: Bearer $admin" "https://$api_ip/readyz"
  for who in admin:"$admin" node:"$kubelet"; do
    cat > "$dir/${who%%:*}.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: node$slot
  cluster: {server: "https://$api_ip:443", certificate-authority: "$dir/certs/apiserver.crt"}
users:
- name: ${who%%:*}
  user: {token: "${who#*:}"}
contexts:
- name: node$slot
  context: {cluster: node$slot, user: ${who%%:*}}
current-context: node$slot
EOF
    chmod 600 "$dir/${who%%:*}.kubeconfig"
  done
  # Controllers, so that namespaces finish deleting, ServiceAccounts get
  # made and Deployments get ReplicaSets; no leader election: one of each.
  run kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$dir/admin.kubeconfig" \
    --leader-elect=false --secure-port=0 --service-account-private-key-file="$dir/certs/sa.key" \
    --root-ca-file="$dir/certs/apiserver.crt" --use-service-account-credentials=false
  run kube-scheduler "$bin/kube-scheduler" --kubeconfig="$dir/admin.kubeconfig" --leader-elect=false --secure-port=0
}

kubelet_up() {
  alive kubelet && return 0
  mkdir -p "$dir/kubelet"
  echo "nameserver 127.0.0.1" > "$dir/kubelet/resolv.conf"
  cat > "$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
containerRuntimeEndpoint: unix://$sock
cgroupDriver: cgroupfs
cgroupRoot: $cgroup_root
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
resolvConf: $dir/kubelet/resolv.conf
podLogsDir: $dir/kubelet/pod-logs
volumePluginDir: $dir/kubelet/volume-plugins
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
serializeImagePulls: false
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
  mkdir -p "${cgroups[@]}" # the kubelet refuses a missing cgroup root
  local extra
  read -ra extra <<<"${NODE_KUBELET_ARGS:-}"
  run kubelet nsenter -t "$(cat "$pids/mntns")" -m -- "$bin/kubelet" --config="$dir/kubelet/config.yaml" --kubeconfig="$dir/node.kubeconfig" \
    --root-dir="$dir/kubelet/root" --cert-dir="$dir/kubelet/pki" --hostname-override="$node" --v=1 "${extra[@]}"
  wait_for 120 "a Ready node" kubelet sh -c \
    "'$bin/kubectl' --kubeconfig '$dir/admin.kubeconfig' get node '$node' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
}

start() {
  preflight
  bin=$("$here/testbin.sh")
  crane=${CRANE:-$here/../bin/crane}
  [ -x "$here/../bin/registry" ] || (cd "$here/.." && make -s registry >&2)
  [ -x "$crane" ] || (cd "$here/.." && make -s crane >&2)
  local t0=$SECONDS
  network_up
  registry_up
  mntns_up
  containerd_up
  control_plane_up
  kubelet_up
  # The default ServiceAccount of the default namespace shows that the
  # controllers are up.
  wait_for 60 "the controllers" kube-controller-manager kubectl -n default get serviceaccount default
  log "node up in $((SECONDS - t0))s ($dir)"
  print_env
}

stop() {
  stop_pid kubelet # first, or it starts again what is stopped below
  if alive containerd; then
    # Pods through the runtime, so that their shims exit on their own.
    local ids
    ids=$(ctr -a "$sock" -n k8s.io tasks ls -q 2> /dev/null || true)
    for id in $ids; do ctr -a "$sock" -n k8s.io tasks kill -s SIGKILL "$id" > /dev/null 2>&1 || true; done
    for id in $ids; do
      for _ in $(seq 20); do ctr -a "$sock" -n k8s.io tasks delete "$id" > /dev/null 2>&1 && break; sleep 0.1; done
    done
  fi
  for p in kube-scheduler kube-controller-manager kube-apiserver etcd containerd registry; do stop_pid "$p"; done
  # A shim left over was started by this node's containerd: its command
  # line names this node's socket.
  pkill -KILL -f -- "-address $sock" 2> /dev/null || true
  stop_pid mntns # the namespace's mounts go with its last process
  # A container process still alive has lost its shim; the cgroup subtree
  # is this node's alone, so whatever is left in it was started by it.
  find "${cgroups[@]}" -name cgroup.procs -exec cat {} + 2> /dev/null | sort -u |
    while read -r p; do kill -KILL "$p" 2> /dev/null || true; done
  sleep 0.2
  find "${cgroups[@]}" -depth -type d -exec rmdir {} \; 2> /dev/null || true
  ip link show "$bridge" > /dev/null 2>&1 && ip link del "$bridge"
  rm -rf "$dir/cni/ipam"
}

status() {
  for p in registry mntns containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet; do
    printf '%-24s %s\n' "$p" "$(alive "$p" && echo "running ($(cat "$pids/$p"))" || echo stopped)"
  done
}

# trust-registry HOST:PORT — containerd pulls from HOST:PORT over plain HTTP
# (it does so by itself only for localhost).
trust_registry() {
  local host=${1:?usage: node.sh trust-registry HOST:PORT}
  mkdir -p "$dir/certs.d/$host"
  printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$host" "$host" > "$dir/certs.d/$host/hosts.toml"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  trust-registry) trust_registry "${2:-}" ;;
  *) echo "usage: $0 start|stop|status|env|trust-registry HOST:PORT" >&2; exit 2 ;;
esac
