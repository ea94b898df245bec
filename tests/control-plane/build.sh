#!/usr/bin/env bash
# Builds the real Kubernetes pieces the tests run against, from the Go module proxy, into a cache
# outside the checkout keyed by version (nothing is built twice on one machine):
#   kube-apiserver, kube-controller-manager  (k8s.io/kubernetes, staging modules pinned to the
#                                             matching k8s.io/* v0.x release)
#   etcd                                     (go.etcd.io/etcd/server/v3)
#   helm                                     (helm.sh/helm/v4, the CLI users type)
#   kstatus                                  (tests/control-plane/kstatus: sigs.k8s.io/cli-utils'
#                                             kstatus on objects read from stdin)
#   kubeconform                              (github.com/yannh/kubeconform)
#   actionlint                               (github.com/rhysd/actionlint)
#   mdbook                                   (crates.io, without its serve/watch features)
# Prints the directory that holds them. Tests find it the same way (KEYFRONT_TOOLS, or the default
# below); a test that needs a binary that is missing fails with this command.
#   bash tests/control-plane/build.sh          # prints e.g. /root/.cache/keyfront-tools/k8s-1.37.2
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
root=${KEYFRONT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/keyfront-tools}
out="$root/k8s-$KUBERNETES_VERSION"
mkdir -p "$out"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

if [ ! -x "$out/kube-apiserver" ] || [ ! -x "$out/kube-controller-manager" ]; then
  echo "building kube-apiserver and kube-controller-manager $KUBERNETES_VERSION (several minutes)" >&2
  work="$root/src/kubernetes-$KUBERNETES_VERSION"
  mkdir -p "$work"
  cd "$work"
  printf 'module keyfront.dev/tools/kubernetes\n\ngo 1.26\n\nrequire k8s.io/kubernetes v%s\n' \
    "$KUBERNETES_VERSION" > go.mod
  # k8s.io/kubernetes points its staging modules at ./staging; a consumer pins them instead.
  staging=$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" \
    | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  for module in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$staging"); do
    go mod edit -replace="$module=$module@v0.${KUBERNETES_VERSION#1.}"
  done
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  go mod tidy
  go build -trimpath -ldflags=-s -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
fi

if [ ! -x "$out/etcd" ]; then
  echo "building etcd $ETCD_VERSION" >&2
  work="$root/src/etcd-$ETCD_VERSION"; mkdir -p "$work"; cd "$work"
  printf 'module keyfront.dev/tools/etcd\n\ngo 1.26\n' > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  go mod tidy
  go build -trimpath -ldflags=-s -o "$out/etcd" go.etcd.io/etcd/server/v3
fi

# A tool's own module, its k8s.io modules pinned to the control plane's release.
pin_kubernetes_modules() {
  for module in $(go list -m all 2>/dev/null | awk '$1 ~ /^k8s.io\/(api|apimachinery|apiextensions-apiserver|apiserver|cli-runtime|client-go|component-base|component-helpers|kubectl|metrics|code-generator|kube-aggregator)$/ {print $1}'); do
    go mod edit -replace="$module=$module@v0.${KUBERNETES_VERSION#1.}"
  done
  go mod tidy
}

if [ ! -x "$out/helm" ]; then
  echo "building helm $HELM_VERSION" >&2
  work="$root/src/helm-$HELM_VERSION"; mkdir -p "$work"; cd "$work"
  printf 'module keyfront.dev/tools/helm\n\ngo 1.26\n' > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v4/cmd/helm"\n' > tools.go
  go get "helm.sh/helm/v4@v$HELM_VERSION"
  go mod tidy
  pin_kubernetes_modules
  go build -trimpath -ldflags="-s -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
    -o "$out/helm" helm.sh/helm/v4/cmd/helm
fi

if [ ! -x "$out/kstatus" ] || ! cmp -s "$here/kstatus/main.go" "$root/src/kstatus-$CLI_UTILS_VERSION/main.go"; then
  echo "building kstatus (sigs.k8s.io/cli-utils $CLI_UTILS_VERSION)" >&2
  work="$root/src/kstatus-$CLI_UTILS_VERSION"; mkdir -p "$work"; cd "$work"
  cp "$here/kstatus/main.go" main.go
  printf 'module keyfront.dev/tools/kstatus\n\ngo 1.26\n' > go.mod
  go get "sigs.k8s.io/cli-utils@v$CLI_UTILS_VERSION"
  go mod tidy
  pin_kubernetes_modules
  go build -trimpath -ldflags=-s -o "$out/kstatus" .
fi

# A command-line tool from its own Go module: go_tool NAME MODULE VERSION PACKAGE.
go_tool() {
  local name=$1 module=$2 version=$3 package=$4
  [ -x "$out/$name" ] && return
  echo "building $name $version" >&2
  local work="$root/src/$name-$version"; mkdir -p "$work"; cd "$work"
  printf 'module keyfront.dev/tools/%s\n\ngo 1.26\n' "$name" > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" > tools.go
  go get "$module@v$version"
  go mod tidy
  go build -trimpath -ldflags=-s -o "$out/$name" "$package"
}

go_tool kubeconform github.com/yannh/kubeconform "$KUBECONFORM_VERSION" \
  github.com/yannh/kubeconform/cmd/kubeconform
# actionlint checks .github/workflows, which cannot run here (tests/it/install/workflows.rs).
go_tool actionlint github.com/rhysd/actionlint "$ACTIONLINT_VERSION" \
  github.com/rhysd/actionlint/cmd/actionlint

# mdBook renders docs/ into the book (tests/it/docs/book.rs builds it): a Rust tool, so from
# crates.io with its lock file, without the live-reload server it needs only for `serve`.
if [ ! -x "$out/mdbook" ]; then
  echo "building mdbook $MDBOOK_VERSION" >&2
  cargo install mdbook --version "$MDBOOK_VERSION" --locked --no-default-features \
    --features search --root "$root/src/mdbook-$MDBOOK_VERSION" --quiet
  cp "$root/src/mdbook-$MDBOOK_VERSION/bin/mdbook" "$out/mdbook"
fi

echo "$out"
