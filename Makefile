# dindstore — see README.md. Every target that needs system packages installs
# the missing ones with apt-get first (`make deps`).

export PATH := /usr/local/go/bin:$(PATH)
GO       ?= go
BIN      := bin/dindstore
# tool:package pairs that `make deps` makes sure of
DEPS     := mkfs.ext4:e2fsprogs mkfs.xfs:xfsprogs dockerd:docker.io docker:docker.io \
            containerd:containerd runc:runc busybox:busybox-static rsync:rsync capsh:libcap2-bin \
            docker-registry:docker-registry
TESTFLAGS ?= -count=1 -timeout 45m

.PHONY: all build deps test unit demo bench vet fmt-check clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/dindstore

## deps: install the system packages dindstore and its tests use, if missing
deps:
	@missing=""; for pair in $(DEPS); do \
	  tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$tool >/dev/null 2>&1 || PATH=$$PATH:/usr/sbin:/sbin command -v $$tool >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## test: every test; the root-only ones (loop devices, mounts, dockerd) run when root
test: deps vet fmt-check
	$(GO) test $(TESTFLAGS) ./...

## unit: the tests that need neither root nor a daemon
unit:
	$(GO) test -count=1 ./loopdev ./overlay ./volumes ./cache ./metrics ./cmd/...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l .); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }

## demo: an inner dockerd on a 10 GiB loop cache, a container in it, ls, cleanup
demo: deps build
	./scripts/demo.sh $(BIN)

## bench: provisioning (dindstore vs by hand), trim vs discard, ls of 500 caches, 32 parallel runs,
##        inner build + 20 runs on loop / host dir / vfs
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x ./volumes/ ./cache/
	$(GO) test -run '^$$' -bench ParallelRuns32 -benchtime 3x ./integration/
	$(GO) test -run '^$$' -bench InnerWorkload -benchtime 1x -timeout 30m ./integration/

clean:
	rm -rf bin
