#!/usr/bin/env bash
# The project's one test command (npm test): type check, lint, then every jest test —
# unit tests and integration tests against a real control plane that the jest global
# setup starts on loopback (built from Go modules on first use, then cached).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/ensure-node.sh

echo "== node $(node --version)"

echo "== typecheck"
npx tsc --noEmit -p tsconfig.json
echo "== lint"
npx eslint --quiet .
echo "== tests (unit + integration on a real kube-apiserver/etcd/kwok)"
exec node --experimental-vm-modules node_modules/jest/bin/jest.js --forceExit "$@"
