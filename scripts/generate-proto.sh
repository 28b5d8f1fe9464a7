#!/usr/bin/env bash
# Generates TypeScript for proto/ into src/gen/ (checked in) with the buf CLI and the local
# ts-proto plugin; nothing is fetched. An optional argument names another base directory:
# the code then lands in <dir>/src/gen (used to detect stale generated code).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${1:-$root}"
cd "$root"

"$root/node_modules/.bin/buf" lint
"$root/node_modules/.bin/buf" generate --template buf.gen.yaml -o "$base"
