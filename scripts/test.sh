#!/usr/bin/env bash
# The one command that runs every test (README: `make test`); .ci/run calls it.
# End-to-end tests need the Docker engine, Debian's docker-registry and ruby;
# with KCTL_E2E=1 they fail instead of skipping when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export KCTL_E2E=1

# stop_package_registry stops the service that installing Debian's
# docker-registry starts: through systemd when systemd runs, else the
# process its init script recorded in /run/docker-registry.pid, if that pid
# is still /usr/bin/docker-registry run as the package's user.
stop_package_registry() {
  if [ -d /run/systemd/system ]; then
    systemctl stop docker-registry 2>/dev/null || true
  elif [ -f /run/docker-registry.pid ] && command -v start-stop-daemon >/dev/null; then
    start-stop-daemon --stop --quiet --pidfile /run/docker-registry.pid \
      --exec /usr/bin/docker-registry --user docker-registry --retry 5 || true
  fi
}

# What the tests need beyond Go and a running Docker engine: Debian's ruby
# (Kamal's ERB fallback) and docker-registry (a real registry on loopback).
need=()
command -v ruby >/dev/null || need+=(ruby)
command -v docker-registry >/dev/null || need+=(docker-registry)
# The packaging test: dpkg --root, systemd-analyze verify, systemd-sysusers.
command -v dpkg >/dev/null || need+=(dpkg)
command -v systemd-analyze >/dev/null && command -v systemd-sysusers >/dev/null || need+=(systemd)
# The chaos suite (test/chaos): network namespaces and iptables rules.
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # The tests start their own registries on free ports and stop them by
    # pid. The package may have started its service (:5000) just now: stop
    # that one, and only that one — never a registry someone else runs.
    if [[ " ${need[*]} " == *" docker-registry "* ]]; then stop_package_registry; fi
  else
    echo "the tests need: ${need[*]} (sudo apt-get install ${need[*]})"; exit 1
  fi
fi
docker info >/dev/null 2>&1 || { echo "the tests need a running Docker engine (docker info failed)"; exit 1; }

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
go test -run '^$' -fuzz FuzzLoad -fuzztime 30s ./internal/kamalconfig
go test -run '^$' -fuzz FuzzParseRunArgs -fuzztime 30s ./internal/agent/docker
go test -run '^$' -fuzz FuzzParseToken -fuzztime 10s ./internal/pki
