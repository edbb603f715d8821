module github.com/kctl-dev/kctl

go 1.26.0

require (
	google.golang.org/protobuf v1.36.12
	gopkg.in/yaml.v3 v3.0.1
)

require gopkg.in/check.v1 v1.0.0-20201130134442-10cb98267c6c // indirect
