# The two commands of the README, and a few helpers.
.PHONY: dev test build record-histories fuzz soak

# Run everything locally: Temporal dev server + Web UI, worker, demo receiver.
dev:
	go run ./worker dev

# The whole test suite (what CI runs).
test:
	./scripts/test.sh

build:
	go build -o bin/ ./worker ./cmd/userhooks ./cmd/usersync

# Record replay fixtures under a new label, e.g. make record-histories LABEL=v2
record-histories:
	test -n "$(LABEL)" || { echo "usage: make record-histories LABEL=v2" >&2; exit 2; }
	go test -count=1 ./integration -record-histories $(LABEL)

# Run each fuzz target for a while.
fuzz:
	go test ./event -run '^$$' -fuzz FuzzDecode -fuzztime 60s
	go test ./signature -run '^$$' -fuzz FuzzVerify -fuzztime 60s
	go test ./receiver -run '^$$' -fuzz FuzzMiddleware -fuzztime 60s
	go test ./api -run '^$$' -fuzz FuzzAPI -fuzztime 60s

# The soak: EVENTS events x SUBSCRIPTIONS subscriptions under random faults,
# then a reconciliation of every delivery (see TestSoak); SEED=0 picks one.
EVENTS ?= 2000
SUBSCRIPTIONS ?= 4
SEED ?= 0
soak:
	go test -count=1 -timeout 90m ./integration -run '^TestSoak$$' -v \
		-args -soak -soak.events=$(EVENTS) -soak.subscriptions=$(SUBSCRIPTIONS) -soak.seed=$(SEED)

# The benchmark (BENCHMARKS.md): on a dev server it starts itself, and on
# Temporal server 1.29.1 over the local PostgreSQL. ARGS are cmd/bench flags.
.PHONY: bench bench-postgres
bench:
	go run ./cmd/bench $(ARGS)
bench-postgres:
	./scripts/bench-postgres.sh $(ARGS)
