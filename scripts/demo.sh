#!/usr/bin/env bash
# Quick start (`make demo`): a controller and an agent on this machine, then a
# real `kctl deploy` of the sample project in demo/ to the local Docker engine,
# reachable through kamal-proxy on http://127.0.0.1:8080.
#
#   scripts/demo.sh         bring everything up and deploy
#   scripts/demo.sh down    stop the processes and remove the demo's containers
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=$root/.demo
bin=$state/bin
api=127.0.0.1:7443
registry_port=5555

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# agent_connected NAME reads `kctl agents` and succeeds when NAME's status
# is exactly "connected" ("disconnected" does not count).
agent_connected() { awk -v name="$1" '$1 == name && $2 == "connected" { ok = 1 } END { exit !ok }'; }

down() {
  for pidfile in "$state"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  ids=$(docker ps -aq --filter label=service=demo; docker ps -aq --filter name='^kamal-proxy$')
  [ -n "$ids" ] && docker rm -f $ids >/dev/null
  docker volume rm -f kamal-proxy-config >/dev/null 2>&1 || true
  rm -rf "$state"
  echo "demo stopped and removed"
}

if [ "${1:-}" = "down" ]; then down; exit 0; fi
if [ -d "$state" ]; then
  echo "a previous demo is still set up in .demo: removing it first"
  down
fi

command -v go >/dev/null || { echo "Go 1.26 is needed: https://go.dev/dl/"; exit 1; }
docker info >/dev/null 2>&1 || { echo "a running Docker engine is needed (docker info failed)"; exit 1; }
if ! command -v docker-registry >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "Installing Debian's docker-registry (the demo's local image registry)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
    systemctl stop docker-registry 2>/dev/null || pkill -f /usr/bin/docker-registry || true
  else
    echo "the demo needs a local image registry: sudo apt-get install docker-registry"; exit 1
  fi
fi
mkdir -p "$state" "$bin"

version=$(git describe --always --dirty 2>/dev/null || echo dev)
say "Building controller, agent and kctl ($version)"
CGO_ENABLED=0 go build -trimpath -ldflags "-X github.com/kctl-dev/kctl/internal/version.Version=$version" \
  -o "$bin/" ./cmd/controller ./cmd/agent ./cmd/kctl
export PATH=$bin:$PATH

say "Building the kamal-proxy stand-in image (basecamp/kamal-proxy cannot be pulled here)"
ctx=$(mktemp -d)
CGO_ENABLED=0 go build -trimpath -o "$ctx/kamal-proxy" ./test/kamal-proxy
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY kamal-proxy /usr/local/bin/kamal-proxy
ENV HOME=/home/kamal-proxy PATH=/usr/local/bin
LABEL org.opencontainers.image.title=kamal-proxy
EXPOSE 80 443
CMD ["kamal-proxy", "run"]
EOF
docker build -q -t kctl-demo/kamal-proxy:v0.9.2 "$ctx" >/dev/null
rm -rf "$ctx"

say "Starting a local registry on 127.0.0.1:$registry_port"
cat >"$state/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $state/registry
http:
  addr: 127.0.0.1:$registry_port
EOF
docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 &
echo $! >"$state/registry.pid"

say "Starting controller c1 (a new cluster: --init)"
controller run --name c1 --data-dir "$state/c1" --listen $api --raft-listen 127.0.0.1:7444 --init >"$state/c1.log" 2>&1 &
echo $! >"$state/c1.pid"
export KCTL_CREDENTIALS=$state/c1/admin.kctl.yaml
for _ in $(seq 100); do [ -f "$KCTL_CREDENTIALS" ] && break; sleep 0.1; done
[ -f "$KCTL_CREDENTIALS" ] || { cat "$state/c1.log"; exit 1; }

say "Enrolling agent demo-1 (it dials out to the controller; no SSH, no inbound port)"
token=$(kctl token create --role agent --ttl 10m)
agent run --name demo-1 --data-dir "$state/demo-1" --controller $api --token "$token" >"$state/demo-1.log" 2>&1 &
echo $! >"$state/demo-1.pid"
for _ in $(seq 100); do kctl agents 2>/dev/null | agent_connected demo-1 && break; sleep 0.1; done
kctl agents 2>/dev/null | agent_connected demo-1 || { echo "agent demo-1 did not connect:"; cat "$state/demo-1.log"; exit 1; }

say "kctl cluster status"
kctl cluster status
say "kctl agents"
kctl agents

say "kctl deploy (the sample project in demo/)"
CGO_ENABLED=0 go build -trimpath -o demo/build/demo ./demo
(cd demo && kctl deploy --version demo-v1)

say "The app through kamal-proxy: curl http://127.0.0.1:8080/"
curl -fsS http://127.0.0.1:8080/

say "kctl audit --service demo"
kctl audit --service demo

cat <<EOF

The demo is running. Try, with KCTL_CREDENTIALS=$KCTL_CREDENTIALS and PATH=$bin:\$PATH:
  (cd demo && kctl deploy --version demo-v2)     # zero-downtime switch
  (cd demo && kctl rollback demo-v1)
  kctl deploys; kctl audit
Logs are in .demo/*.log. Stop it all with: scripts/demo.sh down
EOF
