#!/usr/bin/env bash
# The whole test suite: starts the real Kafka broker the Kafka tests need (fetching its
# jars the first time), runs every test, and stops the broker it started.
set -euo pipefail
cd "$(dirname "$0")/.."

started=0
if ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh start >/dev/null
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then scripts/kafka.sh stop --wipe >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

export GOATVIEW_KAFKA_BROKERS="${GOATVIEW_KAFKA_BROKERS:-127.0.0.1:${GOATVIEW_KAFKA_PORT:-9092}}"
cargo test --all-targets "$@"
