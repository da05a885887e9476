#!/usr/bin/env bash
# Builds the real Kubernetes tools the tests run against (kube-apiserver,
# kube-controller-manager, etcd, helm) from Go modules, once, into a cache
# outside the repository keyed by version. Prints the bin folder on stdout;
# progress goes to stderr. A warm cache returns in well under a second.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.33.13}"
HELM_VERSION="${HELM_VERSION:-v3.18.6}"
CSI_TEST_VERSION="${CSI_TEST_VERSION:-v5.6.0}"
CACHE_ROOT="${CCE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cce-secrets-manager}"
BIN="$CACHE_ROOT/k8s-$K8S_VERSION-helm-$HELM_VERSION/bin"
# csi-sanity has its own cache folder (its own version); BIN gets a link to it.
SANITY_BIN="$CACHE_ROOT/csi-test-$CSI_TEST_VERSION/bin"

say() { echo "install-tools: $*" >&2; }
die() { echo "install-tools: ERROR: $*" >&2; exit 1; }

have_all() {
  [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] &&
    [ -x "$BIN/etcd" ] && [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]
}

need_go() {
  command -v go >/dev/null 2>&1 ||
    die "Go is required to build the Kubernetes test tools (install Go 1.24+ from your distribution, e.g. 'apt-get install golang', and put 'go' on PATH)"
}

# kubernetes-csi's conformance suite, run by test/integration/csi-sanity.test.ts.
ensure_sanity() {
  if [ ! -x "$SANITY_BIN/csi-sanity" ]; then
    need_go
    say "building csi-sanity $CSI_TEST_VERSION into $SANITY_BIN (first run only: about a minute)"
    mkdir -p "$SANITY_BIN"
    GOFLAGS= GOBIN="$SANITY_BIN" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
      "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_TEST_VERSION" >&2 ||
      die "building csi-sanity $CSI_TEST_VERSION failed"
  fi
  ln -sfn "$SANITY_BIN/csi-sanity" "$BIN/csi-sanity"
}

# A Go module that builds commands of k8s.io/kubernetes at K8S_VERSION: its staging
# modules, replaced by ./staging paths upstream, point to their releases.
write_k8s_module() {
  local dir="$1" name="$2"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local patch="${K8S_VERSION##*.}"
  local modfile staging godebug etcd_version
  modfile="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [ -f "$modfile" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION through the Go module proxy (check GOPROXY)"
  staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile")"
  [ -n "$staging" ] || die "found no staging replace block in $modfile"
  godebug="$(grep -E '^godebug' "$modfile" || true)"
  etcd_version="$(sed -n 's#^[[:space:]]*go.etcd.io/etcd/client/v3 \(v[^ ]*\).*#\1#p' "$modfile" | head -n1)"
  [ -n "$etcd_version" ] || die "could not read the etcd client version Kubernetes pins"
  ETCD_VERSION="$etcd_version"
  {
    echo "module cce-secrets-manager/$name"
    echo "go 1.24"
    [ -n "$godebug" ] && echo "$godebug"
    echo "require ("
    echo "  k8s.io/kubernetes $K8S_VERSION"
    echo "  go.etcd.io/etcd/server/v3 $etcd_version"
    echo ")"
    echo "replace ("
    for m in $staging; do echo "  $m => $m v0.$minor.$patch"; done
    echo ")"
  } > "$dir/go.mod"
}

# kubelet and a container runtime for it (Kubernetes' own in-memory fake CRI server, run by
# a small main of ours), for test/integration/kubelet.test.ts; their own cache folder.
# The folder's revision changes whenever fake-cri's main below does.
NODE_BIN="$CACHE_ROOT/k8s-$K8S_VERSION-node-r2/bin"
ensure_node_tools() {
  if [ ! -x "$NODE_BIN/kubelet" ] || [ ! -x "$NODE_BIN/fake-cri" ]; then
    need_go
    say "building kubelet $K8S_VERSION and fake-cri into $NODE_BIN (first run only: a few minutes)"
    local dir; dir="$(mktemp -d)"
    mkdir -p "$NODE_BIN" "$dir/fake-cri"
    write_k8s_module "$dir" k8s-node-tools
    cat > "$dir/fake-cri/main.go" <<'GO'
// fake-cri serves Kubernetes' in-memory fake container runtime (sandboxes and containers
// as records, every image present) on the unix socket given as its one argument.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	fakeremote "k8s.io/cri-client/pkg/fake"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fake-cri unix:///path/to/cri.sock")
		os.Exit(2)
	}
	runtime := fakeremote.NewFakeRemoteRuntime()
	// kubelet refuses an image without a size; every pulled image gets this one.
	runtime.ImageService.SetFakeImageSize(1 << 20)
	if err := runtime.Start(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	runtime.Stop()
}
GO
    printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kubelet"\n' > "$dir/tools.go"
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go mod tidy >&2 &&
      CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $(version_flags)" -o "$NODE_BIN/" \
        k8s.io/kubernetes/cmd/kubelet >&2 &&
      CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$NODE_BIN/fake-cri" ./fake-cri >&2) ||
      die "building kubelet and fake-cri failed"
    rm -rf "$dir"
  fi
  ln -sfn "$NODE_BIN/kubelet" "$BIN/kubelet"
  ln -sfn "$NODE_BIN/fake-cri" "$BIN/fake-cri"
}

version_flags() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local flags="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags="$flags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags="$flags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

if have_all; then ensure_sanity; ensure_node_tools; echo "$BIN"; exit 0; fi

need_go
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"

say "building Kubernetes $K8S_VERSION tools into $BIN (first run only: several minutes)"
say "downloading k8s.io/kubernetes@$K8S_VERSION module"
write_k8s_module "$work" k8s-tools
etcd_version="$ETCD_VERSION"

cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO

say "resolving module graph (go mod tidy)"
(cd "$work" && go mod tidy >&2) || die "go mod tidy failed for the wrapper module"

ver_flags="$(version_flags)"

start=$(date +%s)
say "building kube-apiserver, kube-controller-manager, kubectl"
(cd "$work" && go build -trimpath -ldflags "-s -w $ver_flags" -o "$BIN/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl >&2) || die "building Kubernetes $K8S_VERSION failed"
say "building etcd $etcd_version"
(cd "$work" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3 >&2) ||
  die "building etcd $etcd_version failed"
say "building helm $HELM_VERSION"
GOFLAGS= GOBIN="$BIN" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2 || die "building helm $HELM_VERSION failed"
say "built in $(( $(date +%s) - start ))s"

have_all || die "build finished but a binary is missing in $BIN"
ensure_sanity
ensure_node_tools
echo "$BIN"
