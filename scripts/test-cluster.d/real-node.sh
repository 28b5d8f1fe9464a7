# The test cluster's real worker node (sourced by scripts/test-cluster, not run): a network
# namespace of the cluster's own, containerd + runc + the CNI bridge plugin, and a kubelet.
# Every non-loopback address (node IP, bridges, Pod IPs) exists only inside that namespace;
# the control plane runs in it too (on the namespace's 127.0.0.1), and netns-forward makes
# the API server and etcd ports reachable on the machine's 127.0.0.1.
# containerd and the kubelet join only the network namespace (nsenter --net): `ip netns
# exec` would also give them a private mount namespace with /sys remounted, hiding
# /sys/fs/cgroup. Host cgroup hierarchies are never remounted or changed: the node gets a
# cgroup of its own (CGROUP_ROOT) in each v1 hierarchy, removed again by `down`.
# shellcheck shell=bash

REAL_NODE_NAME=real-node-0
REAL_NODE_IP=10.250.0.1
REAL_NODE_POD_SUBNET=10.251.0.0/24
REAL_NODE_LABEL=agyn.io/real-node
REAL_NODE_HOST_LOCK=/run/k8s-runner-real-node.lock
REAL_NODE_HOST_REG=/run/k8s-runner-real-node
# Paths containerd and the kubelet use outside their own directories.
REAL_NODE_HOST_PATHS=(/run/containerd/s /var/lib/cni/results /var/log/containers /var/lib/kubelet/device-plugins)
REAL_NODE_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)

real_node_enabled() { [ "${K8S_RUNNER_REAL_NODE:-1}" = 1 ]; }

# Per-cluster names derived from the state dir, so two clusters on one machine never share them.
real_node_names() {
  local id
  id=$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-10)
  NETNS="k8s-runner-$id"
  NETNS_FILE="/run/netns/$NETNS"
  CGROUP_ROOT="/k8s-runner-$id"
  DAEMON_CGROUP="/sys/fs/cgroup/pids/k8s-runner-$id-daemons"
  NODE_DIR="$STATE_DIR/node"
}

cgroup_v1_dirs() {
  local m
  for m in /sys/fs/cgroup/*; do
    [ -d "$m" ] && [ "$(stat -f -c %T "$m")" = cgroupfs ] && echo "$m"
  done
  return 0
}

# The v1 hierarchies and, on a hybrid host, the unified (v2) one, where runc and the
# kubelet create the node's cgroups too.
cgroup_all_dirs() {
  local m t
  for m in /sys/fs/cgroup/*; do
    [ -d "$m" ] || continue
    t="$(stat -f -c %T "$m")"
    [ "$t" = cgroupfs ] || [ "$t" = cgroup2fs ] && echo "$m"
  done
  return 0
}

netns_up() {
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  # The kubelet refuses a loopback node IP and this kernel has no dummy driver: an empty
  # bridge carries the node IP.
  ip -n "$NETNS" link add k8srnode0 type bridge
  ip -n "$NETNS" addr add "$REAL_NODE_IP/32" dev k8srnode0
  ip -n "$NETNS" link set k8srnode0 up
}

# Host-wide state shared by every real node on this machine (kernel tunables the kubelet
# sets, directories outside the state dir), guarded by a lock; the first cluster saves the
# originals, the last one to go down restores them.
host_claim() {
  exec 8>"$REAL_NODE_HOST_LOCK"
  flock 8
  mkdir -p "$REAL_NODE_HOST_REG/clusters"
  if [ -z "$(ls -A "$REAL_NODE_HOST_REG/clusters")" ]; then
    : >"$REAL_NODE_HOST_REG/sysctl.orig"
    local k p
    for k in "${REAL_NODE_SYSCTLS[@]}"; do echo "$k=$(sysctl -n "$k")" >>"$REAL_NODE_HOST_REG/sysctl.orig"; done
    : >"$REAL_NODE_HOST_REG/created-paths"
    for p in "${REAL_NODE_HOST_PATHS[@]}"; do
      if [ ! -e "$p" ]; then
        # Record the topmost missing ancestor, so down removes everything mkdir -p made.
        local top="$p"
        while [ ! -e "$(dirname "$top")" ]; do top="$(dirname "$top")"; done
        echo "$top" >>"$REAL_NODE_HOST_REG/created-paths"
        mkdir -p "$p"
      fi
    done
  fi
  echo "$STATE_DIR" >"$REAL_NODE_HOST_REG/clusters/$NETNS"
  flock -u 8
}

host_release() {
  [ -d "$REAL_NODE_HOST_REG/clusters" ] || return 0
  exec 8>"$REAL_NODE_HOST_LOCK"
  flock 8
  rm -f "$REAL_NODE_HOST_REG/clusters/$NETNS"
  local entry
  for entry in "$REAL_NODE_HOST_REG"/clusters/*; do
    [ -e "$entry" ] || continue
    # A cluster whose state dir is gone never ran `down`: its claim is stale.
    [ -d "$(cat "$entry")" ] || rm -f "$entry"
  done
  if [ -z "$(ls -A "$REAL_NODE_HOST_REG/clusters")" ]; then
    local line p
    while IFS= read -r line; do [ -n "$line" ] && sysctl -qw "$line"; done <"$REAL_NODE_HOST_REG/sysctl.orig"
    while IFS= read -r p; do [ -n "$p" ] && rm -rf "$p"; done < <(sort -r "$REAL_NODE_HOST_REG/created-paths")
    rm -rf "$REAL_NODE_HOST_REG"
  fi
  flock -u 8
}

cgroups_up() {
  local h
  for h in $(cgroup_v1_dirs); do
    mkdir -p "$h$CGROUP_ROOT"
    if [ -f "$h/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" >"$h$CGROUP_ROOT/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h$CGROUP_ROOT/cpuset.mems"
    fi
  done
  mkdir -p "$DAEMON_CGROUP"
}

# Every process in cgroup directory $1 and below (runc removes the cgroups of exiting
# containers meanwhile, so find may report vanished directories: not an error here).
cgroup_pids() { find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null || true; }

kill_cgroup_tree() {
  local dir="$1" sig i pids
  [ -d "$dir" ] || return 0
  for sig in TERM KILL; do
    pids=$(cgroup_pids "$dir")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -"$sig" $pids 2>/dev/null || true
    for i in $(seq 1 50); do [ -z "$(cgroup_pids "$dir")" ] && return 0; sleep 0.1; done
  done
  [ -z "$(cgroup_pids "$dir")" ] || log "WARNING: processes left in $dir: $(cgroup_pids "$dir" | tr '\n' ' ')"
}

remove_cgroup_tree() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  [ ! -d "$dir" ] || log "WARNING: could not remove cgroup $dir"
}

unmount_under() {
  local dir="$1" m
  # Deepest first; lazily if a mount is still busy.
  for m in $(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "WARNING: could not unmount $m"
  done
}

# Stops everything the real node started, in an order that lets nothing respawn: the
# kubelet, then every container (the processes in the node's cgroups), then containerd
# and its shims (the daemons' cgroup); then unmounts what they left under the state dir
# and removes the node's cgroups.
real_node_stop() {
  stop_pid kube-proxy
  stop_pid kubelet
  local h
  for h in $(cgroup_all_dirs); do kill_cgroup_tree "$h$CGROUP_ROOT"; done
  kill_cgroup_tree "$DAEMON_CGROUP"
  stop_pid containerd
  unmount_under "$STATE_DIR"
  for h in $(cgroup_all_dirs); do remove_cgroup_tree "$h$CGROUP_ROOT"; done
  remove_cgroup_tree "$DAEMON_CGROUP"
}

# After the control plane has stopped: the namespace and this cluster's claim on host state.
real_node_release() {
  if [ -e "$NETNS_FILE" ]; then ip netns del "$NETNS" 2>/dev/null || log "WARNING: could not delete netns $NETNS"; fi
  host_release
}

real_node_pki() {
  local d="$STATE_DIR/pki"
  sign kubelet-client "/O=system:nodes/CN=system:node:$REAL_NODE_NAME" "extendedKeyUsage=clientAuth"
  sign kubelet-serving "/O=system:nodes/CN=system:node:$REAL_NODE_NAME" "subjectAltName=IP:$REAL_NODE_IP,DNS:$REAL_NODE_NAME
extendedKeyUsage=serverAuth"
  cat >"$NODE_DIR/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: test-cluster
  cluster: { server: "https://127.0.0.1:$API_PORT", certificate-authority: $d/ca.crt }
users:
- name: kubelet
  user: { client-certificate: $d/kubelet-client.crt, client-key: $d/kubelet-client.key }
contexts:
- name: kubelet
  context: { cluster: test-cluster, user: kubelet }
current-context: kubelet
KC
}

render_node_configs() {
  local tmpl
  mkdir -p "$NODE_DIR"/{cni/net.d,cni/bin,certs.d/_default,kubelet,pod-logs,volume-plugins,volumes,containerd}
  for tmpl in containerd.toml kubelet.yaml cni.conflist hosts.toml; do
    sed -e "s#@NODE_DIR@#$NODE_DIR#g" -e "s#@CGROUP_ROOT@#$CGROUP_ROOT#g" -e "s#@NODE_IP@#$REAL_NODE_IP#g" \
      -e "s#@POD_SUBNET@#$REAL_NODE_POD_SUBNET#g" -e "s#@PKI@#$STATE_DIR/pki#g" -e "s#@RUNC@#$(command -v runc)#g" \
      -e "s#@PAUSE_IMAGE@#$PAUSE_IMAGE#g" "$HERE/test-cluster.d/real-node/$tmpl" >"$NODE_DIR/$tmpl"
  done
  mv "$NODE_DIR/cni.conflist" "$NODE_DIR/cni/net.d/10-k8s-runner.conflist"
  mv "$NODE_DIR/hosts.toml" "$NODE_DIR/certs.d/_default/hosts.toml"
  # The cluster's own registry: TLS on the namespace's loopback with a certificate of the
  # cluster CA (scripts/test-cluster), trusted here and nowhere else.
  mkdir -p "$NODE_DIR/certs.d/127.0.0.1:$REGISTRY_PORT"
  printf 'server = "https://127.0.0.1:%s"\n\n[host."https://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n' \
    "$REGISTRY_PORT" "$REGISTRY_PORT" "$STATE_DIR/pki/ca.crt" >"$NODE_DIR/certs.d/127.0.0.1:$REGISTRY_PORT/hosts.toml"
  echo 'nameserver 127.0.0.1' >"$NODE_DIR/resolv.conf"
  cp "$NODE_BIN_DIR"/cni/* "$NODE_DIR/cni/bin/"
}

# Starts a process in the daemons' cgroup (so down finds it and every child, such as the
# containerd shims) and in the cluster's network namespace only.
start_node_daemon() {
  local name="$1"; shift
  setsid bash -c 'echo $$ >"$0/cgroup.procs" && exec nsenter --net="$1" "${@:2}"' "$DAEMON_CGROUP" "$NETNS_FILE" "$@" \
    >>"$STATE_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/$name.pid"
}

# Brings up the namespace, cgroups and host state before the control plane starts in it.
real_node_prepare() {
  real_node_names
  [ ! -e "$NETNS_FILE" ] || die "network namespace $NETNS already exists (a cluster in $STATE_DIR is running or was not stopped: scripts/test-cluster down)"
  command -v nsenter >/dev/null && command -v ip >/dev/null || die "the real node needs nsenter (util-linux) and ip (iproute2)"
  [ -n "$(cgroup_v1_dirs)" ] && [ -d /sys/fs/cgroup/pids ] \
    || die "the real node expects cgroup v1 hierarchies (pids among them) under /sys/fs/cgroup; K8S_RUNNER_REAL_NODE=0 leaves it out"
  local out
  out="$(bash "$HERE/build-node.sh")" || die "building the real node failed"
  eval "$out"
  printf 'NODE_BIN_DIR=%s\nNODE_TOOLS_DIR=%s\nNETNS_FILE=%s\n' "$NODE_BIN_DIR" "$NODE_TOOLS_DIR" "$NETNS_FILE" >>"$STATE_DIR/ports.env"
  host_claim
  netns_up
  cgroups_up
}

real_node_start() {
  PAUSE_IMAGE=k8s-runner.local/pause:1
  render_node_configs
  real_node_pki
  log "starting containerd and the kubelet of $REAL_NODE_NAME ($REAL_NODE_IP in netns $NETNS)"
  start_node_daemon containerd env PATH="$NODE_BIN_DIR:$PATH" "$NODE_BIN_DIR/containerd" --config "$NODE_DIR/containerd.toml"
  wait_for "containerd" 60 containerd "$NODE_BIN_DIR/ctr" --address "$NODE_DIR/containerd/containerd.sock" version
  local images
  images="$(bash "$HERE/test-cluster.d/real-node/build-images.sh" "$NODE_TOOLS_DIR")" || die "building the node images failed"
  local tarball
  for tarball in $images; do
    "$NODE_BIN_DIR/ctr" --address "$NODE_DIR/containerd/containerd.sock" -n k8s.io images import "$tarball" \
      >>"$STATE_DIR/logs/ctr.log" 2>&1 || { tail -n 20 "$STATE_DIR/logs/ctr.log" >&2; die "ctr images import $tarball failed"; }
  done
  start_node_daemon kubelet "$NODE_BIN_DIR/kubelet" --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$NODE_DIR/kubeconfig" \
    --root-dir "$NODE_DIR/kubelet" --cert-dir "$NODE_DIR/kubelet/pki" --hostname-override "$REAL_NODE_NAME" \
    --node-ip "$REAL_NODE_IP" --node-labels "$REAL_NODE_LABEL=true,type=real" \
    --register-with-taints "$REAL_NODE_LABEL=true:NoSchedule" --v 1
  local proxy_health
  proxy_health=$(free_port)
  # kube-proxy (iptables mode) writes its rules in the cluster's namespace only; no
  # conntrack table sizing (a host-wide setting).
  start_node_daemon kube-proxy "$NODE_BIN_DIR/kube-proxy" --kubeconfig "$STATE_DIR/kubeconfig" \
    --hostname-override "$REAL_NODE_NAME" --proxy-mode iptables --nodeport-addresses primary --cluster-cidr "$REAL_NODE_POD_SUBNET" \
    --conntrack-max-per-core 0 \
    --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 --healthz-bind-address "127.0.0.1:$proxy_health" --metrics-bind-address "127.0.0.1:$(free_port)" --v 1
  wait_for "node $REAL_NODE_NAME Ready" 90 kubelet "$BIN_DIR_CP/kubectl" --kubeconfig "$STATE_DIR/kubeconfig" \
    wait --for=condition=Ready "node/$REAL_NODE_NAME" --timeout=2s
  wait_for "kube-proxy" 60 kube-proxy nsenter --net="$NETNS_FILE" curl -sf "http://127.0.0.1:$proxy_health/healthz"
}
