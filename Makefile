# kwickmig — see README.md. Every target starts the servers it needs itself.
GO        ?= go
BIN       := bin/kwickmig
# The version a build reports (kwickmig --version, run records).
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
TESTENV   := $(GO) run ./tools/testenv
# Tests that need a server fail instead of skipping when run through make.
export KWICKMIG_TEST_DISALLOW_SKIP := 1

.PHONY: build test vet demo bench clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/kwickmig

# staticcheck at the version go-partial.tsv lists; installed into GOPATH/bin
# when missing, so `make test` (and .ci/run) works on a fresh machine.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

$(STATICCHECK):
	GOBIN=$(dir $(STATICCHECK)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# vet: go vet, staticcheck (SA1019 deprecations included), the package
# layering (tools/layers: a lower package never imports a higher one) and
# gofmt.
vet: $(STATICCHECK)
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) run ./tools/layers
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

# The packages with concurrent code (uploader pools, parallel listings and
# verification, the store's transport, the fault proxy) run under the race
# detector; the rest without it, which keeps `make test` short. One set of
# servers serves both runs; a failure in either fails the target.
RACE_PKGS  = ./internal/objstore/... ./internal/sync ./internal/verify ./internal/faultproxy ./internal/metrics
OTHER_PKGS = $(shell $(GO) list ./... | grep -v -E '/internal/(objstore|sync|verify|faultproxy|metrics)(/|$$)')

test: vet build
	$(TESTENV) -- sh -c '$(GO) test -count=1 -timeout 15m -race $(RACE_PKGS); race=$$?; \
		$(GO) test -count=1 -timeout 15m $(OTHER_PKGS) && exit $$race'

demo: build
	$(TESTENV) -- ./scripts/demo.sh

bench: build
	$(TESTENV) -fast=false -- ./bench/run.sh

clean:
	rm -rf bin
