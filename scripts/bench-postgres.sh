#!/usr/bin/env bash
# Runs the benchmark (cmd/bench) against a production-shaped Temporal:
# Temporal server 1.29.1 built from the module proxy, on the machine's
# PostgreSQL, 4 history shards, the postgres12_pgx plugin.
#
#   scripts/bench-postgres.sh                        # cmd/bench's defaults
#   scripts/bench-postgres.sh -rate 20/s -duration 30s   # any cmd/bench flags
#
# Steps: build ./bin/temporal-server and ./bin/temporal-sql-tool once
# (about 2 minutes on 2 cores); drop and create the databases
# temporal_bench and temporal_bench_visibility with Temporal's schemas (it
# never touches any other database); write a config under
# .userhooks/bench-postgres/; start the server; create the namespace
# default and register userhooks' search attributes (then restart the
# server, whose services cache them for a minute); run cmd/bench with
# -temporal-address; stop the server.
#
# PostgreSQL must accept the role postgres over TCP without a password
# (scripts/ensure-postgres.sh sets that up). Environment:
#   BENCH_PG_HOST, BENCH_PG_PORT, BENCH_PG_USER   default 127.0.0.1, 5432, postgres
#   BENCH_TEMPORAL_PORT   frontend port, default 7733 (pprof on port+3)
#   BENCH_KEEP_DATA=1     keep the databases of the previous run
set -euo pipefail
cd "$(dirname "$0")/.."

version=v1.29.1
pg_host=${BENCH_PG_HOST:-127.0.0.1}
pg_port=${BENCH_PG_PORT:-5432}
pg_user=${BENCH_PG_USER:-postgres}
port=${BENCH_TEMPORAL_PORT:-7733}
db=temporal_bench
vdb=temporal_bench_visibility
dir=.userhooks/bench-postgres
bin=$PWD/bin

say() { echo "bench-postgres: $*" >&2; }
die() {
	say "$*"
	exit 1
}

# Build the server and its SQL tool from the module proxy.
if [ ! -x "$bin/temporal-server" ] || [ ! -x "$bin/temporal-sql-tool" ]; then
	say "building Temporal server $version and its SQL tool into ./bin (about 2 minutes)…"
	tmp=$(mktemp -d)
	GOBIN=$tmp go install "go.temporal.io/server/cmd/server@$version" "go.temporal.io/server/cmd/tools/sql@$version"
	mkdir -p "$bin"
	mv "$tmp/server" "$bin/temporal-server"
	mv "$tmp/sql" "$bin/temporal-sql-tool"
	rmdir "$tmp"
fi
# The temporal CLI checks health and creates the namespace (worker dev
# installs the same one).
if [ ! -x "$bin/temporal" ]; then
	say "installing the temporal CLI into ./bin (about 6 minutes)…"
	GOBIN=$bin go install github.com/temporalio/cli/cmd/temporal@v1.5.1
fi
# The schemas ship in the server's module.
schema=$(cd / && go mod download -json "go.temporal.io/server@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/schema/postgresql/v12
[ -d "$schema" ] || die "no PostgreSQL schema at $schema"

# The databases: dropped and created afresh, with Temporal's schemas.
mkdir -p "$dir/config"
sqltool() {
	"$bin/temporal-sql-tool" --plugin postgres12_pgx --endpoint "$pg_host" --port "$pg_port" \
		--user "$pg_user" --password "" "$@" >>"$dir/setup.log" 2>&1 ||
		die "temporal-sql-tool $*: failed; see $dir/setup.log"
}
: >"$dir/setup.log"
if [ "${BENCH_KEEP_DATA:-}" != 1 ]; then
	for d in "$db" "$vdb"; do
		say "creating database $d…"
		"$bin/temporal-sql-tool" --plugin postgres12_pgx --endpoint "$pg_host" --port "$pg_port" \
			--user "$pg_user" --password "" --database "$d" drop-database --force >>"$dir/setup.log" 2>&1 || true
		sqltool --database "$d" create-database
	done
	sqltool --database "$db" setup-schema -v 0.0
	sqltool --database "$db" update-schema -d "$schema/temporal/versioned"
	sqltool --database "$vdb" setup-schema -v 0.0
	sqltool --database "$vdb" update-schema -d "$schema/visibility/versioned"
fi

# The server's configuration: ports of their own, so it never meets a
# dev server on 7233 or the API on 8000.
datastore() {
	cat <<EOF
      sql:
        pluginName: postgres12_pgx
        databaseName: $1
        connectAddr: "$pg_host:$pg_port"
        connectProtocol: tcp
        user: $pg_user
        password: ""
        maxConns: $2
        maxIdleConns: $2
        maxConnLifetime: 1h
EOF
}
service() {
	cat <<EOF
  $1:
    rpc:
      grpcPort: $2
      membershipPort: $(($2 - 1000))
      bindOnLocalHost: true
EOF
}
{
	cat <<EOF
log:
  stdout: true
  level: warn
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:
    default:
$(datastore "$db" 20)
    visibility:
$(datastore "$vdb" 10)
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  pprof:
    port: $((port + 3))
services:
$(service frontend "$port")
$(service history $((port + 1)))
$(service matching $((port + 2)))
$(service worker $((port + 6)))
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: 127.0.0.1:$port
dcRedirectionPolicy:
  policy: noop
EOF
} >"$dir/config/bench.yaml"

temporal() { "$bin/temporal" --address "127.0.0.1:$port" "$@"; }
server=
start_server() {
	"$bin/temporal-server" --root "$dir" --config config --env bench --allow-no-auth start >>"$dir/server.log" 2>&1 &
	server=$!
	for _ in $(seq 60); do
		kill -0 "$server" 2>/dev/null || die "the server exited; see $dir/server.log"
		if temporal operator cluster health >/dev/null 2>&1; then
			return
		fi
		sleep 1
	done
	die "the server did not become healthy in 60 s; see $dir/server.log"
}
stop_server() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
		server=
	fi
}
trap stop_server EXIT

: >"$dir/server.log"
say "starting Temporal server $version on 127.0.0.1:$port (log in $dir/server.log, pprof on 127.0.0.1:$((port + 3)))…"
start_server
# The namespace and the search attributes. The server's services cache
# search attributes for up to a minute, so after adding them the server is
# restarted rather than waited for.
if ! temporal operator namespace describe --namespace default >/dev/null 2>&1; then
	temporal operator namespace create --namespace default --retention 1d >/dev/null
fi
# A new namespace reaches the services' caches within about 10 s.
have=
for _ in $(seq 30); do
	have=$(temporal operator search-attribute list --namespace default 2>/dev/null) && break
	sleep 1
done
[ -n "$have" ] || die "namespace default did not become usable in 30 s"
added=
# The same as workflows.SearchAttributes.
for sa in UserhooksEventID:Keyword UserhooksEventType:Keyword UserhooksUserID:Keyword UserhooksAccountID:Keyword \
	UserhooksSubscriptionID:Keyword UserhooksDeliveryStatus:Keyword UserhooksAttempts:Int; do
	if ! grep -q "${sa%%:*}" <<<"$have"; then
		temporal operator search-attribute create --namespace default --name "${sa%%:*}" --type "${sa#*:}" >/dev/null
		added=1
	fi
done
if [ -n "$added" ]; then
	say "search attributes registered; restarting the server so that every service sees them…"
	stop_server
	start_server
fi

pg_version=$(psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -Atc 'SHOW server_version' 2>/dev/null | cut -d' ' -f1 || true)
go run ./cmd/bench -temporal-address "127.0.0.1:$port" -server-pid "$server" \
	-server-description "Temporal server $version on PostgreSQL ${pg_version:-?} (postgres12_pgx, 4 shards; PostgreSQL's own CPU not counted)" "$@"
