# dindstore — see README.md. Every target that needs system packages installs
# the missing ones with apt-get first (`make deps`).

export PATH := /usr/local/go/bin:$(PATH)
GO       ?= go
BIN      := bin/dindstore
# tool:package pairs that `make deps` makes sure of
DEPS     := mkfs.ext4:e2fsprogs mkfs.xfs:xfsprogs dockerd:docker.io docker:docker.io \
            containerd:containerd runc:runc busybox:busybox-static rsync:rsync openssl:openssl jq:jq \
            rootlesskit:rootlesskit newuidmap:uidmap slirp4netns:slirp4netns ip:iproute2 nsenter:util-linux \
            docker-registry:docker-registry mkfs.btrfs:btrfs-progs
TESTFLAGS ?= -count=1 -timeout 45m
# a current engine (dockerd 29 era, containerd 2, runc 1.5), built from the Go
# module proxy by `make engine` (cached: only the first build is slow)
ENGINE_DIR := $(CURDIR)/.cache/engine
# what runs again with the current engine first on PATH (the launch tests: as the outer daemon too)
MODERN_TESTS := ^(TestRunLoop|TestRunDir|TestRunVFS|TestRunCommandContract|TestEngineLeavesNothingOutside|TestWarmCloneCommit|TestWarmPull|TestLaunchNested|TestOfficialDindChecks|TestLaunchUnprivileged)$$

# nektos/act, to run the GitHub Actions hook test's steps as a workflow on this host
ACT_VERSION := v0.2.89
ACT := $(CURDIR)/.cache/act/act

# csi-sanity (kubernetes-csi/csi-test), run against `dindstore csi`
CSI_TEST_VERSION := v5.6.0
CSI_SANITY := $(CURDIR)/.cache/csi-sanity/csi-sanity
# kubelet, kube-apiserver (k8s.io/kubernetes) and etcd, for the real-kubelet test
K8S_DIR := $(CURDIR)/.cache/k8s

.PHONY: all build deps engine dind-images act csi-sanity k8s test unit demo bench vet fmt-check clean

all: build

# static (no cgo): no dynamic loader at each start (about 1 ms of a job's cycle), and no libc
# to match where it runs
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/dindstore

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

## engine: build the current Docker engine into .cache/engine when it is missing
engine:
	./scripts/build-engine.sh $(ENGINE_DIR)

## act: build nektos/act into .cache/act when it is missing (about 2 minutes cold)
act: $(ACT)
$(ACT):
	GOBIN=$(CURDIR)/.cache/act $(GO) install github.com/nektos/act@$(ACT_VERSION)

## csi-sanity: build csi-sanity into .cache/csi-sanity when it is missing (under a minute)
csi-sanity: $(CSI_SANITY)
$(CSI_SANITY):
	GOBIN=$(CURDIR)/.cache/csi-sanity CGO_ENABLED=0 $(GO) install github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$(CSI_TEST_VERSION)

## dind-images: the root filesystems of a docker:dind and a docker:dind-rootless shaped image
##             of the current engine, into .cache/dind (seconds, once the engine is built)
DIND_DIR := $(CURDIR)/.cache/dind
dind-images: engine
	./scripts/build-dind-images.sh $(DIND_DIR) $(ENGINE_DIR)

## k8s: build kubelet, kube-apiserver, kube-scheduler, kube-controller-manager, etcd and external-snapshotter into .cache/k8s/bin when missing (about 20 minutes cold)
k8s:
	./scripts/build-k8s.sh $(K8S_DIR)

## test: every test (the root-only ones, with loop devices, mounts and dockerd, run when root),
##       then the integration tests again on the current engine
test: deps vet fmt-check engine dind-images act csi-sanity k8s
	DINDSTORE_TEST_ENGINE_DIR=$(ENGINE_DIR) DINDSTORE_TEST_DIND_DIR=$(DIND_DIR) DINDSTORE_TEST_ACT=$(ACT) DINDSTORE_TEST_CSI_SANITY=$(CSI_SANITY) \
	  DINDSTORE_TEST_K8S=$(K8S_DIR)/bin $(GO) test $(TESTFLAGS) ./...
	DINDSTORE_TEST_ENGINE=$(ENGINE_DIR) DINDSTORE_TEST_DIND_DIR=$(DIND_DIR) $(GO) test $(TESTFLAGS) -run '$(MODERN_TESTS)' ./integration/

## unit: the tests that need neither root nor a daemon
unit:
	$(GO) test -count=1 ./loopdev ./overlay ./dockerd ./volumes ./procscan ./proctree ./handoff ./cache ./metrics ./transfer ./csi ./provision ./cmd/...

vet:
	$(GO) vet ./...
	$(GO) vet -tags faults ./...
	@# The pure parts build (and their unit tests run) off Linux. The provisioner, a node
	@# component of Linux clusters only, stays out: client-go is half of the dependency graph.
	GOOS=darwin $(GO) vet $$(GOOS=darwin $(GO) list ./... | grep -v -e /provision -e /dindstore-provisioner)

fmt-check:
	@out=$$(gofmt -l .); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }

## demo: an inner dockerd on a 10 GiB loop cache, a container in it, ls, cleanup
demo: deps build
	./scripts/demo.sh $(BIN)

## bench: provisioning (dindstore vs by hand), trim vs discard, ls of 500 caches, 32 parallel runs,
##        a job's cycle, a fresh cache and a warm clone ready (xfs host, 1 and 20 GiB) vs the same
##        kernel work by hand, through the CLI and the library (one table: medians, ratios),
##        inner build + 20 runs on loop / host dir / vfs, and a dind pod under a real kubelet ready
##        on a warm-clone volume vs an emptyDir, and a warm cache of 1 GiB of images onto a cold
##        node through a registry (pull vs an inner docker pull vs plain GETs, and a 5% delta)
bench: deps csi-sanity k8s engine
	$(GO) test -run '^$$' -bench . -benchtime 3x ./volumes/ ./cache/
	$(GO) test -run '^$$' -bench ParallelRuns32 -benchtime 3x ./integration/
	mkdir -p .cache && $(GO) test -run '^$$' -bench 'JobCycle|FreshCache|CloneReady' -benchtime 15x ./integration/ \
	  > .cache/bench-handoff.txt && awk -f scripts/bench-table.awk .cache/bench-handoff.txt
	$(GO) test -run '^$$' -bench InnerWorkload -benchtime 1x -timeout 30m ./integration/
	DINDSTORE_TEST_K8S=$(K8S_DIR)/bin $(GO) test -run '^$$' -bench PodReady -benchtime 5x ./integration/
	$(GO) test -run '^$$' -bench FleetPull -benchtime 3x -timeout 30m ./integration/

clean:
	rm -rf bin
