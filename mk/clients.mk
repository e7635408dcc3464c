# Polyglot clients (Go, Java, TypeScript) generated from protos/looper/v1, and their
# cross-language contract suite. Included from the top-level Makefile; also usable alone:
#   make -f mk/clients.mk clients
# Every tool comes from a registry: protoc from grpcio-tools in the venv, the Go plugins from
# the Go module proxy (into $(TOOLS)/go/bin), ts-proto and tsc from npm, protoc and
# protoc-gen-grpc-java from Maven Central (the Java stubs are generated at build time).

PY ?= .venv/bin/python
TOOLS ?= .tools

CLIENTS_STAMPS := $(TOOLS)/stamps
CLIENTS_GOBIN := $(abspath $(TOOLS))/go/bin
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
CLIENTS_PROTOS := $(sort $(wildcard protos/looper/v1/*.proto))
# Output folders; the staleness test regenerates into temporary ones.
CLIENTS_GO_OUT ?= clients/go
CLIENTS_TS_GEN ?= clients/typescript/src/gen
# protoc and its include folders: the well-known types of grpcio-tools, google/rpc of
# googleapis-common-protos (for the TypeScript BadRequest decoder).
CLIENTS_PROTOC = $(PY) -m grpc_tools.protoc -Iprotos \
	-I$$($(PY) -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))') \
	-I$$($(PY) -c 'import google.rpc.status_pb2 as m, os; print(os.path.dirname(os.path.dirname(os.path.dirname(m.__file__))))')
TS_PROTO_OPTS := outputServices=grpc-js,env=node,esModuleInterop=true,importSuffix=.js,forceLong=number,useDate=true

.PHONY: clients clients-python clients-go clients-typescript clients-java setup-clients test-clients

## clients: regenerate the Python, Go and TypeScript stubs (committed) and build the Java ones
clients: clients-python clients-go clients-typescript clients-java

clients-python:
	$(PY) scripts/protogen.py protos/python/src

clients-go: $(CLIENTS_STAMPS)/go-plugins
	mkdir -p $(CLIENTS_GO_OUT)/looperpb/v1
	rm -f $(CLIENTS_GO_OUT)/looperpb/v1/*.pb.go
	$(CLIENTS_PROTOC) \
		--plugin=protoc-gen-go=$(CLIENTS_GOBIN)/protoc-gen-go \
		--plugin=protoc-gen-go-grpc=$(CLIENTS_GOBIN)/protoc-gen-go-grpc \
		--go_out=$(CLIENTS_GO_OUT) --go_opt=module=github.com/looper-ml/looper/clients/go \
		--go-grpc_out=$(CLIENTS_GO_OUT) --go-grpc_opt=module=github.com/looper-ml/looper/clients/go \
		$(CLIENTS_PROTOS)

clients-typescript: $(CLIENTS_STAMPS)/npm
	rm -rf $(CLIENTS_TS_GEN)
	mkdir -p $(CLIENTS_TS_GEN)
	$(CLIENTS_PROTOC) \
		--plugin=protoc-gen-ts_proto=clients/typescript/node_modules/.bin/protoc-gen-ts_proto \
		--ts_proto_out=$(CLIENTS_TS_GEN) --ts_proto_opt=$(TS_PROTO_OPTS) \
		$(CLIENTS_PROTOS) google/rpc/error_details.proto google/rpc/status.proto

clients-java: $(CLIENTS_STAMPS)/maven
	cd clients/java && mvn -B -q -o generate-sources compile

## setup-clients: install the code generators and each client's dependencies (idempotent)
setup-clients: $(if $(VENV),$(VENV)/.installed) $(CLIENTS_STAMPS)/go-plugins $(CLIENTS_STAMPS)/go-mod $(CLIENTS_STAMPS)/npm $(CLIENTS_STAMPS)/maven

$(CLIENTS_STAMPS)/go-plugins: mk/clients.mk
	mkdir -p $(CLIENTS_GOBIN) $(@D)
	GOBIN=$(CLIENTS_GOBIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CLIENTS_GOBIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	touch $@

$(CLIENTS_STAMPS)/go-mod: clients/go/go.mod clients/go/go.sum
	mkdir -p $(@D)
	cd clients/go && go mod download && go vet ./... && go test -count=1 -run '^$$' ./... >/dev/null
	touch $@

$(CLIENTS_STAMPS)/npm: clients/typescript/package.json clients/typescript/package-lock.json
	mkdir -p $(@D)
	cd clients/typescript && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# Resolves every plugin and dependency the offline test run needs (the unit tests run; the
# contract tests skip without services).
$(CLIENTS_STAMPS)/maven: clients/java/pom.xml
	mkdir -p $(@D)
	cd clients/java && mvn -B -q test
	touch $@

## test-clients: the cross-language contract suite against real services
test-clients: setup-clients
	LOOPER_REQUIRE_CLIENTS=1 $(PY) -m pytest -q tests/clients
