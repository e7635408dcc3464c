# Looper: every tool and package is installed from the registries by these targets.
# `make demo` runs the main job; `make test` is what CI runs.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
BUF_VERSION := 1.75.0
BUF := $(TOOLS)/node_modules/.bin/buf
PROTO_FILES := $(wildcard protos/looper/v1/*.proto)
RELEASED_CONTRACT := protos/released/looper.v1.binpb
DATA_DIR ?= data
ZIPKIN_VERSION := 3.5.1
ZIPKIN_JAR := $(TOOLS)/zipkin/zipkin-server-$(ZIPKIN_VERSION)-exec.jar

.DEFAULT_GOAL := setup
include mk/clients.mk
$(CLIENTS_STAMPS)/maven: | $(ZIPKIN_JAR)

.PHONY: setup proto lint breaking release-contract test demo run stop-tracing bench bench-loadgen bench-peers profile bench-memory fuzz mutation clean

setup: $(VENV)/.installed $(BUF) $(ZIPKIN_JAR)

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml protos/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q -e protos/python -e clients/python -e ".[dev]"
	touch $@

$(BUF):
	mkdir -p $(TOOLS)
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

# Zipkin (tracing storage, query API and UI) from Maven Central.
$(ZIPKIN_JAR):
	mvn -q -B dependency:copy -Dartifact=io.zipkin:zipkin-server:$(ZIPKIN_VERSION):jar:exec \
		-DoutputDirectory=$(TOOLS)/zipkin -Dmdep.overWriteIfNewer=true

## proto: regenerate the Python stubs into the client package (committed; a test checks staleness)
proto: $(VENV)/.installed
	$(PY) scripts/protogen.py protos/python/src

## lint: buf lint with the STANDARD rules, buf format, and ruff on the Python code
lint: $(BUF) $(VENV)/.installed
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(VENV)/bin/ruff check .

## breaking: the contract must stay compatible with the last released one
breaking: $(BUF)
	$(BUF) breaking --against $(RELEASED_CONTRACT)

## release-contract: record the current protos as the released contract
release-contract: $(BUF)
	mkdir -p $(dir $(RELEASED_CONTRACT))
	$(BUF) build -o $(RELEASED_CONTRACT)

## test: lint, breaking check and every test suite, the four clients' included
# Test files run on TEST_WORKERS processes, each file whole on one (its module's servers start
# once); most of a test's time is spent waiting on servers it started, so two fit on two cores.
TEST_WORKERS ?= 2
# The installs are mostly downloads from different registries: they run side by side
# (two Maven runs never do: they would share ~/.m2).
test:
	$(MAKE) -j4 --output-sync=target setup setup-clients
	$(MAKE) lint breaking
	LOOPER_REQUIRE_CLIENTS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=10

## demo: start the services on embedded defaults and run the main job (the notification story);
##       `make demo EXAMPLE=<name>` runs another example of examples/ instead (layouts, feed_ranking, bitrate, reengagement)
EXAMPLE ?= notifications
EXAMPLES := $(patsubst examples/%/demo.py,%,$(wildcard examples/*/demo.py))
demo: setup
ifeq ($(EXAMPLE),notifications)
	$(PY) -m examples.notifications.demo --data-dir $(DATA_DIR)/demo
else ifneq ($(filter $(EXAMPLE),$(EXAMPLES)),)
	$(PY) -m examples.$(EXAMPLE).demo --data-dir $(DATA_DIR)/demo-$(EXAMPLE)
else
	@echo "make demo: no example '$(EXAMPLE)'; EXAMPLE is one of: $(EXAMPLES)" >&2; exit 2
endif

## run: prepare $(DATA_DIR)/run for the README quick start (the example's Feast definitions and profiles),
##      then start all services (and the tracing UI) for your own calls; Ctrl-C stops them
run: setup
	$(PY) -m services.tracing.run_local --data-dir $(DATA_DIR)/run

## stop-tracing: stop the tracing backend that `make demo` leaves running
stop-tracing:
	$(PY) -c "from pathlib import Path; from services.tracing.backend import stop_detached; stop_detached(Path('$(DATA_DIR)/tracing'))"

clean:
	rm -rf $(VENV) $(TOOLS) $(DATA_DIR) mutants

## bench: Decide beside the Python gRPC echo (its ceiling) and the peer stack (feast listen + MLServer),
##        interleaved, with DecideBatch, ranking 100 candidates, tracing 1% vs off and --workers 2 vs 1;
##        prints a table and a BENCH RESULT line, writes benchmarks/results/bench-<time>.json (4-5 minutes on 2 cores)
bench: setup bench-loadgen bench-peers
	$(PY) -m benchmarks.bench

## bench-loadgen: the Go load generator (grpc-go from the Go module proxy)
bench-loadgen: $(TOOLS)/bench/loadgen

$(TOOLS)/bench/loadgen: $(wildcard benchmarks/loadgen/*.go) benchmarks/loadgen/go.mod benchmarks/loadgen/go.sum
	mkdir -p $(@D)
	cd benchmarks/loadgen && go vet ./... && go test -count=1 ./... && go build -o $(abspath $@) .

## bench-peers: MLServer 1.7.1 and its CatBoost runtime in their own virtualenv (they conflict with Feast 0.67)
PEERS_VENV := $(TOOLS)/peers
bench-peers: $(PEERS_VENV)/.installed

$(PEERS_VENV)/.installed: benchmarks/peers/requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --disable-pip-version-check -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --disable-pip-version-check -q -r benchmarks/peers/requirements.txt
	touch $@

## fuzz: the property-based fuzz of every RPC, longer than in `make test`
fuzz: setup
	LOOPER_FUZZ_EXAMPLES=$${LOOPER_FUZZ_EXAMPLES:-2000} $(PY) -m pytest -q -p no:randomly tests/contract/test_fuzz.py

## mutation: mutation testing (mutmut, installed by the dev extra) of the decision-logic modules
##           against tests/unit, on a copy in mutants/. Not part of `make test`: it took 69 minutes
##           on 2 cores. The modules are [tool.mutmut] only_mutate in pyproject.toml
##           (policies, decider, decisions log, joiner, outcomes, models encoding/registry/live,
##           durable_log, id_index, validation, blueprint spec, training set, evaluation,
##           pipeline, scheduler); the mutants no test kills go to tests/mutation/survivors.md.
##           Ends with: MUTATION RESULT killed=<n> survived=<n> timeout=<n> score=<pct>%
mutation: $(VENV)/.installed
	$(PY) scripts/mutation.py

## profile: where one Decision process spends its CPU at concurrency 16, sampled by py-spy (the thread
##          holding the GIL); prints the top functions and keeps the collapsed stacks (about 2 minutes;
##          PROFILE_ARGS="--rank" ranks 100 candidates a call instead)
profile: setup bench-loadgen
	$(PY) -m benchmarks.profile $(PROFILE_ARGS)

## bench-memory: each service's resident memory after 0, 100k and 1M decisions (about 5 minutes)
bench-memory: setup
	$(PY) -m benchmarks.memory
