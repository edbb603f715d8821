// Package chaos is kctl's fault suite (issue 13): real controller binaries,
// each in its own Linux network namespace joined by veth pairs to a bridge
// the test creates, a workload of concurrent operators on the deploy lock
// whose history is checked for linearizability with porcupine, and
// invariants checked after healing (the audit identical on every node, no
// gap, no duplicate).
//
// Faults (fault.go): kill -9 and restart, SIGSTOP/SIGCONT, one node
// isolated, a majority/minority split, asymmetric drop, random packet loss
// (iptables statistic), all inside each node's namespace.
//
// Run it as root (make chaos SEED=… RUNS=…); a short run with fixed seeds
// is part of make test. Each scenario's artifacts (controller logs, the
// fault schedule, the history, porcupine's visualization) are kept in a
// temporary directory printed on failure. docs/reliability.md reports the
// runs.
package chaos
