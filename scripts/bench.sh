#!/usr/bin/env bash
# Runs the benchmarks whose results the README reports (`make bench`).
set -euo pipefail
cd "$(dirname "$0")/.."
export KCTL_E2E=1
echo "== internal/raftstore: Raft applies over loopback mutual TLS"
go test -run '^$' -bench BenchmarkApply -benchtime 3s ./internal/raftstore/
echo "== internal/scheduler: planning 100 hosts"
go test -run '^$' -bench . ./internal/scheduler/
echo "== internal/agent/docker: the agent's switch vs the docker CLI, agent memory at rest"
go test -run '^$' -bench 'Switch|AgentRSS' -benchtime 6x ./internal/agent/docker/
echo "== bench/spine: agent sessions against a 3-node controller cluster (BENCH_N, default 100,1000,5000)"
go run ./bench/spine -n "${BENCH_N:-100,1000,5000}"
echo "== bench/deploy: kctl deploy --skip-push to one host vs the docker CLI floor"
go test -run '^$' -bench DeployVsDockerCLI -benchtime 15x ./bench/deploy/
echo "== bench/fleet: one deploy over 100 simulated agents, boot limit 10"
go run ./bench/fleet -n 100 -runs 9
echo "== bench/streams: logs, logs -f and exec cat through two controllers vs the docker CLI"
go test -run '^$' -bench Streams -benchtime 1x ./bench/streams/
echo "== bench/backup: snapshot save and restore, 100k audit entries and 1,000 agents"
go test -run '^$' -bench Backup -benchtime 1x -count 3 ./bench/backup/
echo "== bench/backup: a controller joining a 3-node cluster holding that state"
go test -run '^$' -bench Join -benchtime 1x ./bench/backup/
