# Shared by scripts/build-control-plane.sh and scripts/build-node.sh (sourced, not run):
# the cache layout, the build lock, progress output and the Kubernetes wrapper module.
# shellcheck shell=bash

K8S_VERSION="${K8S_VERSION:-v1.36.4}"
CACHE_ROOT="${K8S_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-runner}"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Takes the cache-wide build lock on fd 9 (every build script shares it, so two builds never
# compete for the 2 cores or race on one output) and makes $WORK, removed on exit.
take_build_lock() {
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/build.lock"
  log "waiting for the build lock ($CACHE_ROOT/build.lock)"
  flock 9
}

make_work_dir() {
  WORK=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
  mkdir -p "$WORK/out"
  # shellcheck disable=SC2064
  trap "rm -rf '$WORK'" EXIT
}

# Runs a go build in the background and prints a heartbeat with the number of packages
# compiled so far, so a first build that takes many minutes shows that it is moving.
build_with_progress() {
  local label="$1"; shift
  local started=$SECONDS
  log "building $label ..."
  "$@" >"$WORK/$label.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20
    kill -0 "$pid" 2>/dev/null || break
    local compiled
    compiled=$(grep -c '' "$WORK/$label.log" 2>/dev/null || echo 0)
    log "  $label: $((SECONDS - started))s elapsed, $compiled packages compiled"
  done
  if ! wait "$pid"; then
    log "FAILED building $label; last lines:"
    tail -n 40 "$WORK/$label.log" >&2
    return 1
  fi
  log "built $label in $((SECONDS - started))s"
}

# Creates in directory $1 a module that requires k8s.io/kubernetes $K8S_VERSION with every
# staging module the release replaces by a local path pinned to its published version
# (derived from the release's own go.mod so it never drifts), and sets KUBE_LDFLAGS to the
# version stamps (without them /version reports v0.0.0 and tools misjudge the cluster).
make_kube_wrapper() {
  local mod="$1"
  mkdir -p "$mod"
  (cd "$mod" && go mod init k8s-runner.local/kube-build >/dev/null 2>&1)
  local gomod
  gomod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local staging_version="v0.${K8S_VERSION#v1.}"
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*#replace \1 => \1 '"$staging_version"'#p' "$gomod"
  } >>"$mod/go.mod"
  local ver="${K8S_VERSION#v}" major minor pkg
  major="${ver%%.*}"; minor="${ver#*.}"; minor="${minor%%.*}"
  KUBE_LDFLAGS=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    KUBE_LDFLAGS="$KUBE_LDFLAGS -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$mod" && go mod download k8s.io/kubernetes >/dev/null)
}

# Moves every file of $WORK/out into directory $1 (through a temp name, so a reader never
# sees half a binary).
install_outputs() {
  local dest="$1" f
  mkdir -p "$dest"
  for f in "$WORK"/out/*; do
    [ -e "$f" ] || continue
    mv -f "$f" "$dest/.$(basename "$f").tmp" && mv -f "$dest/.$(basename "$f").tmp" "$dest/$(basename "$f")"
  done
}
