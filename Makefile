# detvm: the README's two commands are `make demo` and `make test`; both set
# up what is missing first and are safe to run again.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
export DETVM_AGENT := $(BIN)/detvm-agent
# Go programs the examples run in their guests, each built static into its
# own directory (examples/etcd/register/register).
GO_EXAMPLES := examples/etcd/register examples/etcd/append examples/buggy-kv/kv examples/buggy-kv/workload examples/sdk/sdkdemo

.PHONY: setup build demo test soak race-stress bench check clean

setup:
	@bash scripts/setup.sh

build:
	$(GO) build -o $(BIN)/detvm ./cmd/detvm
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/detvm-agent ./cmd/detvm-agent
	gcc -O2 -Wall -pthread -o examples/hello/rand examples/hello/rand.c
	for p in $(GO_EXAMPLES); do CGO_ENABLED=0 $(GO) build -trimpath -o $$p/$$(basename $$p) ./$$p || exit 1; done

demo: setup build
	bash scripts/demo.sh

# The whole suite, real QEMU tests included (about 15 minutes on 2 cores with
# detvm's QEMU, idle guests halting; about 24 with spinning guests).
test: setup build check
	$(GO) test -count=1 -timeout 45m ./...

# Long repetitions outside CI: 10 runs per example, half under a CPU hog.
soak: setup build
	bash scripts/soak.sh | tee docs/soak.md
	bash scripts/snapshot-soak.sh | tee docs/snapshot-soak.md
	bash scripts/faults-soak.sh | tee docs/faults-soak.md

# The icount idle-warp race shown real and fixed, on test-only QEMU builds
# that widen its window (third_party/qemu/README.md); each build takes a
# while the first time.
race-stress: setup build
	bash scripts/race-stress.sh | tee docs/race-stress.md

bench: setup build
	bash scripts/bench.sh | tee docs/benchmarks.md

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: run gofmt -w on the files above'; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf $(BIN) examples/hello/rand runs $(foreach p,$(GO_EXAMPLES),$(p)/$(notdir $(p)))
