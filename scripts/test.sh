#!/usr/bin/env bash
# Runs go test with the addresses of the services started by scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export IMGATE_TEST_ZK="${IMGATE_TEST_ZK:-127.0.0.1:2181}"
export IMGATE_TEST_AMQP="${IMGATE_TEST_AMQP:-amqp://guest:guest@127.0.0.1:5672/}"
export IMGATE_TEST_REDIS="${IMGATE_TEST_REDIS:-127.0.0.1:6379}"
export IMGATE_TEST_PG="${IMGATE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
exec go test "$@"
