#!/usr/bin/env bash
# Builds the real worker node of the test cluster from pinned Go modules into the same
# cache (and under the same lock) as scripts/build-control-plane.sh:
#   kubelet, kube-proxy  k8s.io/kubernetes/cmd/{kubelet,kube-proxy} through the control plane's wrapper module
#   containerd, ctr, containerd-shim-runc-v2   github.com/containerd/containerd/v2
#   bridge, host-local, loopback               github.com/containernetworking/plugins
#   pause, netns-forward                       scripts/test-cluster.d/node-tools (keyed by content)
# runc and iptables come from Debian (apt-get install runc iptables) when they are not on PATH.
# Prints NODE_BIN_DIR=... and NODE_TOOLS_DIR=...; a second run builds nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/build-common.sh
. "$HERE/lib/build-common.sh"

CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
CNI_PLUGINS_VERSION="${CNI_PLUGINS_VERSION:-v1.10.0}"
NODE_BIN_DIR="$CACHE_ROOT/bin/node-k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION-cni-$CNI_PLUGINS_VERSION"
TOOLS_SRC="$HERE/test-cluster.d/node-tools"
TOOLS_HASH=$(cd "$TOOLS_SRC" && find . -type f -name '*.go' -o -name go.mod | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
NODE_TOOLS_DIR="$CACHE_ROOT/bin/node-tools-$TOOLS_HASH"
NODE_BINARIES=(kubelet kube-proxy containerd ctr containerd-shim-runc-v2 cni/bridge cni/host-local cni/loopback)

have_node() {
  local b
  for b in "${NODE_BINARIES[@]}"; do [ -x "$NODE_BIN_DIR/$b" ] || return 1; done
}
have_tools() { [ -x "$NODE_TOOLS_DIR/pause" ] && [ -x "$NODE_TOOLS_DIR/netns-forward" ]; }

ensure_runc() {
  command -v runc >/dev/null && return 0
  log "runc is missing; installing the Debian package"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc; } >&2 \
    || { log "could not install runc (apt-get install runc)"; return 1; }
}

module_source() {
  local module="$1" version="$2"
  (cd "$WORK" && mkdir -p "dl-${module##*/}" && cd "dl-${module##*/}" && go mod init k8s-runner.local/dl >/dev/null 2>&1 \
    && go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
}

build_kube_binary() {
  local name="$1" mod="$WORK/kubernetes"
  [ -f "$mod/go.mod" ] || make_kube_wrapper "$mod"
  build_with_progress "$name" bash -c "cd '$mod' && go build -v -trimpath -ldflags '-s -w $KUBE_LDFLAGS' -o '$WORK/out/$name' k8s.io/kubernetes/cmd/$name"
}

# The module's own go.mod and go.sum pin every dependency; the source in the module cache
# is read-only, so the build writes only its outputs.
build_containerd() {
  local src pkg="github.com/containerd/containerd/v2"
  src=$(module_source "$pkg" "$CONTAINERD_VERSION")
  local ld="-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Package=$pkg"
  build_with_progress containerd bash -c "cd '$src' && GOFLAGS=-mod=readonly go build -v -trimpath \
    -tags 'no_btrfs no_devmapper no_zfs' -ldflags '$ld' -o '$WORK/out/' ./cmd/containerd ./cmd/ctr"
  build_with_progress containerd-shim bash -c "cd '$src' && GOFLAGS=-mod=readonly go build -v -trimpath \
    -tags 'no_btrfs no_devmapper no_zfs no_grpc' -ldflags '$ld' -o '$WORK/out/' ./cmd/containerd-shim-runc-v2"
}

build_cni() {
  local src
  src=$(module_source github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION")
  mkdir -p "$WORK/out/cni"
  build_with_progress cni-plugins bash -c "cd '$src' && GOFLAGS=-mod=readonly go build -v -trimpath \
    -ldflags '-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION' \
    -o '$WORK/out/cni/' ./plugins/main/bridge ./plugins/main/loopback ./plugins/ipam/host-local"
}

build_tools() {
  build_with_progress node-tools bash -c "cd '$TOOLS_SRC' && go build -v -trimpath -ldflags '-s -w' -o '$WORK/tools/' ./pause ./netns-forward"
}

print_dirs() { printf 'NODE_BIN_DIR=%s\nNODE_TOOLS_DIR=%s\n' "$NODE_BIN_DIR" "$NODE_TOOLS_DIR"; }

# kube-proxy programs the cluster namespace's iptables through the iptables command.
ensure_iptables() {
  command -v iptables >/dev/null && return 0
  log "iptables is missing; installing the Debian package"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables; } >&2 \
    || { log "could not install iptables (apt-get install iptables)"; return 1; }
}

main() {
  ensure_runc
  ensure_iptables
  if have_node && have_tools; then print_dirs; return 0; fi
  take_build_lock
  if have_node && have_tools; then print_dirs; return 0; fi
  make_work_dir
  mkdir -p "$WORK/tools"
  if ! have_node; then
    log "first build of the real node into $NODE_BIN_DIR (minutes on 2 cores; later runs reuse it)"
    [ -x "$NODE_BIN_DIR/kubelet" ] || build_kube_binary kubelet
    [ -x "$NODE_BIN_DIR/kube-proxy" ] || build_kube_binary kube-proxy
    [ -x "$NODE_BIN_DIR/containerd" ] && [ -x "$NODE_BIN_DIR/ctr" ] && [ -x "$NODE_BIN_DIR/containerd-shim-runc-v2" ] || build_containerd
    [ -x "$NODE_BIN_DIR/cni/bridge" ] && [ -x "$NODE_BIN_DIR/cni/host-local" ] && [ -x "$NODE_BIN_DIR/cni/loopback" ] || build_cni
    mkdir -p "$NODE_BIN_DIR/cni"
    local f
    for f in "$WORK"/out/cni/*; do
      [ -e "$f" ] || continue
      mv -f "$f" "$NODE_BIN_DIR/cni/.$(basename "$f").tmp" && mv -f "$NODE_BIN_DIR/cni/.$(basename "$f").tmp" "$NODE_BIN_DIR/cni/$(basename "$f")"
    done
    rmdir "$WORK/out/cni" 2>/dev/null || true
    install_outputs "$NODE_BIN_DIR"
  fi
  if ! have_tools; then
    build_tools
    WORK_OUT="$WORK/out"; rm -rf "$WORK_OUT"; mv "$WORK/tools" "$WORK_OUT"
    install_outputs "$NODE_TOOLS_DIR"
  fi
  have_node && have_tools || { log "some node binaries are missing after the build"; ls -lR "$NODE_BIN_DIR" "$NODE_TOOLS_DIR" >&2; return 1; }
  log "node binaries ready in $NODE_BIN_DIR and $NODE_TOOLS_DIR"
  print_dirs
}

main "$@"
