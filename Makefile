# partyline: "make run" serves on ./partyline-data, "make test" runs every test.
GO       ?= go
BIN      := bin/partyline
DATA     ?= ./partyline-data
# Debian packages the interop tests drive: SIPp, sipsak, baresip.
PEERS    := sip-tester sipsak baresip-core

.PHONY: all build run test peers check fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/partyline

## run: build and serve on the embedded default (seeds a demo workspace when empty)
run: build
	./$(BIN) --data $(DATA) serve --demo

## test: install the test peers when missing, then format, vet, race tests, fuzz
test: peers check
	$(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) fuzz

## fuzz: a short bounded run of each native fuzz target (FUZZTIME scales it)
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzAdmit$$' -fuzztime $(FUZZTIME) ./sip/
	$(GO) test -run '^$$' -fuzz '^FuzzFrame$$' -fuzztime 10s ./sip/
	$(GO) test -run '^$$' -fuzz '^FuzzServe$$' -fuzztime 15s ./sip/

check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on: $$out"; exit 1; fi
	$(GO) vet ./...

peers:
	@if command -v sipp >/dev/null && command -v sipsak >/dev/null && command -v baresip >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing $(PEERS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PEERS) >/dev/null; \
	else \
		echo "the interop tests need sipp, sipsak and baresip: sudo apt-get install $(PEERS)"; \
	fi

## bench: Go benchmarks, then the load scripts (SIPp on loopback against binaries built from this
## tree): voicemail (bench/vm.sh, root), then registrations and forked calls, partyline and
## Kamailio side by side (bench/kamailio/run.sh, installs Kamailio when missing). About 15-20
## minutes; each heavy run takes $(BENCH_LOCK) so it never overlaps another. Not part of
## "make test".
BENCH_LOCK ?= /tmp/partyline-bench.lock
bench: build
	flock $(BENCH_LOCK) $(GO) test -run '^$$' -bench . -benchmem -timeout 10m ./...
	flock $(BENCH_LOCK) bench/vm.sh
	LOCK=$(BENCH_LOCK) bench/kamailio/run.sh

clean:
	rm -rf bin
