#!/usr/bin/env bash
# Test tools beyond the control plane: the kstatus CLI (test/support/kstatus, built against
# the pinned sigs.k8s.io/cli-utils from the Go module proxy, cached by version like the
# control-plane binaries) and Debian's lua5.1 for the Argo CD health scripts (installed with
# apt-get when missing). Prints the directory holding `kstatus`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLI_UTILS_VERSION="${CLI_UTILS_VERSION:-v0.37.2}"
CACHE_ROOT="${K8S_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-runner}"
SRC_HASH=$(sha256sum "$ROOT/test/support/kstatus/main.go" | cut -c1-12)
BIN_DIR="$CACHE_ROOT/bin/kstatus-cli-utils-$CLI_UTILS_VERSION-$SRC_HASH"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[test-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

ensure_lua() {
  command -v lua5.1 >/dev/null && return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || {
    log "lua5.1 is missing: apt-get install lua5.1"
    return 1
  }
  log "installing lua5.1 (Debian) for the Argo CD health scripts"
  apt-get install -y -qq lua5.1 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq lua5.1 >/dev/null; }
}

build_kstatus() {
  [ -x "$BIN_DIR/kstatus" ] && return 0
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/build-test-tools.lock"
  flock 9
  [ -x "$BIN_DIR/kstatus" ] && return 0
  WORK=$(mktemp -d "$CACHE_ROOT/build-kstatus.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  log "building kstatus against sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION"
  cp "$ROOT/test/support/kstatus/main.go" "$WORK/"
  if ! (cd "$WORK" && go mod init k8s-runner.local/kstatus &&
    go get "sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION" && go mod tidy &&
    go build -trimpath -ldflags '-s -w' -o "$WORK/kstatus" .) >"$WORK/build.log" 2>&1; then
    log "FAILED building kstatus; last lines:"
    tail -n 30 "$WORK/build.log" >&2
    return 1
  fi
  mkdir -p "$BIN_DIR"
  mv -f "$WORK/kstatus" "$BIN_DIR/.kstatus.tmp" && mv -f "$BIN_DIR/.kstatus.tmp" "$BIN_DIR/kstatus"
  log "built $BIN_DIR/kstatus"
}

ensure_lua
build_kstatus
echo "$BIN_DIR"
