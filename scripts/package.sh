#!/usr/bin/env bash
# scripts/package.sh: build the .deb packages of controller, agent and kctl
# for amd64 and arm64 into dist/ (make package). nfpm is pinned and run with
# `go run`, so nothing needs to be installed first.
set -euo pipefail
cd "$(dirname "$0")/.."

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
# Debian versions must start with a digit: 0.0.0+<git describe>.
export DEB_VERSION=${DEB_VERSION:-0.0.0+${VERSION//-/.}}
export DIST=${DIST:-dist}
ARCHES=${ARCHES:-amd64 arm64}
LDFLAGS="-X github.com/kctl-dev/kctl/internal/version.Version=$VERSION"

mkdir -p "$DIST"
nfpm=$DIST/.nfpm
GOBIN=$(cd "$DIST" && pwd) go install "$NFPM" >/dev/null 2>&1 || GOBIN=$(cd "$DIST" && pwd) go install "$NFPM"
mv -f "$DIST/nfpm" "$nfpm"
for arch in $ARCHES; do
	out=$DIST/linux_$arch
	mkdir -p "$out"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$LDFLAGS" -o "$out/" ./cmd/...
	for pkg in controller agent kctl; do
		# nfpm expands the environment in some fields only: fill in the
		# config's ${ARCH}, ${DIST} and ${DEB_VERSION} first.
		sed -e "s|\${ARCH}|$arch|g" -e "s|\${DIST}|$DIST|g" -e "s|\${DEB_VERSION}|$DEB_VERSION|g" \
			"packaging/nfpm/$pkg.yaml" >"$DIST/.nfpm-$pkg-$arch.yaml"
		"$nfpm" package --config "$DIST/.nfpm-$pkg-$arch.yaml" --packager deb --target "$DIST/" >/dev/null
	done
done
ls -1 "$DIST"/*.deb
