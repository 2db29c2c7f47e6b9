# runqueue — the two commands a newcomer needs:
#   make run    install what is missing, start local Redis + PostgreSQL, build and run runqueued
#   make test   the same set-up, then every check and test (what .ci/run calls)
# Other targets: make setup | services | stop | build | test-unit | bench (bench-ping, bench-memory, bench-cycle, bench-expiry, bench-churn, bench-rebuild, bench-compare; see bench/README.md) | gen-proto | clean

SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)
SERVICES := scripts/services
SERVICE_ENV = eval "$$($(SERVICES) env)"

.PHONY: run test setup services stop build build-release check-generated test-swift test-unit test-python bench bench-ping bench-memory bench-cycle bench-expiry bench-churn bench-rebuild bench-compare gen-proto clean

run: setup services build-release
	@$(SERVICE_ENV); echo "runqueued on $${RUNQUEUE_LISTEN:-127.0.0.1:7420} (Ctrl-C stops it; 'make stop' stops Redis and PostgreSQL)"; \
	  exec .build/release/runqueued

test: setup services check-generated test-swift test-python

setup:
	@$(SERVICES) install

services:
	@$(SERVICES) start

stop:
	@$(SERVICES) stop

build:
	swift build

build-release:
	swift build -c release --product runqueued

# The committed protoc-c / protoc output must match proto/.
check-generated:
	scripts/gen-proto --check

# Builds everything (failing on any compiler warning in our code), then runs
# the suites side by side: every test that starts an engine has a redis-server
# and a database of its own (Tests/TestSupport/OwnDatabase.swift) and waits on
# conditions, not on the clock. The width bounds how many tests run at once on
# these 2-core machines (each may start a redis-server and a runqueued).
TEST_WIDTH ?= 6
test-swift:
	@set -o pipefail; swift build --build-tests 2>&1 | tee .build-warnings.log; \
	  if grep -E '^/.*(Sources|Tests|clients)/.*warning:' .build-warnings.log; then echo "compiler warnings are errors here"; rm -f .build-warnings.log; exit 1; fi; \
	  rm -f .build-warnings.log
	@$(SERVICE_ENV); export RUNQUEUE_TEST_REDIS_URL=$$RUNQUEUE_REDIS_URL RUNQUEUE_TEST_DATABASE_URL=$$RUNQUEUE_DATABASE_URL; \
	  timeout --kill-after=30 1200 swift test --skip-build --experimental-maximum-parallelization-width $(TEST_WIDTH) 2>&1 \
	  | grep -vE '^(◇|􀟈)' ; exit $${PIPESTATUS[0]}

# The suites that need no service (tagged apart from the integration suites,
# Tests/TestSupport/Tags.swift): seconds, with nothing running.
test-unit:
	swift build --build-tests
	RUNQUEUE_TEST_UNIT_ONLY=1 swift test --skip-build 2>&1 | grep -vE '^(◇|􀟈)' ; exit $${PIPESTATUS[0]}

test-python: build
	@$(SERVICE_ENV); cd clients/python && python3 -m pytest -q tests

# Benchmarks print their figures next to a baseline measured in the same run (bench/README.md).
bench: bench-ping bench-memory bench-cycle bench-expiry bench-churn bench-rebuild bench-compare

bench-ping: setup services build-release
	swift build -c release --product runqueue-bench-ping
	.build/release/runqueue-bench-ping

# Redis bytes per pending run; starts its own private redis-server.
bench-memory: setup
	swift build -c release --product runqueue-bench-memory
	.build/release/runqueue-bench-memory

# Runs/s restored after Redis lost everything under a running server, beside
# the per-shard rebuild it replaced; its own redis-server and a new database.
bench-rebuild: setup services build-release
	swift build -c release --product runqueue-bench-rebuild
	@$(SERVICE_ENV); .build/release/runqueue-bench-rebuild

# Full-cycle runs/s through runqueued on the local Redis and PostgreSQL.
bench-cycle: setup services build-release
	swift build -c release --product runqueue-bench-cycle
	@$(SERVICE_ENV); .build/release/runqueue-bench-cycle

# Expiry lateness and drain rate through runqueued, on its own redis-server and a
# fresh database on the local PostgreSQL; the reference's 1 s poller as baseline.
bench-expiry: setup services build-release
	swift build -c release --product runqueue-bench-expiry
	@$(SERVICE_ENV); .build/release/runqueue-bench-expiry

# Expiry lateness of a subscriber that joins after subscribers came and went, beside one
# on a fresh server; each server on its own redis-server and a fresh database.
bench-churn: setup services build-release
	swift build -c release --product runqueue-bench-churn
	@$(SERVICE_ENV); .build/release/runqueue-bench-churn

# Side by side with the reference layout, BullMQ and RabbitMQ (installs the peers if missing,
# runs each on private ports by pid); writes bench/RESULTS.md. About 5 minutes on 2 cores.
bench-compare: setup services build-release
	swift build -c release --product runqueue-load
	swift build -c release --product runqueue-bench-memory
	swift build -c release --product runqueue-bench-cycle
	swift build -c release --product runqueue-bench-scale
	swift build -c release --product runqueue-bench-expiry
	@$(SERVICE_ENV); python3 bench/compare.py

gen-proto:
	scripts/gen-proto

clean:
	rm -rf .build
