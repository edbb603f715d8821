#!/usr/bin/env bash
# Quick start (make demo): a controller and an agent on this machine, then
# `kctl cluster status` and `kctl agents`. Everything lives in .tmp/demo and
# stops when the script ends (KEEP=1 leaves it running).
set -euo pipefail
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/...
demo=.tmp/demo
if [ -d "$demo" ]; then
  for f in "$demo"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$demo"
fi
mkdir -p "$demo"
api=127.0.0.1:${DEMO_PORT:-7443}
raft=127.0.0.1:$(( ${DEMO_PORT:-7443} + 1 ))

stop() {
  for f in "$demo"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
}
[ "${KEEP:-}" = 1 ] || trap stop EXIT

bin/controller run --name c1 --data-dir "$demo/c1" --listen "$api" --raft-listen "$raft" --init >"$demo/c1.out" 2>"$demo/c1.log" &
echo $! >"$demo/c1.pid"
for _ in $(seq 100); do [ -f "$demo/c1/admin.kctl.yaml" ] && break; sleep 0.1; done
if [ ! -f "$demo/c1/admin.kctl.yaml" ]; then echo "controller did not start:"; cat "$demo/c1.log"; exit 1; fi
export KCTL_CREDENTIALS=$demo/c1/admin.kctl.yaml
echo "controller c1 serves on $api (credentials: $KCTL_CREDENTIALS)"

token=$(bin/kctl token create --role agent --ttl 10m)
bin/agent run --name web-1 --data-dir "$demo/web-1" --controller "$api" --token "$token" >"$demo/web-1.log" 2>&1 &
echo $! >"$demo/web-1.pid"
for _ in $(seq 100); do bin/kctl agents -o json | grep -q '"connected"' && break; sleep 0.1; done

echo; echo '$ kctl cluster status'; bin/kctl cluster status
echo; echo '$ kctl agents'; bin/kctl agents
echo; echo '$ kctl agents describe web-1'; bin/kctl agents describe web-1
if [ "${KEEP:-}" = 1 ]; then
  echo; echo "left running; export KCTL_CREDENTIALS=$KCTL_CREDENTIALS and use bin/kctl; stop with: kill \$(cat $demo/*.pid)"
fi
