#!/usr/bin/env bash
# scripts/images.sh: build the FROM-scratch images of controller and agent
# for this machine's architecture (make images): $IMAGE_PREFIX/controller
# and $IMAGE_PREFIX/agent, tagged $TAG and latest.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
IMAGE_PREFIX=${IMAGE_PREFIX:-kctl}
TAG=${TAG:-$VERSION}
LDFLAGS="-X github.com/kctl-dev/kctl/internal/version.Version=$VERSION"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o "$ctx/" ./cmd/controller ./cmd/agent
mkdir -p "$ctx/state"
for img in controller agent; do
	docker build -q -f "packaging/images/$img.Dockerfile" -t "$IMAGE_PREFIX/$img:$TAG" -t "$IMAGE_PREFIX/$img:latest" "$ctx" >/dev/null
	echo "$IMAGE_PREFIX/$img:$TAG"
done
