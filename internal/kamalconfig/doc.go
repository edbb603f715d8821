// Package kamalconfig reads a Kamal 2 project exactly as Kamal 2.12 does:
// config/deploy.yml (or -c FILE) with its destination overlay, ERB (a Go
// subset, else the local ruby), YAML 1.1 as Psych reads it, validation with
// Kamal's messages plus file:line:column, and a typed model from which it
// derives, per role and host, the container spec the agent runs and the
// kamal-proxy deploy request (gen/kctl/spec/v1). internal/spec renders those
// specs to the argument lists Kamal itself would run; the golden tests
// compare them with Kamal's own output for 121 real projects.
package kamalconfig
