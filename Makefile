# resqued: the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.Version=$(VERSION)
BIN      := bin/resqued
REDIS_URL ?= redis://127.0.0.1:6379/0
QUEUES   ?= *
HANDLERS ?= ./handlers

.PHONY: build handlers run test check vet fmt bench redis clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/resqued

# handlers compiles the example handlers that need it (the Go one).
handlers:
	$(GO) build -o handlers/Checksum ./handlers/src/checksum

# run builds resqued, makes sure a Redis answers on 127.0.0.1:6379 (starting
# one, and installing redis-server with apt-get when missing and root), then
# runs the daemon on ./handlers for every queue, with one log line per job.
run: build handlers redis
	VERBOSE=1 ./$(BIN) --redis "$(REDIS_URL)" --handlers "$(HANDLERS)" --queues '$(QUEUES)'

redis:
	@scripts/ensure-redis.sh

# test checks formatting and vet, then runs every test with the race detector
# against redis-servers the tests start themselves on free ports.
test: check
	$(GO) test -race -count=1 -timeout=600s ./...

check: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needs to run on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

bench:
	$(GO) test -run='^$$' -bench=. -benchtime=2000x ./...

clean:
	rm -rf bin
