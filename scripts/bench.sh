#!/usr/bin/env bash
<<<<<<< HEAD
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
=======
# Benchmarks (make bench): agent sessions against a 3-node controller cluster.
# Pass agent counts with BENCH_N (default 100,1000,5000).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== agent sessions (bench/spine)"
go run ./bench/spine -n "${BENCH_N:-100,1000,5000}"
>>>>>>> spine
