#!/usr/bin/env bash
# The image tooling of the suite, with no container engine and no registry: Debian's buildah
# (installed with apt when missing), its storage in the tools cache, and in it the base the
# Dockerfile names, node:<version>-bookworm-slim (the exact version of .node-version), assembled
# here once and kept by version:
# a minimal Debian bookworm (debootstrap) with the project's Node.js and this machine's npm,
# laid out as the official image lays them out (/usr/local/bin/node, npm under
# /usr/local/lib/node_modules). Beside it, for a real node's pods, a busybox image from Debian's
# busybox-static (sandbox "pause" image and app image in one: its command sleeps for ever).
# Prints the buildah storage flags on the first line of stdout and the busybox image's name on
# the second; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODE_VERSION="$(tr -d '[:space:]' < .node-version)"
CACHE_ROOT="${CCE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cce-secrets-manager}"
STORE="$CACHE_ROOT/buildah"
BASE="docker.io/library/node:$NODE_VERSION-bookworm-slim"
STAMP="$STORE/base-node-v$NODE_VERSION-bookworm-r1"

say() { echo "base-image: $*" >&2; }
die() { echo "base-image: ERROR: $*" >&2; exit 1; }

if ! command -v buildah >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 ||
  [ ! -x /bin/busybox ]; then
  say "installing buildah, runc, debootstrap and busybox-static from Debian (first run only)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah runc debootstrap busybox-static; } >&2 ||
    die "could not install buildah, runc, debootstrap and busybox-static with apt-get"
fi

mkdir -p "$STORE"
FLAGS=(--root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs)

if [ ! -e "$STAMP" ] || ! buildah "${FLAGS[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  say "assembling $BASE: debootstrap bookworm + Node.js $NODE_VERSION (first run only: a few minutes)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    bookworm "$tmp/rootfs" http://deb.debian.org/debian >&2 ||
    die "debootstrap failed"
  node_bin="$(bash scripts/node-runtime.sh)/node"
  install -D -m 0755 "$node_bin" "$tmp/rootfs/usr/local/bin/node"
  # The npm this machine runs the project with (a Node.js binary package carries none).
  npm_version="$(npm --version)"
  (cd "$tmp" && npm pack --silent "npm@$npm_version" >/dev/null && mkdir -p rootfs/usr/local/lib/node_modules/npm &&
    tar -xzf "npm-$npm_version.tgz" --strip-components=1 -C rootfs/usr/local/lib/node_modules/npm)
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$tmp/rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$tmp/rootfs/usr/local/bin/npx"
  rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
  ctr="$(buildah "${FLAGS[@]}" from scratch)"
  buildah "${FLAGS[@]}" copy "$ctr" "$tmp/rootfs" / >/dev/null
  buildah "${FLAGS[@]}" config --env NODE_VERSION="$NODE_VERSION" --cmd node "$ctr"
  buildah "${FLAGS[@]}" commit --rm "$ctr" "$BASE" >&2
  touch "$STAMP"
fi
BUSYBOX_VERSION="$(dpkg-query -W -f '${Version}' busybox-static | sed 's/^[0-9]*://; s/[^A-Za-z0-9_.-]/_/g')"
BUSYBOX="localhost/cce-test-busybox:$BUSYBOX_VERSION"
if ! buildah "${FLAGS[@]}" inspect --type image "$BUSYBOX" >/dev/null 2>&1; then
  say "assembling $BUSYBOX from busybox-static (first run only)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/tmp"
  install -m 0755 /bin/busybox "$tmp/rootfs/bin/busybox"
  for applet in sh cat echo ls sleep test mount grep env; do ln -s busybox "$tmp/rootfs/bin/$applet"; done
  ctr="$(buildah "${FLAGS[@]}" from scratch)"
  buildah "${FLAGS[@]}" copy "$ctr" "$tmp/rootfs" / >/dev/null
  buildah "${FLAGS[@]}" config --env PATH=/bin --cmd '["/bin/sleep", "2147483647"]' "$ctr"
  buildah "${FLAGS[@]}" commit --rm "$ctr" "$BUSYBOX" >&2
fi
echo "${FLAGS[*]}"
echo "$BUSYBOX"
