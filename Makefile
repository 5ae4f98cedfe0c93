# The two commands of the README, and a few helpers.
.PHONY: dev test build record-histories fuzz

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
