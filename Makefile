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

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: build ## Start the standalone server on its embedded defaults (ws :8000/ws, http :8080, data in var/standalone).
	$(BIN) standalone --data-dir var/standalone $(RUN_ARGS)

.PHONY: build
build: ## Build bin/imgate.
	$(GO) build -o $(BIN) ./cmd/imgate

.PHONY: test
test: ## Start the services the tests need (scripts/services.sh), vet, run every test with -race, then the broker-restart test alone.
	scripts/services.sh up
	$(GO) vet ./...
	scripts/test.sh -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	@# It stops and starts the shared RabbitMQ, so it runs after everything else, on its own.
	scripts/test.sh -race -count=1 -timeout 5m -tags brokerrestart -run TestClusterBrokerRestart ./cmd/imgate/

.PHONY: services
services: ## Start (or install) ZooKeeper, RabbitMQ, Redis and PostgreSQL on 127.0.0.1.
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
