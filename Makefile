# natdoctor's build, test and lab targets. The lab targets need root and the
# Debian packages that .ci/run installs.
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
	probe:FuzzFTPReplies probe:FuzzReflectorRequest
PLATFORMS := linux/amd64 linux/arm64 linux/arm darwin/amd64 darwin/arm64 windows/amd64

.PHONY: build test unit-test lab-test demo bench fuzz fmt vet man cross dist clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/natdoctor

# Unit tests always; the lab suite too when run as root with the tools
# installed (set NATDOCTOR_LAB=1 to make a lab that cannot start fail).
test: vet cross
	$(MAKE) --no-print-directory fuzz FUZZTIME=2000x
	$(GO) test -count=1 -timeout 20m ./...

# Every fuzz target for FUZZTIME executions (make test runs 2000 each first).
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) ./$${t%%:*} > /tmp/natdoctor-fuzz.log 2>&1 || { cat /tmp/natdoctor-fuzz.log; exit 1; }; \
	done

unit-test:
	$(GO) test -count=1 -short ./...

lab-test:
	NATDOCTOR_LAB=1 $(GO) test -count=1 -timeout 20m -run 'Lab' -v ./...

# The user's AirPort situation in the lab, and natdoctor finding it (root).
demo:
	NATDOCTOR_DEMO=1 NATDOCTOR_LAB=1 $(GO) test -count=1 -v -run '^TestDemo$$' ./cmd/natdoctor | grep -v -e '^=== RUN' -e '^--- ' -e '^PASS' -e '^ok '

# natdoctor against upnpc and natpmpc on the lab (root); writes bench/results.json.
bench:
	NATDOCTOR_BENCH=1 NATDOCTOR_LAB=1 $(GO) test -count=1 -timeout 60m -v -run '^TestBench$$' ./bench | grep -v -e '^=== RUN' -e '^--- ' -e '^PASS' -e '^ok ' -e 'bench_test.go'
	$(GO) test -run '^$$' -bench . -benchmem ./nat ./probe

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
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
