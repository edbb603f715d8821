// Package e2e drives the real controller, agent and kctl binaries as
// processes on loopback, with the real Docker engine, a real registry and
// the kamal-proxy stand-in. The tests run when KCTL_E2E=1 or without -short.
package e2e
