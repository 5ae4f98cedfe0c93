#!/usr/bin/env bash
# Makes sure the PostgreSQL that the tests of the PostgreSQL subscription
# store use is there: a server accepting connections on 127.0.0.1:5432 where
# the role postgres connects over TCP without a password (the default
# USERHOOKS_TEST_POSTGRES_DSN, postgres://postgres@127.0.0.1:5432/postgres).
#
#   - running and reachable: changes nothing;
#   - installed but stopped: starts its cluster (pg_ctlcluster);
#   - not installed: installs the distribution's postgresql (apt-get) and
#     starts it;
#   - the role postgres needs a password from 127.0.0.1: adds one pg_hba.conf
#     line trusting the role postgres from 127.0.0.1 only, says so, reloads.
#
# USERHOOKS_TEST_POSTGRES_PORT picks another port (a second cluster).
# Idempotent: run it as often as you like. For Debian and Ubuntu (apt,
# postgresql-common); installing, starting and reconfiguring need root (or
# sudo without a password). Exits non-zero, saying why, when it cannot.
set -euo pipefail

host=127.0.0.1
# Another port, for a second cluster (then point USERHOOKS_TEST_POSTGRES_DSN at it).
port=${USERHOOKS_TEST_POSTGRES_PORT:-5432}

say() { echo "ensure-postgres: $*"; }
die() {
	echo "ensure-postgres: $*" >&2
	exit 1
}

# as_root runs a command as root: directly, or through sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		die "need root to run: $* (run this script as root, or with sudo)"
	fi
}

ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$host" -p "$port"; }

# wait_ready waits up to 30 s for the server to accept connections.
wait_ready() {
	for _ in $(seq 1 60); do
		ready && return 0
		sleep 0.5
	done
	return 1
}

# cluster_on_port prints "version name status" of the cluster configured
# for $port, if postgresql-common knows one.
cluster_on_port() {
	command -v pg_lsclusters >/dev/null 2>&1 || return 0
	pg_lsclusters -h 2>/dev/null | awk -v port="$port" '$3 == port { print $1, $2, $4; exit }'
}

install_postgres() {
	command -v apt-get >/dev/null 2>&1 ||
		die "PostgreSQL is not installed and apt-get is missing: install PostgreSQL (15 or later) listening on $host:$port yourself"
	say "PostgreSQL is not installed: installing the distribution's postgresql package"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
		die "apt-get update failed"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null ||
		die "apt-get install postgresql failed"
}

# 1. A server accepting connections on $host:$port.
if ready; then
	say "PostgreSQL is accepting connections on $host:$port"
else
	if [ -z "$(cluster_on_port)" ]; then
		if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls -A /etc/postgresql 2>/dev/null)" ]; then
			install_postgres
		fi
	fi
	read -r version name status <<<"$(cluster_on_port)" || true
	if [ -z "${version:-}" ]; then
		other=$(pg_lsclusters -h 2>/dev/null | awk '{ printf "%s%s/%s on port %s", sep, $1, $2, $3; sep = ", " }')
		die "no PostgreSQL cluster is configured for port $port${other:+ (found: $other)}; create one with pg_createcluster, or set port = $port in its postgresql.conf"
	fi
	if [ "$status" = online ]; then
		say "cluster $version/$name is starting; waiting for it"
	else
		say "cluster $version/$name is $status: starting it"
		as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start ||
			die "pg_ctlcluster $version $name start failed; see /var/log/postgresql/postgresql-$version-$name.log"
	fi
	wait_ready ||
		die "cluster $version/$name does not accept connections on $host:$port after 30 s; see /var/log/postgresql/postgresql-$version-$name.log (is listen_addresses including localhost?)"
	say "PostgreSQL $version/$name is accepting connections on $host:$port"
fi

# 2. The role postgres connects from $host without a password.
command -v psql >/dev/null 2>&1 || die "psql is missing: install postgresql-client"

# connect_error prints why the role postgres cannot connect without a
# password (nothing when it can). No password from the environment or a
# .pgpass file: the point is that none is needed.
connect_error() {
	local out
	if out=$(env -u PGPASSWORD PGPASSFILE=/nonexistent/ensure-postgres/pgpass PGCONNECT_TIMEOUT=10 \
		psql -w -X -q -At -h "$host" -p "$port" -U postgres -d postgres -c 'SELECT 1' 2>&1); then
		return 0
	fi
	echo "${out:-psql failed without a message}"
}

why=$(connect_error)
if [ -z "$why" ]; then
	say "the role postgres connects over TCP from $host without a password: ready"
	exit 0
fi
case "$why" in
*"password authentication failed"* | *"no password supplied"* | *"no pg_hba.conf entry"* | *"authentication failed"*) ;;
*) die "the role postgres cannot connect to $host:$port: $why" ;;
esac

read -r version name _ <<<"$(cluster_on_port)" || true
hba=/etc/postgresql/${version:-?}/${name:-?}/pg_hba.conf
[ -n "${version:-}" ] && [ -f "$hba" ] ||
	die "the role postgres needs a password on $host:$port ($why), and this server's pg_hba.conf is not where postgresql-common keeps it: allow it yourself, or set USERHOOKS_TEST_POSTGRES_DSN to a DSN with a password"

marker="# added by userhooks scripts/ensure-postgres.sh: the tests connect as postgres without a password"
line="host    all             postgres        127.0.0.1/32            trust"
if as_root grep -qF "$marker" "$hba"; then
	die "$hba already trusts the role postgres from $host (line marked \"$marker\"), yet it cannot connect: $why"
fi
backup="$hba.before-ensure-postgres.$(date +%Y%m%d%H%M%S)"
as_root cp -p "$hba" "$backup"
# pg_hba.conf is read top down and the first matching line decides: the new
# line goes first.
tmp=$(mktemp)
{
	echo "$marker"
	echo "$line"
	as_root cat "$hba"
} >"$tmp"
as_root cp "$tmp" "$hba"
rm -f "$tmp"
say "the role postgres needed a password on $host ($why)"
say "changed $hba (backup: $backup): added at the top"
say "  $marker"
say "  $line"
as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload ||
	die "pg_ctlcluster $version $name reload failed; the previous pg_hba.conf is in $backup"

why=$(connect_error)
[ -z "$why" ] || die "the role postgres still cannot connect without a password after the change: $why"
say "the role postgres connects over TCP from $host without a password: ready"
