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

# A command a Go module serves, `go install`ed once into its own cache folder, linked from BIN:
# go_tool <folder> <command> <module path>@<version>.
go_tool() {
  local dir="$1" name="$2" module="$3"
  if [ ! -x "$dir/$name" ]; then
    need_go
    say "building $module into $dir (first run only: about a minute)"
    mkdir -p "$dir"
    GOFLAGS= GOBIN="$dir" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$module" >&2 ||
      die "building $module failed"
  fi
  ln -sfn "$dir/$name" "$BIN/$name"
}

# kubernetes-csi's conformance suite, run by test/integration/csi-sanity.test.ts.
ensure_sanity() {
  go_tool "$SANITY_BIN" csi-sanity "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_TEST_VERSION"
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

# kube-scheduler, for test/integration/real-node.test.ts: the chart's DaemonSet and Deployment
# get their pods placed as on any cluster; its own cache folder.
SCHEDULER_BIN="$CACHE_ROOT/k8s-$K8S_VERSION-scheduler-r1/bin"
ensure_scheduler() {
  if [ ! -x "$SCHEDULER_BIN/kube-scheduler" ]; then
    need_go
    say "building kube-scheduler $K8S_VERSION into $SCHEDULER_BIN (first run only: a few minutes)"
    local dir; dir="$(mktemp -d)"
    mkdir -p "$SCHEDULER_BIN"
    write_k8s_module "$dir" k8s-scheduler
    printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-scheduler"\n' > "$dir/tools.go"
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go mod tidy >&2 &&
      CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $(version_flags)" -o "$SCHEDULER_BIN/" \
        k8s.io/kubernetes/cmd/kube-scheduler >&2) ||
      die "building kube-scheduler failed"
    rm -rf "$dir"
  fi
  ln -sfn "$SCHEDULER_BIN/kube-scheduler" "$BIN/kube-scheduler"
}

# crictl, which test/cluster/containerd.ts uses to stop and remove a real node's pods through
# CRI (so CNI and the shims clean up after themselves); not packaged by Debian. v1.34.0 is the
# oldest release the module proxy serves.
CRICTL_VERSION="${CRICTL_VERSION:-v1.34.0}"
CRICTL_BIN="$CACHE_ROOT/crictl-$CRICTL_VERSION/bin"
ensure_crictl() {
  go_tool "$CRICTL_BIN" crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

# The upstream Secrets Store CSI driver and a provider built on upstream's own fake provider
# server (provider/fake in the driver module), for the provider-API tests and benchmarks;
# their own cache folder. The driver's logging dependency monis.app/mlog is refused by the
# module proxy, so a stand-in of ours with the four functions the driver calls replaces it.
# `secrets-store-csi-driver-unlimited` is the same code with controller-runtime's client
# rate limit lifted (cfg.QPS = -1), to compare code rather than configuration.
UPSTREAM_VERSION="${UPSTREAM_VERSION:-v1.6.0}"
UPSTREAM_BIN="$CACHE_ROOT/secrets-store-csi-driver-$UPSTREAM_VERSION-r2/bin"
ensure_upstream() {
  if [ ! -x "$UPSTREAM_BIN/secrets-store-csi-driver" ] || [ ! -x "$UPSTREAM_BIN/secrets-store-csi-driver-unlimited" ] ||
    [ ! -x "$UPSTREAM_BIN/fake-provider" ]; then
    need_go
    say "building secrets-store-csi-driver $UPSTREAM_VERSION and fake-provider into $UPSTREAM_BIN (first run only: a few minutes)"
    local dir src; dir="$(mktemp -d)"
    mkdir -p "$UPSTREAM_BIN" "$dir/mlog" "$dir/fake-provider"
    src="$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/secrets-store-csi-driver@$UPSTREAM_VERSION" |
      sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    [ -d "$src" ] || die "could not download sigs.k8s.io/secrets-store-csi-driver@$UPSTREAM_VERSION (check GOPROXY)"
    write_mlog_standin "$dir/mlog"
    write_fake_provider_main "$dir/fake-provider/main.go"
    # A writable copy of the driver module for the rate-limit-lifted build.
    cp -r "$src" "$dir/driver-unlimited" && chmod -R u+w "$dir/driver-unlimited"
    sed -i 's|^\(\tcfg := ctrl.GetConfigOrDie()\)$|\1\n\tcfg.QPS = -1|' "$dir/driver-unlimited/cmd/secrets-store-csi-driver/main.go"
    grep -q 'cfg.QPS = -1' "$dir/driver-unlimited/cmd/secrets-store-csi-driver/main.go" ||
      die "could not lift the client rate limit in the driver's main.go"
    {
      echo "module cce-secrets-manager/upstream-peers"
      echo "go $(sed -n 's/^go //p' "$src/go.mod")"
      echo "require sigs.k8s.io/secrets-store-csi-driver $UPSTREAM_VERSION"
      echo "replace monis.app/mlog => ./mlog"
    } > "$dir/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver"\n' > "$dir/tools.go"
    local ldflags="-s -w -X sigs.k8s.io/secrets-store-csi-driver/pkg/version.BuildVersion=$UPSTREAM_VERSION"
    (cd "$dir" && export CGO_ENABLED=0 GOFLAGS=-mod=mod && go mod tidy >&2 &&
      go build -trimpath -ldflags "$ldflags" -o "$UPSTREAM_BIN/secrets-store-csi-driver" \
        sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver >&2 &&
      go build -trimpath -ldflags "-s -w" -o "$UPSTREAM_BIN/fake-provider" ./fake-provider >&2 &&
      cp go.mod go.unlimited.mod && cp go.sum go.unlimited.sum &&
      echo "replace sigs.k8s.io/secrets-store-csi-driver => ./driver-unlimited" >> go.unlimited.mod &&
      go build -modfile go.unlimited.mod -trimpath -ldflags "$ldflags" -o "$UPSTREAM_BIN/secrets-store-csi-driver-unlimited" \
        sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver >&2) ||
      die "building the upstream driver $UPSTREAM_VERSION and fake-provider failed"
    rm -rf "$dir"
  fi
  local tool
  for tool in secrets-store-csi-driver secrets-store-csi-driver-unlimited fake-provider; do
    ln -sfn "$UPSTREAM_BIN/$tool" "$BIN/$tool"
  done
}

# Our stand-in for monis.app/mlog: the driver's main calls Setup, Fatal, Error and
# ValidateAndSetKlogLevelAndFormatGlobally; klog does the logging.
write_mlog_standin() {
  echo "module monis.app/mlog" > "$1/go.mod"
  echo "go 1.22" >> "$1/go.mod"
  echo "require k8s.io/klog/v2 v2.130.1" >> "$1/go.mod"
  cat > "$1/mlog.go" <<'GO'
// Package mlog stands in for monis.app/mlog, which the module proxy does not serve.
package mlog

import (
	"context"
	"os"

	"k8s.io/klog/v2"
)

type LogFormat string

const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

func Setup() func() { return klog.Flush }

func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, _ klog.Level, _ LogFormat) error {
	return nil
}

func Error(msg string, err error, keysAndValues ...interface{}) {
	klog.ErrorS(err, msg, keysAndValues...)
}

func Fatal(err error, keysAndValues ...interface{}) {
	klog.ErrorS(err, "fatal", keysAndValues...)
	klog.Flush()
	os.Exit(1)
}
GO
}

# fake-provider serves upstream's provider/fake MockCSIProviderServer (which parses the
# request exactly as a provider must) on the socket given by --endpoint. What Mount returns
# comes from the JSON file given by --config, read again whenever it changes, so a test can
# rotate versions; with --record, each request is written there as JSON for the test to check.
write_fake_provider_main() {
  cat > "$1" <<'GO'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/fake"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

type config struct {
	Files     []*v1alpha1.File  `json:"files"`
	Objects   map[string]string `json:"objects"`
	ErrorCode string            `json:"errorCode"`
	// A gRPC failure instead of an answer: "<code name>: <message>".
	Fail string `json:"fail"`
}

type provider struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	configPath, recordPath string
	mu                     sync.Mutex
	loaded                 string
	mock                   *fake.MockCSIProviderServer
}

func (p *provider) current() (*fake.MockCSIProviderServer, error) {
	raw, err := os.ReadFile(p.configPath)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mock != nil && string(raw) == p.loaded {
		return p.mock, nil
	}
	var c config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	mock, _ := fake.NewMocKCSIProviderServer("")
	mock.SetFiles(c.Files)
	mock.SetObjects(c.Objects)
	mock.SetProviderErrorCode(c.ErrorCode)
	if c.Fail != "" {
		name, msg, _ := strings.Cut(c.Fail, ": ")
		code := codes.Unknown
		_ = code.UnmarshalJSON([]byte(`"` + name + `"`))
		mock.SetReturnError(status.Error(code, msg))
	}
	p.mock, p.loaded = mock, string(raw)
	return mock, nil
}

func (p *provider) Version(ctx context.Context, req *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	mock, err := p.current()
	if err != nil {
		return nil, err
	}
	return mock.Version(ctx, req)
}

func (p *provider) Mount(ctx context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	if p.recordPath != "" {
		raw, _ := json.Marshal(req)
		if err := os.WriteFile(p.recordPath, raw, 0o600); err != nil {
			return nil, err
		}
	}
	mock, err := p.current()
	if err != nil {
		return nil, err
	}
	return mock.Mount(ctx, req)
}

func main() {
	endpoint := flag.String("endpoint", "", "unix socket path to serve on")
	configPath := flag.String("config", "", "JSON file: files, objects, errorCode, fail")
	recordPath := flag.String("record", "", "file to write each Mount request to, as JSON")
	flag.Parse()
	if *endpoint == "" || *configPath == "" {
		fmt.Fprintln(os.Stderr, "usage: fake-provider --endpoint /path/name.sock --config files.json [--record req.json]")
		os.Exit(2)
	}
	_ = os.Remove(*endpoint)
	lis, err := net.Listen("unix", *endpoint)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(server, &provider{configPath: *configPath, recordPath: *recordPath})
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-stop; server.Stop() }()
	if err := server.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
GO
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

if have_all; then ensure_sanity; ensure_node_tools; ensure_scheduler; ensure_crictl; ensure_upstream; echo "$BIN"; exit 0; fi

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
ensure_scheduler
ensure_crictl
ensure_upstream
echo "$BIN"
