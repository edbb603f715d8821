# kctl: Kamal-style zero-downtime Docker deploys without SSH.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

BUF_VERSION := v1.47.2
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
BIN := $(CURDIR)/.tmp/bin
export PATH := $(BIN):$(PATH)

.PHONY: help
help: ## Describe useful make targets
	@grep -E '^[a-z.-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "%-16s %s\n", $$1, $$2}'

# VERSION is stamped into every binary (internal/version): `kctl version`,
# the agent's Hello, `kctl agents` and `kctl cluster status` show it.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/kctl-dev/kctl/internal/version.Version=$(VERSION)

.PHONY: build
build: ## Build controller, agent and kctl into bin/, stamped with VERSION
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

.PHONY: test
test: ## Run every test: unit, real Docker, real binaries, race detector
	./scripts/test.sh

.PHONY: test-upgrade
test-upgrade: ## Rolling upgrade from test/upgrade/BASE (builds that commit; several minutes)
	KCTL_UPGRADE=1 go test -count=1 -timeout 20m -run 'TestE2E_RollingUpgradeFromBase' -v ./test/e2e/

.PHONY: lint
lint: ## gofmt, go vet, buf lint and format
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet ./...
	cd proto && $(BIN)/buf lint && $(BIN)/buf format -d --exit-code

.PHONY: proto
proto: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## Regenerate gen/ from proto/
	cd proto && buf generate

.PHONY: checkgenerate
checkgenerate: proto ## Fail if the generated code is stale
	@if [ -n "$$(git status --porcelain -- gen proto)" ]; then \
	  git status --porcelain -- gen proto; echo "gen/ is stale: run make proto and commit"; exit 1; fi

# The chaos suite (test/chaos, root only): RUNS scenarios from seed SEED,
# each seed's fault kind drawn from it unless KIND is set; REPORT appends a
# JSON line per scenario to that file (docs/reliability.md).
SEED ?= 0
RUNS ?= 8
KIND ?=
DURATION ?= 15s
REPORT ?=
.PHONY: chaos
chaos: ## Replay fault scenarios: make chaos SEED=N RUNS=M [KIND=isolate] [DURATION=15s] [REPORT=file]
	KCTL_E2E=1 KCTL_CHAOS_SEED=$(SEED) KCTL_CHAOS_RUNS=$(RUNS) KCTL_CHAOS_KIND=$(KIND) \
	  KCTL_CHAOS_DURATION=$(DURATION) KCTL_CHAOS_REPORT=$(if $(REPORT),$(abspath $(REPORT))) \
	  go test -count=1 -v -run '^TestChaos$$' -timeout 0 ./test/chaos/

.PHONY: bench
bench: ## Run the benchmarks and print their tables
	./scripts/bench.sh

.PHONY: bench-streams
bench-streams: ## Benchmark logs, logs -f and exec through two controllers vs the docker CLI
	KCTL_E2E=1 go test -run '^$$' -bench Streams -benchtime 1x ./bench/streams/

.PHONY: package
package: ## Build .deb packages of controller, agent and kctl (amd64, arm64) into dist/
	VERSION=$(VERSION) ./scripts/package.sh

.PHONY: images
images: ## Build FROM-scratch container images of controller and agent (kctl/controller, kctl/agent)
	VERSION=$(VERSION) ./scripts/images.sh

.PHONY: demo
demo: ## Quick start: a controller, an agent and a demo deploy on the local Docker engine
	./scripts/demo.sh

$(BIN)/buf: Makefile
	GOBIN=$(BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go: Makefile
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc: Makefile
	GOBIN=$(BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
