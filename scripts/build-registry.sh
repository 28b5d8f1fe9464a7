#!/usr/bin/env bash
# Builds the test cluster's local OCI registry and the daemonless image tool from pinned Go
# modules into the same cache (and under the same lock) as scripts/build-control-plane.sh:
#   registry   github.com/distribution/distribution/v3/cmd/registry (the CNCF distribution registry)
#   crane      github.com/google/go-containerregistry/cmd/crane (pushes OCI layouts, no daemon)
# Prints REGISTRY_BIN_DIR=...; a second run builds nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/build-common.sh
. "$HERE/lib/build-common.sh"

DISTRIBUTION_VERSION="${DISTRIBUTION_VERSION:-v3.1.2}"
GGCR_VERSION="${GGCR_VERSION:-v0.22.1}"
REGISTRY_BIN_DIR="$CACHE_ROOT/bin/registry-distribution-$DISTRIBUTION_VERSION-ggcr-$GGCR_VERSION"

have_all() { [ -x "$REGISTRY_BIN_DIR/registry" ] && [ -x "$REGISTRY_BIN_DIR/crane" ]; }

module_source() {
  local module="$1" version="$2"
  (cd "$WORK" && mkdir -p "dl-${module##*/}" && cd "dl-${module##*/}" && go mod init k8s-runner.local/dl >/dev/null 2>&1 \
    && go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
}

# Each module's own go.mod and go.sum pin every dependency.
build_registry() {
  local src
  src=$(module_source github.com/distribution/distribution/v3 "$DISTRIBUTION_VERSION")
  build_with_progress registry bash -c "cd '$src' && GOFLAGS=-mod=readonly go build -v -trimpath \
    -ldflags '-s -w -X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_VERSION' \
    -o '$WORK/out/registry' ./cmd/registry"
}

build_crane() {
  local src
  src=$(module_source github.com/google/go-containerregistry "$GGCR_VERSION")
  build_with_progress crane bash -c "cd '$src' && GOFLAGS=-mod=readonly go build -v -trimpath -ldflags '-s -w' \
    -o '$WORK/out/crane' ./cmd/crane"
}

main() {
  if have_all; then echo "REGISTRY_BIN_DIR=$REGISTRY_BIN_DIR"; return 0; fi
  take_build_lock
  if have_all; then echo "REGISTRY_BIN_DIR=$REGISTRY_BIN_DIR"; return 0; fi
  make_work_dir
  [ -x "$REGISTRY_BIN_DIR/registry" ] || build_registry
  [ -x "$REGISTRY_BIN_DIR/crane" ] || build_crane
  install_outputs "$REGISTRY_BIN_DIR"
  have_all || { log "the registry binaries are missing after the build"; return 1; }
  log "registry binaries ready in $REGISTRY_BIN_DIR"
  echo "REGISTRY_BIN_DIR=$REGISTRY_BIN_DIR"
}

main "$@"
