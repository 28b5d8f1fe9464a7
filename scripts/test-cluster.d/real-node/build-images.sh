#!/usr/bin/env bash
# Builds the real node's container images without a registry, as OCI image tarballs that
# `ctr images import` accepts, cached under the build cache (keyed by content):
#   k8s-runner.local/pause:1    the sandbox image: the static pause binary of node-tools
#   k8s-runner.local/busybox:1  Debian's busybox-static with a symlink per applet
#   k8s-runner.local/busybox-nonroot:1  the same, running as nobody (65534), for Runners
#                               that keep workloads non-root (the chart's default)
#   k8s-runner.local/bad-user:1 the same, whose config names a user its /etc/passwd lacks
#                               (containerd cannot create its containers: CreateContainerError)
# Usage: build-images.sh NODE_TOOLS_DIR; prints the tarball paths, one a line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS_DIR="$1"
CACHE_ROOT="${K8S_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-runner}"

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

ensure_busybox() {
  dpkg -s busybox-static >/dev/null 2>&1 && return 0
  log "installing the Debian package busybox-static"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static; } >&2
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Writes an OCI image layout for rootfs directory $1, named $2, with config fragment $3
# (the "config" object), as the tarball $4.
write_image() {
  local rootfs="$1" name="$2" config="$3" out="$4" lay
  lay=$(mktemp -d)
  mkdir -p "$lay/blobs/sha256"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$lay/layer.tar" .
  local layer_digest layer_size cfg_digest cfg_size man_digest man_size
  layer_digest=$(sha "$lay/layer.tar"); layer_size=$(stat -c %s "$lay/layer.tar")
  mv "$lay/layer.tar" "$lay/blobs/sha256/$layer_digest"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$config" "$layer_digest" >"$lay/config.json"
  cfg_digest=$(sha "$lay/config.json"); cfg_size=$(stat -c %s "$lay/config.json")
  mv "$lay/config.json" "$lay/blobs/sha256/$cfg_digest"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cfg_digest" "$cfg_size" "$layer_digest" "$layer_size" >"$lay/manifest.json"
  man_digest=$(sha "$lay/manifest.json"); man_size=$(stat -c %s "$lay/manifest.json")
  mv "$lay/manifest.json" "$lay/blobs/sha256/$man_digest"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$man_digest" "$man_size" "$name" "${name##*:}" >"$lay/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$lay/oci-layout"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$lay" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$lay"
}

base_rootfs() {
  local root="$1"
  mkdir -p "$root"/{bin,dev,etc,proc,sys,root,home,var/tmp}
  install -d -m 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

build_busybox() {
  local out="$1" root applet
  root=$(mktemp -d)
  base_rootfs "$root"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list-full); do
    mkdir -p "$root/$(dirname "$applet")"
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
  local env='"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'
  write_image "$root" k8s-runner.local/busybox:1 "{$env,\"Cmd\":[\"sh\"],\"WorkingDir\":\"/\"}" "$out/busybox.tar"
  write_image "$root" k8s-runner.local/busybox-nonroot:1 "{$env,\"Cmd\":[\"sh\"],\"WorkingDir\":\"/tmp\",\"User\":\"65534:65534\"}" "$out/busybox-nonroot.tar"
  write_image "$root" k8s-runner.local/bad-user:1 "{$env,\"Cmd\":[\"sh\"],\"User\":\"agent\"}" "$out/bad-user.tar"
  rm -rf "$root"
}

build_pause() {
  local out="$1" root
  root=$(mktemp -d)
  base_rootfs "$root"
  install -m 0755 "$TOOLS_DIR/pause" "$root/pause"
  write_image "$root" k8s-runner.local/pause:1 '{"Entrypoint":["/pause"],"WorkingDir":"/"}' "$out"
  rm -rf "$root"
}

main() {
  ensure_busybox
  local key dir
  key=$( { dpkg-query -W -f '${Version}' busybox-static; sha "$TOOLS_DIR/pause"; sha "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12)
  dir="$CACHE_ROOT/images/$key"
  if [ ! -f "$dir/busybox.tar" ] || [ ! -f "$dir/busybox-nonroot.tar" ] || [ ! -f "$dir/bad-user.tar" ] || [ ! -f "$dir/pause.tar" ]; then
    mkdir -p "$dir"
    log "building the node images into $dir"
    build_pause "$dir/pause.tar"
    build_busybox "$dir"
  fi
  printf '%s\n' "$dir/pause.tar" "$dir/busybox.tar" "$dir/busybox-nonroot.tar" "$dir/bad-user.tar"
}

main "$@"
