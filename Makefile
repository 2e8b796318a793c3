# natdoctor's build, test and lab targets. The lab targets need root and the
# Debian packages that .ci/run installs.
# bash with pipefail: a recipe piped through grep fails when its test fails.
SHELL       := bash
.SHELLFLAGS := -o pipefail -ec

GO      ?= go
BIN     ?= bin/natdoctor
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# A count (Nx), not a duration: Go 1.26's fuzz coordinator can fail a
# duration run with a bare "context deadline exceeded" when the time runs
# out mid-exec (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 200000x
FUZZ_TARGETS := nat:FuzzParsePCPResponse nat:FuzzParseSSDPResponse nat:FuzzParsePortMappingList \
	nat:FuzzParseDeviceDescription nat:FuzzSOAPResponse probe:FuzzParsePASV probe:FuzzParseEPSV probe:FuzzParseConfigs \
	probe:FuzzFTPReplies reflector:FuzzReflectorRequest
PLATFORMS := linux/amd64 linux/arm64 linux/arm darwin/amd64 darwin/arm64 windows/amd64

.PHONY: build test ci unit-test lab-test demo lab-deps verdicts bench fuzz fmt vet man cross dist clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/natdoctor

# Every test under the race detector: the unit tests always, the lab suite
# too when run as root with the tools installed (set NATDOCTOR_LAB=1 to
# make a lab that cannot start fail); then each fuzz target for 2000
# inputs.
test: vet
	$(GO) test -race -count=1 -timeout 40m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=2000x

# What CI runs after the README's two commands: the cross-builds.
ci: test cross

# Every fuzz target for FUZZTIME executions (make test runs 2000 each).
fuzz:
	@log=$$(mktemp -t natdoctor-fuzz.XXXXXX); trap 'rm -f "$$log"' EXIT; \
	for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) ./$${t%%:*} > "$$log" 2>&1 || { cat "$$log"; exit 1; }; \
	done

# Unit tests only: -short skips the lab, also as root.
unit-test:
	$(GO) test -count=1 -short ./...

lab-test:
	NATDOCTOR_LAB=1 $(GO) test -count=1 -timeout 20m -run 'Lab' -v ./...

# The lab's Debian packages, when missing (root; see lab/packages.txt).
lab-deps:
	@if [ "$$(id -u)" -ne 0 ]; then echo "the lab needs root: it builds network namespaces" >&2; exit 1; fi
	bash lab/install-deps

# The user's AirPort situation in the lab, and natdoctor finding it (root).
demo: lab-deps
	NATDOCTOR_DEMO=1 NATDOCTOR_LAB=1 $(GO) test -count=1 -v -run '^TestDemo$$' ./cmd/natdoctor | grep -v -e '^=== RUN' -e '^--- PASS' -e '^PASS' -e '^ok '

# natdoctor against upnpc and natpmpc on the lab (root); writes bench/results.json.
bench: lab-deps
	NATDOCTOR_BENCH=1 NATDOCTOR_LAB=1 $(GO) test -count=1 -timeout 60m -v -run '^TestBench$$' ./bench | grep -v -E -e '^(=== RUN|--- PASS|PASS$$|ok )' -e 'bench_test.go:[0-9]+: \{'
	$(GO) test -run '^$$' -bench . -benchmem ./nat ./probe

fmt:
	gofmt -w .

vet:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Man pages from the cobra tree; the date is fixed, so the output is stable.
man:
	$(GO) run ./cmd/natdoctor man man/man1

# go build and go vet for every platform people run natdoctor on.
cross:
	@set -e; for p in $(PLATFORMS); do \
		echo "cross: $$p"; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -o /dev/null ./cmd/natdoctor; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./...; \
	done

# Release archives with SHA-256 checksums in dist/.
dist:
	@set -e; rm -rf dist; mkdir -p dist; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=natdoctor-$(VERSION)-$$os-$$arch; ext=; \
		[ $$os = windows ] && ext=.exe; \
		mkdir -p dist/$$name; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/$$name/natdoctor$$ext ./cmd/natdoctor; \
		cp README.md dist/$$name/; \
		if [ $$os = windows ]; then (cd dist && zip -qr $$name.zip $$name); else tar -C dist -czf dist/$$name.tar.gz $$name; fi; \
		rm -rf dist/$$name; \
	done; cd dist && sha256sum natdoctor-* > SHA256SUMS; cat SHA256SUMS

clean:
	rm -rf bin bench/results.json dist man

# The verdict matrix (root): real clients against natdoctor's verdict, per scenario.
verdicts: lab-deps
	NATDOCTOR_VERDICTS=1 NATDOCTOR_LAB=1 $(GO) test -count=1 -timeout 30m -v -run '^TestLab(Check|IPv6)?Verdicts$$' ./cmd/natdoctor \
		| grep -v -E '^ *(=== (RUN|PAUSE|CONT)|--- PASS|PASS$$|ok )'
