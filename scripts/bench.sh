#!/usr/bin/env bash
# Benchmarks (make bench): agent sessions against a 3-node controller cluster.
# Pass agent counts with BENCH_N (default 100,1000,5000).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== agent sessions (bench/spine)"
go run ./bench/spine -n "${BENCH_N:-100,1000,5000}"
