# Run as root. `make test` installs what the tests need (Debian packages, Go
# modules) and fails, not skips, when a privileged prerequisite is missing.
GO       ?= go
GOFLAGS  ?= -modcacherw
export GOFLAGS
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# command:package pairs the integration tests need; apt-get installs the
# packages of missing commands (policy-rc.d keeps their daemons stopped).
DEB_CMDS := nsenter:util-linux ip:iproute2 iptables:iptables nft:nftables ipset:ipset \
	conntrack:conntrack busybox:busybox-static containerd:containerd runc:runc \
	/usr/lib/cni/bridge:containernetworking-plugins dockerd:docker.io

.PHONY: all build deps lint test unit bench demo clean

all: build

build:
	$(GO) build -o bin/nodereset ./cmd/nodereset
	$(GO) build -o bin/nodesim ./cmd/nodesim

deps:
	@missing=""; for pair in $(DEB_CMDS); do \
	  cmd=$${pair%%:*}; case $$cmd in /*) [ -x $$cmd ] ;; *) command -v $$cmd >/dev/null ;; esac \
	    || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	$(GO) mod download
	./hack/build-tools.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# NODERESET_REQUIRE_PRIVILEGED=1: a missing root/namespace/command prerequisite fails.
test: deps lint
	NODERESET_REQUIRE_PRIVILEGED=1 $(GO) test -count=1 -timeout 30m ./...
	@echo "--- benchmarks (figures, not pass/fail)"
	NODERESET_REQUIRE_PRIVILEGED=1 NODERESET_BENCH=1 $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./...

unit:
	$(GO) test -count=1 -short ./...

# Benchmarks print figures (plan time, RSS, unmount time vs the shell loop).
bench: build
	NODERESET_REQUIRE_PRIVILEGED=1 NODERESET_BENCH=1 $(GO) test -run '^$$' -bench . -benchtime 1x ./...

demo: build
	./hack/demo.sh

clean:
	rm -rf bin
