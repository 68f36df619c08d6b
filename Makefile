# The index of what a developer can do. Every target sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast test-e2e lint fmt migrate token broker postgres java bench bench-crypto bench-backbone bench-directory bench-notify bench-referral bench-consent soak events kinds audit-actions compose-check clean lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with pinned constraints

run: $(STAMP) ## run the demo federation (3 members x 4 services); BROKER=kafka runs it on Apache Kafka
	$(BIN)/vardkedja run --broker $(or $(BROKER),tansu)

test: $(STAMP) ## the whole suite (SQLite and PostgreSQL when reachable; Apache Kafka when Java is here, and Tansu)
	$(BIN)/pytest

test-fast: $(STAMP) ## everything except the multi-process end-to-end tests
	$(BIN)/pytest -m "not e2e"

test-e2e: $(STAMP) ## only the end-to-end tests with separate processes
	$(BIN)/pytest -m e2e

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services vardkedja bench

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP) ## apply every service's migrations for the configured member
	$(BIN)/vardkedja migrate

token: $(STAMP) ## mint a development token (ORG=... SCOPES=...)
	$(BIN)/vardkedja token --org $(or $(ORG),232100-0065) --scope "$(or $(SCOPES),directory:read directory:write)"

broker: $(STAMP) ## start a broker in the foreground (BROKER=tansu, the embedded one, or kafka)
	$(BIN)/vardkedja broker --engine $(or $(BROKER),tansu)

postgres: ## install (Debian), start and set up a local PostgreSQL for the tests (root)
	bash deploy/dev/postgres.sh

java: ## install Java and Maven (Debian) for the Apache Kafka node the tests start (root)
	bash deploy/dev/java.sh

# Benchmarks and soak run on Apache Kafka unless BROKER= says otherwise (the demo's default
# is Tansu: see run).
BENCH_BROKER = $(or $(BROKER),kafka)

bench: $(STAMP) ## every workload at its fixed rate with the floor, on Apache Kafka (BROKER=tansu: Tansu): bench/results/*.json, *.png, summary.md, README figures
	$(BIN)/python -m bench.run --broker $(BENCH_BROKER)
	$(BIN)/python -m bench.crypto

bench-crypto: $(STAMP) ## CPU per event to sign, verify, seal and open (ADR 0020): bench/results/crypto.json
	$(BIN)/python -m bench.crypto --events $(or $(EVENTS),5000)

bench-backbone: $(STAMP) ## backbone benchmark alone: outbox -> Kafka -> inbox at a fixed rate, with the floor (BROKER=tansu)
	$(BIN)/python -m bench.backbone --rate $(or $(RATE),200) --seconds $(or $(SECONDS),30) --broker $(BENCH_BROKER)

bench-directory: $(STAMP) ## directory benchmark: replica rebuild and search over 20,000 synthetic units (BROKER=tansu)
	$(BIN)/python -m bench.directory --units $(or $(UNITS),20000) --rate $(or $(RATE),200) --seconds $(or $(SECONDS),30) --broker $(BENCH_BROKER)

bench-notify: $(STAMP) ## notify benchmark: fan-out latency (inbox row -> signed webhook) and worker memory at a fixed rate (BROKER=tansu)
	$(BIN)/python -m bench.notify --rate $(or $(RATE),200) --seconds $(or $(SECONDS),20) --broker $(BENCH_BROKER)

bench-referral: $(STAMP) ## referral benchmark: two members as processes, referrals at a fixed rate (delivery latency, lost, floor, RSS; BROKER=tansu)
	$(BIN)/python -m bench.referral --rate $(or $(RATE),200) --seconds $(or $(SECONDS),60) --broker $(BENCH_BROKER)

bench-consent: $(STAMP) ## consent benchmark: decisions over 100,000 consents at a fixed rate, withdrawal propagation to the other members (BROKER=tansu)
	$(BIN)/python -m bench.consent --rate $(or $(RATE),1000) --seconds $(or $(SECONDS),20) --consents $(or $(CONSENTS),100000) --broker $(BENCH_BROKER)

soak: $(STAMP) ## sustained referrals between two members (16 processes) on Apache Kafka: zero loss, latency and memory over time (MINUTES, RATE, BROKER=tansu)
	$(BIN)/python -m tests.reliability.soak --minutes $(or $(MINUTES),5) --rate $(or $(RATE),20) --broker $(BENCH_BROKER)

events: $(STAMP) ## regenerate the published event catalogue (docs/events.asyncapi.json)
	$(BIN)/vardkedja events > docs/events.asyncapi.json

kinds: $(STAMP) ## regenerate the kinds and their information categories (docs/kinds.md)
	$(BIN)/vardkedja kinds > docs/kinds.md

audit-actions: $(STAMP) ## regenerate the audit action codes (docs/audit-actions.md)
	$(BIN)/vardkedja audit-actions > docs/audit-actions.md

compose-check: ## validate docker-compose.yml without a Docker engine (installs Debian's docker-compose when missing)
	bash deploy/dev/compose.sh
	docker-compose -f docker-compose.yml config -q

lock: ## regenerate constraints.txt from a fresh resolve
	rm -rf /tmp/vk-lock && $(PYTHON) -m venv /tmp/vk-lock
	/tmp/vk-lock/bin/pip install --quiet --upgrade pip
	/tmp/vk-lock/bin/pip install --quiet -e '.[dev]'
	/tmp/vk-lock/bin/pip freeze --exclude-editable | grep -v '^vardkedja' > constraints.txt

clean: ## remove the venv and local state
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
