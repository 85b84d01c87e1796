# gatehouse: the commands a developer and CI use. Every target works on a
# fresh Debian machine with Go installed (but `image`, which needs a Docker
# engine); `make test` installs redis-server, nginx, Caddy and helm when they
# are missing and it runs as root.

GO       ?= go
FUZZTIME ?= 10s
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
IMAGE    ?= ghcr.io/gatehouse-authz/gatehouse:$(VERSION)
# The product's module (.), the benchmarks' (bench) and the deployment
# checks' (deploycheck): each has its own go.mod, so that the product's lists
# only what the product uses, and `./...` in one stops at the others.
MODULES  := . bench deploycheck

.PHONY: help run test deps vet fmt-check build image fuzz bench load chaos proto proto-check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

run: ## run the server in development mode (random secret, demo users)
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/gatehouse serve --dev

test: deps ## the whole test suite with the race detector, every module (needs redis-server)
	@set -e; for m in $(MODULES); do echo "== go test ($$m)"; (cd $$m && $(GO) test -race -count=1 ./...); done

deps: ## install what the tests need (redis-server) when missing
	scripts/ensure-deps.sh

vet: ## go vet, every module
	@set -e; for m in $(MODULES); do echo "== go vet ($$m)"; (cd $$m && $(GO) vet ./...); done

fmt-check: ## fail when a file is not gofmt-formatted
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

build: ## build bin/gatehouse with the version and commit stamped in
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/gatehouse ./cmd/gatehouse

image: ## build the container image (needs a Docker engine)
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

fuzz: ## run every fuzz target for FUZZTIME (default 10s) each
	scripts/fuzz.sh $(FUZZTIME)

bench: ## Go benchmarks, -count 6, summarised with benchstat (bin/bench/)
	scripts/bench.sh

load: ## side-by-side load run vs a do-nothing server (docs/bench/results.*)
	scripts/load.sh

chaos: ## chaos run: Redis stalled, killed, flushed, failed over under load (2 min; CHAOS_SHORT=1: 40 s)
	scripts/chaos.sh

proto: ## regenerate the Go code of proto/ with buf (pinned in tools/go.mod)
	scripts/proto.sh

proto-check: ## fail when proto/ fails buf lint or its generated code is stale
	scripts/proto-check.sh

clean: ## remove build output
	rm -rf bin
