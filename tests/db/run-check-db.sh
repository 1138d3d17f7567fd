#!/bin/bash
# SPDX-License-Identifier: ISC
# Run tests/db/check_db against a throwaway Postgres cluster made for this run only.
set -eu

if [ -z "${PG_BINDIR:-}" ] || [ ! -x "$PG_BINDIR/initdb" ]; then
	PG_BINDIR=
	for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ]; then PG_BINDIR=$d; fi
	done
fi
if [ -z "$PG_BINDIR" ] || [ ! -x "$PG_BINDIR/initdb" ]; then
	echo "run-check-db: no Postgres server binaries (initdb): skipping"
	exit 77
fi
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/../.." && pwd)}
check_db=$top_builddir/tests/db/check_db
if [ ! -x "$check_db" ]; then
	echo "run-check-db: $check_db is not built" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-db.XXXXXX")
data=$tmp/data
ctl=$tmp/pgctl

# initdb refuses to run as root: the server runs as the hookd system user then.
as_pg=
if [ "$(id -u)" = 0 ]; then
	if ! id -u hookd >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin hookd
	fi
	chown hookd: "$tmp"
	chmod 755 "$tmp"
	as_pg="runuser -u hookd --"
fi

cleanup() {
	if [ -x "$ctl" ]; then "$ctl" kill >/dev/null 2>&1 || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

$as_pg "$PG_BINDIR/initdb" -A trust --nosync -U hookd -E UTF8 -D "$data" >"$tmp/initdb.log" 2>&1 || {
	cat "$tmp/initdb.log" >&2
	exit 1
}

# The C test stops, kills and starts the server through this script (env PG_*_CMD).
write_ctl() {
	cat >"$ctl" <<CTL
#!/bin/sh
opts="-c fsync=off -c listen_addresses=127.0.0.1 -c port=$1 -c unix_socket_directories=$tmp"
pgctl() { $as_pg "$PG_BINDIR/pg_ctl" -D "$data" -l "$tmp/postgres.log" "\$@"; }
case "\$1" in
start) pgctl status >/dev/null 2>&1 || pgctl start -w -t 60 -o "\$opts" >/dev/null ;;
stop) pgctl stop -w -m fast >/dev/null ;;
kill) pgctl stop -w -m immediate >/dev/null ;;
restart) pgctl restart -w -t 60 -m fast -o "\$opts" >/dev/null ;;
*) echo "usage: \$0 start|stop|kill|restart" >&2; exit 2 ;;
esac
CTL
	chmod 755 "$ctl"
}

port=
for _ in 1 2 3 4 5 6 7 8; do
	try=$((20000 + RANDOM % 30000))
	if (exec 3<>"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then continue; fi
	write_ctl "$try"
	if "$ctl" start; then
		port=$try
		break
	fi
done
if [ -z "$port" ]; then
	echo "run-check-db: could not start Postgres" >&2
	cat "$tmp/postgres.log" >&2 || true
	exit 1
fi

export DATABASE_URL="host=$tmp port=$port user=hookd dbname=postgres"
export DATABASE_TCP_URL="host=localhost port=$port user=hookd dbname=postgres"
export PG_PORT=$port
export PG_START_CMD="$ctl start"
export PG_STOP_CMD="$ctl stop"
export PG_KILL_CMD="$ctl kill"
export PG_RESTART_CMD="$ctl restart"

rc=0
"$check_db" || rc=$?
if [ "$rc" != 0 ]; then
	echo "--- postgres.log (tail) ---" >&2
	tail -n 40 "$tmp/postgres.log" >&2 || true
fi
exit "$rc"
