# kwickmig — see README.md. Every target starts the servers it needs itself.
GO        ?= go
BIN       := bin/kwickmig
TESTENV   := $(GO) run ./tools/testenv
# Tests that need a server fail instead of skipping when run through make.
export KWICKMIG_TEST_DISALLOW_SKIP := 1

.PHONY: build test vet demo bench clean

build:
	$(GO) build -o $(BIN) ./cmd/kwickmig

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

test: vet build
	$(TESTENV) -- $(GO) test -count=1 -timeout 15m ./...

demo: build
	$(TESTENV) -- ./scripts/demo.sh

bench: build
	$(TESTENV) -fast=false -- ./bench/run.sh

clean:
	rm -rf bin
