# imgate — run `make help` for the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO            ?= go
BIN           := bin/imgate
GOLANGCI      := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
FUZZTIME      ?= 30s
RUN_ARGS      ?=
TEST_TIMEOUT  ?= 15m
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT        ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
COMMIT_TIME   ?= $(shell git log -1 --format=%cI 2>/dev/null)
DIST_DIR      := dist
DIST_ARCHES   := amd64 arm64

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: build ## Start the standalone server on its embedded defaults (ws :8000/ws, http :8080, data in var/standalone).
	$(BIN) standalone --data-dir var/standalone $(RUN_ARGS)

.PHONY: build
build: ## Build bin/imgate.
	$(GO) build -o $(BIN) ./cmd/imgate

.PHONY: dist
dist: ## Static release binaries (CGO_ENABLED=0) for linux/amd64 and linux/arm64 in dist/, stamped with VERSION and the commit, plus SHA256SUMS.
	rm -rf $(DIST_DIR)
	mkdir -p $(DIST_DIR)
	for arch in $(DIST_ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath \
			-ldflags "-s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.commitTime=$(COMMIT_TIME)" \
			-o $(DIST_DIR)/imgate-$(VERSION)-linux-$$arch ./cmd/imgate; \
	done
	cd $(DIST_DIR) && sha256sum imgate-* > SHA256SUMS
	@# The binary of this machine's architecture must run and say its version.
	$(DIST_DIR)/imgate-$(VERSION)-linux-$$($(GO) env GOARCH) version
	@cat $(DIST_DIR)/SHA256SUMS

.PHONY: test
test: ## Start the services the tests need and install Chromium and nginx (scripts/services.sh), vet, run every test with -race (browser tests included; screenshots in var/screenshots), then the broker-restart test alone.
	scripts/services.sh up
	$(GO) vet ./...
	scripts/test.sh -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	@# It stops and starts the shared RabbitMQ, so it runs after everything else, on its own.
	scripts/test.sh -race -count=1 -timeout 5m -tags brokerrestart -run TestClusterBrokerRestart ./cmd/imgate/

.PHONY: services
services: ## Start (or install) ZooKeeper, RabbitMQ, Redis and PostgreSQL on 127.0.0.1; install Chromium and nginx (browser and TLS proxy tests).
	scripts/services.sh up

.PHONY: bench
bench: ## Short comparison (< 5 min): imgate vs gorilla baseline and Centrifugo (if installed), pinned; prints the table.
	scripts/bench-compare.sh --quick

.PHONY: lint
lint: ## Run golangci-lint (pinned v2) with .golangci.yml.
	$(GO) run $(GOLANGCI) run ./...

.PHONY: fmt
fmt: ## Format the code (gofmt -s).
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s).
	scripts/fuzz.sh $(FUZZTIME)

.PHONY: cluster
cluster: ## Start a local cluster: services, 2 savers, 3 nodes (--port auto), dispatcher on 127.0.0.1:8080 (var/cluster).
	scripts/cluster.sh up

.PHONY: cluster-status
cluster-status: ## Show the local cluster's processes and the nodes with their online counts.
	scripts/cluster.sh status

.PHONY: cluster-down
cluster-down: ## Stop the local cluster.
	scripts/cluster.sh down
