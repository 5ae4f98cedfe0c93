#!/usr/bin/env bash
# The whole test suite: formatting, vet, unit tests with the race detector,
# then the integration tests against an in-process Temporal server.
# `make test` runs this; so does CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "These files need gofmt -w:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== dependencies of the interop tests"
if command -v npm >/dev/null; then
	npm ci --prefix interop/js --no-audit --no-fund --loglevel=error
else
	echo "npm not found: the JavaScript interop test will say what is missing" >&2
fi

echo "== PostgreSQL for the store tests"
if [ "${USERHOOKS_TEST_SKIP_POSTGRES:-}" != 1 ] && [ -z "${USERHOOKS_TEST_POSTGRES_DSN:-}" ]; then
	./scripts/ensure-postgres.sh
fi

echo "== go vet"
go vet ./...

echo "== unit tests (race detector)"
# The integration package links a whole Temporal server; building it with
# -race would rebuild the server instrumented, so it runs separately below.
go test -count=1 -race -timeout 15m $(go list ./... | grep -v /integration)

echo "== Temporal CLI for the recipe and fault tests"
# integration/recipes_test.go runs the README's Temporal CLI recipes, and
# integration/faults_test.go restarts a `temporal server start-dev` on its
# file, with the CLI that `worker dev` uses (devserver.CLIModule), kept in
# ./bin. Installed once: about six minutes on a cold build cache, nothing
# when present.
cli_module=github.com/temporalio/cli/cmd/temporal@v1.5.1
if ! go version -m bin/temporal 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/temporalio/cli[[:space:]]+${cli_module##*@}[[:space:]]"; then
	GOBIN="$PWD/bin" go install "$cli_module"
fi

echo "== integration tests (in-process Temporal server)"
go test -count=1 -timeout 30m ./integration
