# resqued: the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.Version=$(VERSION)
# urfave/cli's man and markdown generators (and blackfriday) are never
# used; leaving them out saves every process ~0.5 MiB (issue 14).
# bench/resqued-bench/main.go builds with the same tags.
TAGS     := urfave_cli_no_docs
BIN      := bin/resqued
REDIS_URL ?= redis://127.0.0.1:6379/0
QUEUES   ?= *
HANDLERS ?= ./handlers

.PHONY: build handlers run test check vet fmt tracked redis-imports hooks screenshots bench redis clean faults fuzz

build:
	$(GO) build -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/resqued

# handlers compiles the example handlers that need it (the Go one).
handlers:
	$(GO) build -o handlers/Checksum ./handlers/.src/checksum
	$(GO) build -o handlers/Primes ./handlers/.src/primes
	$(GO) build -o handlers/Double.persistent ./handlers/.src/double

# run builds resqued, makes sure a Redis answers on 127.0.0.1:6379 (starting
# one, and installing redis-server with apt-get when missing and root), then
# runs the daemon on ./handlers for every queue, with one log line per job.
# Once its worker is registered it logs "resqued is ready: ..." with the
# command that gives it a job from another terminal.
run: build handlers redis
	VERBOSE=1 ./$(BIN) --redis "$(REDIS_URL)" --handlers "$(HANDLERS)" --queues '$(QUEUES)'

redis:
	@scripts/ensure-redis.sh

# test checks formatting and vet, then runs every test with the race detector
# against redis-servers the tests start themselves on free ports. Four
# packages at once (-p 4), not one per core: most of the time goes to
# waiting on daemons, handlers and timeouts, and e2e alone is the longest.
# Each test that cannot run on this machine says why in bin/skipped.txt
# (internal/testskip), printed at the end: go test shows nothing of a
# passing package, its skips included.
test: check
	@mkdir -p bin && rm -f bin/skipped.txt
	@RESQUED_SKIP_LOG=$(CURDIR)/bin/skipped.txt $(GO) test -race -count=1 -p 4 -timeout=600s ./...; rc=$$?; \
	if [ -s bin/skipped.txt ]; then echo "Tests that could not run here:"; sed 's/^/  SKIP /' bin/skipped.txt; fi; exit $$rc

check: fmt vet redis-imports tracked

# tracked fails when git tracks build output (an executable, an archive)
# or a docs image no document uses. `make hooks` runs the same check on
# every commit, on what is staged.
tracked:
	@scripts/check-tracked.sh

hooks:
	printf '#!/bin/sh\nexec scripts/check-tracked.sh --staged\n' > .git/hooks/pre-commit
	chmod +x .git/hooks/pre-commit

# screenshots retakes the dashboard pictures the README shows, with the
# browser test (headless Chromium) on its demo data.
screenshots:
	rm -rf bin/screenshots && mkdir -p bin/screenshots
	RESQUED_ARTIFACTS=$(CURDIR)/bin/screenshots $(GO) test -count=1 -run '^TestBrowser_Dashboard$$' ./e2e/
	cd bin/screenshots && cp overview.png overview-week.png overview-dark.png queues.png classes.png workers.png failed.png ../../docs/screenshots/

# redis-imports fails when a package other than pkg/queue, pkg/status and
# pkg/redisurl imports the Redis client (tests and test helpers excepted):
# pkg/queue is the one door to Redis.
redis-imports:
	@scripts/check-redis-imports.sh

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needs to run on:"; echo "$$out"; exit 1; fi

# go's ./... skips dot directories: the Go example handlers are vetted by name.
vet:
	$(GO) vet ./... $$(find handlers/.src -name '*.go' -exec dirname {} \; | sort -u | sed 's|^|./|')

# faults runs the long fault-injection suite (make test runs a short,
# seeded form of the same scenarios): every job kind, exec and persistent,
# tracked and untracked, under kill -9, Redis restarts and SIGSTOP, every
# signal, network faults through internal/faultproxy, three schedulers and
# two workers sharing an id, and five kill -9 of a Sentinel master with and
# without --min-replicas. It prints the accounting table per scenario, and
# the failover table (seconds to the switch and to work resuming, losses).
# FAULT_JOBS and FAULT_ROUNDS scale the short form (300 and 4); FAULT_SEED
# picks the fault schedule. Scenarios named Defect<N>_... fail until that
# known defect is fixed.
faults:
	FAULT_JOBS=$${FAULT_JOBS:-2000} FAULT_ROUNDS=$${FAULT_ROUNDS:-12} FAULT_SEED=$${FAULT_SEED:-1} $(GO) test -race -count=1 -timeout=30m -v -run 'TestFaults|TestChecker' ./faults/

# bench runs the benchmark suite (docs/performance.md): a non-race resqued
# and the no-op handlers are built into bin/bench/, a private redis-server
# is started on a free port, and a markdown table is printed. 4-5 minutes
# on 2 cores. BENCHFLAGS passes flags, e.g.
# make bench BENCHFLAGS='-runs 5 -jobs 5000' or BENCHFLAGS=-check.
BENCHFLAGS ?=
bench:
	$(GO) build -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o bin/bench/resqued ./cmd/resqued
	$(GO) build -o bin/bench/noop ./bench/noop
	$(GO) build -o bin/bench/stamp ./bench/stamp
	$(GO) build -o bin/bench/resqued-bench ./bench/resqued-bench
	./bin/bench/resqued-bench -resqued bin/bench/resqued -noop bin/bench/noop -stamp bin/bench/stamp $(BENCHFLAGS)

clean:
	rm -rf bin

# fuzz runs each native Go fuzz target for a budget of executions. Seeds
# live in pkg/*/testdata/fuzz/<Target>/; inputs that fail are written there.
# Budgets are counts ("Nx"), not durations: go1.26's fuzz coordinator can
# report a bare "context deadline exceeded" when a -fuzztime duration ends
# while a worker is mid-call (golang/go#75804, fixed in go1.27), which failed
# CI once with no input found. A count has no deadline to race. The budgets
# are about 5 s each here; FUZZSCALE multiplies them for a longer hunt.
# Minimizing each new interesting input is bounded the same way.
FUZZSCALE ?= 1
FUZZMINIMIZE ?= 2000x
FUZZ = $(GO) test -run='^$$' -fuzzminimizetime=$(FUZZMINIMIZE)

fuzz:
	$(FUZZ) -fuzz='^FuzzDecode$$' -fuzztime=$$((30000*$(FUZZSCALE)))x ./pkg/queue/
	$(FUZZ) -fuzz='^FuzzEncodeRoundTrip$$' -fuzztime=$$((70000*$(FUZZSCALE)))x ./pkg/queue/
	$(FUZZ) -fuzz='^FuzzResolve$$' -fuzztime=$$((90000*$(FUZZSCALE)))x ./pkg/runner/
	$(FUZZ) -fuzz='^FuzzSVG$$' -fuzztime=$$((3000*$(FUZZSCALE)))x ./pkg/web/chart/
