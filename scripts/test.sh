#!/usr/bin/env bash
# The one command that runs every test (README: `make test`); .ci/run calls it.
# End-to-end tests need the Docker engine, Debian's docker-registry and ruby;
# with KCTL_E2E=1 they fail instead of skipping when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export KCTL_E2E=1

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== generated code is current"
make --no-print-directory checkgenerate
echo "== go test -race"
go test -race -count=1 -timeout 40m ./...
echo "== fuzz (bounded)"
go test -run '^$' -fuzz FuzzLoad -fuzztime 20s ./internal/kamalconfig
go test -run '^$' -fuzz FuzzParseToken -fuzztime 10s ./internal/pki
