#!/bin/sh
# Prepares a Temporal namespace for userhooks:
#   1. waits until the Temporal frontend answers its gRPC health check,
#   2. creates the namespace if it does not exist yet,
#   3. registers the custom search attributes the delivery log is queried by.
# Every step is idempotent: running it again against a prepared namespace
# changes nothing and exits 0. An attribute that already exists with a
# different type is an error (exit 1), never silently accepted.
#
# docker-compose.yml runs it once in the `temporal-create-namespace` service
# (image temporalio/admin-tools, which ships the `temporal` CLI). The worker
# also registers the attributes when it starts; this script is the operator's
# record of the same command. Against another cluster:
#
#   TEMPORAL_ADDRESS=temporal.example:7233 TEMPORAL_NAMESPACE=default \
#     sh deploy/temporal/setup-search-attributes.sh
#
# Environment:
#   TEMPORAL_ADDRESS     frontend host:port            (default temporal:7233)
#   TEMPORAL_NAMESPACE   namespace to prepare          (default default)
#   NAMESPACE_RETENTION  retention of closed workflows when the namespace is
#                        created here; an existing namespace is left as it is
#                        (default 7d)
#   WAIT_SECONDS         how long to wait for the server (default 120)
#
# PostgreSQL/MySQL visibility gives each namespace a fixed number of custom
# attribute slots per type (10 Keyword and 3 Int in server 1.29); userhooks
# uses 6 Keyword and 1 Int.
set -eu

address="${TEMPORAL_ADDRESS:-temporal:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"
retention="${NAMESPACE_RETENTION:-7d}"
wait_seconds="${WAIT_SECONDS:-120}"

log() { printf '%s\n' "setup-search-attributes: $*"; }
fail() { printf '%s\n' "setup-search-attributes: $*" >&2; exit 1; }

command -v temporal >/dev/null 2>&1 || fail "the temporal CLI is not on PATH"

# Dial the IPv4 address of the frontend when the name resolves to one: on some
# Docker setups the service name also resolves to an IPv6 address the server
# does not listen on, and the CLI then fails to connect.
host="${address%:*}"
port="${address##*:}"
if command -v getent >/dev/null 2>&1; then
	ipv4="$(getent ahosts "$host" 2>/dev/null | awk '$2 == "STREAM" && $1 !~ /:/ { print $1; exit }')" || ipv4=""
	if [ -n "$ipv4" ]; then
		address="$ipv4:$port"
	fi
fi
log "using frontend $address (from ${TEMPORAL_ADDRESS:-temporal:7233}), namespace $namespace"

# 1. Wait for the frontend.
start="$(date +%s)"
until temporal operator cluster health --address "$address" >/dev/null 2>&1; do
	if [ $(( $(date +%s) - start )) -ge "$wait_seconds" ]; then
		temporal operator cluster health --address "$address" || true
		fail "Temporal at $address is not healthy after ${wait_seconds}s"
	fi
	sleep 2
done
log "Temporal is serving"

# 2. Namespace.
if temporal operator namespace describe --namespace "$namespace" --address "$address" >/dev/null 2>&1; then
	log "namespace $namespace exists"
else
	if out="$(temporal operator namespace create --namespace "$namespace" \
		--retention "$retention" --address "$address" 2>&1)"; then
		log "namespace $namespace created (retention $retention)"
	else
		case "$out" in
		*[Aa]lready*) log "namespace $namespace exists" ;;
		*) printf '%s\n' "$out" >&2; fail "could not create namespace $namespace" ;;
		esac
	fi
fi

# 3. Search attributes. A freshly created namespace can take a few seconds to
# be visible to every frontend component, so errors other than "already
# exists" are retried a few times before giving up.
register() {
	name="$1"
	type="$2"
	attempt=1
	while :; do
		if out="$(temporal operator search-attribute create --namespace "$namespace" \
			--name "$name" --type "$type" --address "$address" 2>&1)"; then
			log "search attribute $name ($type) present"
			return 0
		fi
		case "$out" in
		*"different type"*)
			printf '%s\n' "$out" >&2
			log "search attribute $name exists with a type other than $type"
			return 1
			;;
		*[Aa]lready*)
			log "search attribute $name ($type) already registered"
			return 0
			;;
		esac
		if [ "$attempt" -ge 5 ]; then
			printf '%s\n' "$out" >&2
			log "search attribute $name ($type) could not be registered"
			return 1
		fi
		attempt=$((attempt + 1))
		sleep 3
	done
}

status=0
while read -r name type; do
	[ -n "$name" ] || continue
	register "$name" "$type" || status=1
done <<'ATTRIBUTES'
UserhooksEventID Keyword
UserhooksEventType Keyword
UserhooksUserID Keyword
UserhooksAccountID Keyword
UserhooksSubscriptionID Keyword
UserhooksDeliveryStatus Keyword
UserhooksAttempts Int
ATTRIBUTES

if [ "$status" -ne 0 ]; then
	fail "some search attributes are missing or conflict (see above)"
fi
log "userhooks search attributes of namespace $namespace:"
temporal operator search-attribute list --namespace "$namespace" --address "$address" |
	grep -E '^ *(Name|Userhooks)' || true
log "done"
