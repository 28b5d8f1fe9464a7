#!/usr/bin/env bash
# Builds the pinned control-plane binaries from their Go modules into a cache keyed by
# version. A second run finds every binary and builds nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/build-common.sh
. "$HERE/lib/build-common.sh"

ETCD_VERSION="${ETCD_VERSION:-v3.6.14}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
KWOK_PATCH_LEVEL=p2
BIN_DIR="$CACHE_ROOT/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-$KWOK_PATCH_LEVEL-helm-$HELM_VERSION"

have_all() {
  local b
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm; do
    [ -x "$BIN_DIR/$b" ] || return 1
  done
}

build_kubernetes() {
  local mod="$WORK/kubernetes"
  make_kube_wrapper "$mod"
  build_with_progress kubernetes bash -c "cd '$mod' && go build -v -trimpath -ldflags '-s -w $KUBE_LDFLAGS' -o '$WORK/out/' \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl"
}

build_etcd() {
  local mod="$WORK/etcd"
  mkdir -p "$mod"
  (cd "$mod" && go mod init k8s-runner.local/etcd-build >/dev/null 2>&1 && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1)
  build_with_progress etcd bash -c "cd '$mod' && go build -v -trimpath -ldflags '-s -w' -o '$WORK/out/etcd' go.etcd.io/etcd/server/v3"
}

# kwok's local exec copies stdin into the process but never closes the pipe, so a remote
# process never reads EOF (`echo x | kubectl exec -i ... cat` hangs). And with a tty it
# closes the terminal as soon as the command exits, dropping output the copy to the stream
# has not read yet (a short `kubectl exec -t` sometimes prints nothing). We build kwok from
# its module source with both fixed (close the stdin pipe after the copy; drain the
# terminal before returning: kwok-patches/); the patch level is part of the cache key
# (KWOK_PATCH_LEVEL above).
build_kwok() {
  local src="$WORK/kwok-src"
  (cd "$WORK" && mkdir -p dl && cd dl && go mod init k8s-runner.local/kwok-dl >/dev/null 2>&1 && \
    go mod download "sigs.k8s.io/kwok@$KWOK_VERSION")
  cp -r "$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION" "$src"
  chmod -R u+w "$src"
  local target="$src/pkg/utils/exec/exec.go"
  grep -q '_, _ = io.Copy(inPipe, opt.In)' "$target" || { log "kwok source changed; stdin patch does not apply"; return 1; }
  sed -i 's#_, _ = io.Copy(inPipe, opt.In)#_, _ = io.Copy(inPipe, opt.In)\n\t\t\t\t_ = inPipe.Close()#' "$target"
  (cd "$src" && git apply "$HERE/kwok-patches/tty-output-drain.patch") || { log "kwok source changed; tty patch does not apply"; return 1; }
  build_with_progress kwok bash -c "cd '$src' && go build -v -trimpath -ldflags '-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION' -o '$WORK/out/kwok' ./cmd/kwok"
}

build_helm() {
  local ver="${HELM_VERSION#v}"
  build_with_progress helm bash -c "GOBIN='$WORK/out' go install -v -trimpath -ldflags '-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean' helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

# A new kwok patch level changes the cache key; the other binaries, whose versions did not
# change, are taken from an earlier build instead of being compiled again.
reuse_unchanged() {
  local dir b
  for dir in "$CACHE_ROOT/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-"*"-helm-$HELM_VERSION"; do
    [ -d "$dir" ] && [ "$dir" != "$BIN_DIR" ] || continue
    for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm; do
      [ -x "$WORK/out/$b" ] || [ ! -x "$dir/$b" ] || cp "$dir/$b" "$WORK/out/$b"
    done
  done
}

main() {
  if have_all; then
    echo "$BIN_DIR"
    return 0
  fi
  take_build_lock
  if have_all; then echo "$BIN_DIR"; return 0; fi
  make_work_dir
  log "first build of the control plane into $BIN_DIR (this takes many minutes on 2 cores; later runs reuse it)"
  reuse_unchanged
  [ -x "$BIN_DIR/etcd" ] || [ -x "$WORK/out/etcd" ] || build_etcd
  [ -x "$BIN_DIR/kwok" ] || build_kwok
  local k8s_dir="$BIN_DIR"
  [ -x "$WORK/out/kube-apiserver" ] && k8s_dir="$WORK/out"
  [ -x "$k8s_dir/kube-apiserver" ] && [ -x "$k8s_dir/kubectl" ] && [ -x "$k8s_dir/kube-controller-manager" ] && [ -x "$k8s_dir/kube-scheduler" ] || build_kubernetes
  [ -x "$BIN_DIR/helm" ] || [ -x "$WORK/out/helm" ] || build_helm
  install_outputs "$BIN_DIR"
  have_all || { log "some binaries are missing after the build"; ls -l "$BIN_DIR" >&2; return 1; }
  log "all binaries ready in $BIN_DIR"
  echo "$BIN_DIR"
}

main "$@"
