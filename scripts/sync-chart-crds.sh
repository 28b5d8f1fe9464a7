#!/usr/bin/env bash
# Copies the generated CRDs (crds/, from src/api by scripts/generate-crds.ts) into the Helm
# charts (charts/k8s-runner/crds/, charts/k8s-runner-crds/files/crds/) and the kustomize base (config/crd/crds/), byte for byte.
#   scripts/sync-chart-crds.sh          write the copies
#   scripts/sync-chart-crds.sh --check  exit 1 and name the stale copies instead of writing
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/crds"
TARGETS=("$ROOT/charts/k8s-runner/crds" "$ROOT/charts/k8s-runner-crds/files/crds" "$ROOT/config/crd/crds")
CHECK=false
[ "${1:-}" = "--check" ] && CHECK=true

stale=0
for dir in "${TARGETS[@]}"; do
  $CHECK || mkdir -p "$dir"
  for f in "$SRC"/*.yaml; do
    dest="$dir/$(basename "$f")"
    if ! cmp -s "$f" "$dest"; then
      if $CHECK; then
        echo "stale: ${dest#"$ROOT"/} (run scripts/sync-chart-crds.sh)" >&2
        stale=1
      else
        cp "$f" "$dest"
        echo "wrote ${dest#"$ROOT"/}"
      fi
    fi
  done
  # A copy whose source is gone is stale too.
  if [ -d "$dir" ]; then
    for dest in "$dir"/*.yaml; do
      [ -e "$dest" ] || continue
      [ -e "$SRC/$(basename "$dest")" ] && continue
      if $CHECK; then
        echo "stale: ${dest#"$ROOT"/} has no source in crds/" >&2
        stale=1
      else
        rm -f "$dest"
        echo "removed ${dest#"$ROOT"/}"
      fi
    done
  fi
done
exit "$stale"
