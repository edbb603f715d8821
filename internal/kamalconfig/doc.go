// Package kamalconfig reads a Kamal 2 project exactly as Kamal 2.12 does:
// config/deploy.yml (or -c FILE) with its destination overlay, validated
// with Kamal's messages plus file:line:column, into a typed model from
// which it derives, per role and host, the container spec the agent runs
// and the kamal-proxy deploy request (gen/kctl/spec/v1).
//
// The package is split by job:
//
//   - erb renders the ERB templates (a Go subset, else the local ruby);
//   - yaml11 loads YAML 1.1 as Psych does, into Values with positions;
//   - this package validates (validate.go), builds the model (config.go,
//     role.go, accessory.go) and derives specs (derive.go, proxy.go);
//   - internal/spec renders those specs to the argument lists Kamal itself
//     would run; the golden tests compare them with Kamal's own output for
//     121 real projects.
package kamalconfig
