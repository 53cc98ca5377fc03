# credbroker — build, generate, test.
#
# Everything but the first `tools`/`googleapis` run works offline: tool
# versions are pinned in tools/go.mod, googleapis protos come from the Go
# module cache, and buf uses local plugins only.

SHELL     := /bin/bash
GO        ?= go
BIN       := $(CURDIR)/bin
TOOLS_MOD := tools/go.mod
GOOGLEAPIS_MOD := github.com/grpc-ecosystem/grpc-gateway/v2@v2.1.0
GOOGLEAPIS_DIR := third_party/googleapis/google/api
export PATH := $(BIN):$(PATH)

.PHONY: node node-stop image all tools googleapis registry crane helm testbin generate check-generated build run test bench bench-go lint fmt clean

all: generate lint build test

$(BIN)/.tools: $(TOOLS_MOD) tools/go.sum
	cd tools && GOBIN=$(BIN) $(GO) install tool
	@touch $@
tools: $(BIN)/.tools

# The google/api protos that our .proto files import, materialised from the
# module cache into a git-ignored folder (buf cannot read outside its
# workspace, and the BSR is not reachable from every build machine).
$(GOOGLEAPIS_DIR)/.stamp:
	@d=$$(cd tools && $(GO) mod download -json $(GOOGLEAPIS_MOD) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
	  test -n "$$d" && mkdir -p $(GOOGLEAPIS_DIR) && \
	  install -m 0644 $$d/third_party/googleapis/google/api/annotations.proto \
	    $$d/third_party/googleapis/google/api/http.proto \
	    $$d/third_party/googleapis/google/api/field_behavior.proto $(GOOGLEAPIS_DIR)/
	@touch $@
googleapis: $(GOOGLEAPIS_DIR)/.stamp

generate: tools googleapis
	find proto -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' | xargs rm -f
	buf lint
	buf format --diff --exit-code proto
	buf generate
	cp admission/policy.yaml charts/credbroker/files/admission-policy.yaml
	cp admission/guard.yaml charts/credbroker/files/admission-guard.yaml
	cp admission/tokens.yaml charts/credbroker/files/admission-tokens.yaml

# Fails when the committed generated code differs from what the protos give.
check-generated: generate
	git diff --exit-code -- proto charts/credbroker/files
	@test -z "$$(git status --porcelain -- proto charts/credbroker/files)" || { git status --porcelain -- proto charts/credbroker/files; exit 1; }

# A real CNCF Distribution registry for the prober's tests, from its own
# module so its dependencies stay out of go.mod.
$(BIN)/registry: hack/registry/go.mod hack/registry/go.sum hack/registry/main.go
	cd hack/registry && CGO_ENABLED=0 $(GO) build -o $(BIN)/registry .
registry: $(BIN)/registry

# crane, the pull client of the end-to-end suite, built from its own module.
CRANE_VERSION := v0.22.1
$(BIN)/crane-$(CRANE_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION)
	@touch $@
crane: $(BIN)/crane-$(CRANE_VERSION)

# helm, for linting, rendering and dry-run applying charts/credbroker.
HELM_VERSION := v3.22.0
$(BIN)/helm-$(HELM_VERSION):
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@touch $@
helm: $(BIN)/helm-$(HELM_VERSION)

# kube-apiserver, etcd and kubectl built from the Go module proxy, cached in
# ~/.cache/credbroker/testbin (about 10 minutes the first time on 2 cores).
testbin:
	@hack/testbin.sh >/dev/null

# A single-node cluster (kubelet, containerd, control plane) on this machine,
# as root: `make node` prints its KUBECONFIG; docs/operations.md.
node: testbin registry crane
	@hack/node.sh start
node-stop:
	@hack/node.sh stop

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/credbroker ./cmd/credbroker-credential-provider

# credbroker's container image, built without a container engine and pushed
# with crane: make image IMAGE=localhost:5000/credbroker/credbroker:dev
IMAGE ?= localhost:5000/credbroker/credbroker:dev
image: crane
	CRANE=$(BIN)/crane hack/image.sh $(IMAGE)

# The main job on embedded defaults: bbolt in a temp dir, a dev encryption
# key, the GitHub emulator, and a local kube-apiserver (or $$KUBECONFIG).
run: build registry crane
	hack/run-dev.sh

# Unit tests, the GitHub emulator, a real registry and a real kube-apiserver,
# and the end-to-end suite (e2e/) with crane pulling through synced Secrets.
# The end-to-end suite runs verbosely, so that the log shows each scenario's
# real pull results. Each run has an explicit timeout with room: on a fresh
# machine (empty caches) the e2e package alone took over 10 minutes, go
# test's default, and CI's whole budget is 90. make test is a complete run
# (CREDBROKER_QUICK cleared): a test missing an asset fails, naming it.
# hack/testreport prints go test's output from -json and ends with how many
# tests skipped; the exit status is go test's.
TEST_ENV = KUBEBUILDER_ASSETS=$$(hack/testbin.sh) CREDBROKER_REGISTRY_BIN=$(BIN)/registry \
	CREDBROKER_CRANE_BIN=$(BIN)/crane CREDBROKER_HELM_BIN=$(BIN)/helm CREDBROKER_QUICK= CGO_ENABLED=1
test: registry crane helm testbin
	set -o pipefail; { $(TEST_ENV) $(GO) test -json -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e$$) && \
	  $(TEST_ENV) $(GO) test -json -race -count=1 -timeout 40m ./e2e/; } 2>&1 | $(GO) run ./hack/testreport -v $$($(GO) list ./e2e)

# make bench, about 35 minutes: the scale harness (e2e/scale_test.go: 1 to
# 10,000 namespaces against a real kube-apiserver, in one process on both
# CPUs); then, with this machine's harness held to CPU 0 and what it measures
# to CPU 1 (taskset), the request path of the built binary
# (e2e/requestpath_test.go) and the side-by-side with External Secrets
# Operator (e2e/sidebyside_test.go, ESO built by hack/eso.sh). docs/performance.md
# has the figures. `make bench-go` runs the Go micro-benchmarks.
PIN_HARNESS = $(if $(shell command -v taskset),-exec 'taskset --cpu-list 0')
bench: testbin
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) CREDBROKER_SCALE=1 $(GO) test -run '^TestScale$$' -v -count=1 -timeout 30m ./e2e/
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) CREDBROKER_SCALE=1 CREDBROKER_ESO=$$(hack/eso.sh) \
		$(GO) test $(PIN_HARNESS) -run '^(TestRequestPath|TestSideBySideWithESO)$$' -v -count=1 -timeout 40m ./e2e/

bench-go: testbin
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) $(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m ./...

lint: tools googleapis helm
	$(GO) vet ./...
	golangci-lint run ./...
	buf lint
	helm lint --strict charts/credbroker --set tls.secretName=credbroker-tls

fmt: tools
	buf format -w proto
	golangci-lint fmt ./...

clean:
	rm -rf $(BIN) third_party
