#!/bin/bash
# SPDX-License-Identifier: ISC
# Run tests/client/check_http_client against two hookd-sink processes, plain and TLS, the
# latter with a certificate from a throwaway CA made here with the openssl CLI.
set -eu

if ! command -v openssl >/dev/null 2>&1; then
	echo "run-check-http-client: no openssl command line tool: skipping"
	exit 77
fi
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/../.." && pwd)}
check=$top_builddir/tests/client/check_http_client
sink=$top_builddir/contrib/sink/hookd-sink
for f in "$check" "$sink"; do
	if [ ! -x "$f" ]; then
		echo "run-check-http-client: $f is not built" >&2
		exit 1
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-client.XXXXXX")
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A CA, and a server certificate it signs for sink.test and 127.0.0.1.
gen() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 2 -subj "/CN=hookd test CA" \
	    -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=sink.test" &&
	printf '%s\n' "subjectAltName=DNS:sink.test,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
	    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$tmp/ext.cnf" &&
	openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
	    -CAcreateserial -out "$tmp/server.pem" -days 2 -extfile "$tmp/ext.cnf"
}
if ! gen >"$tmp/openssl.log" 2>&1; then
	cat "$tmp/openssl.log" >&2
	exit 1
fi

# Start a sink; its port goes into the variable named by $1.
start_sink() {
	local var=$1 name=$2 i port=
	shift 2
	# Made before the sink starts: the background shell may open it after the first sed.
	: >"$tmp/$name.out"
	"$sink" -p 0 -q "$@" >>"$tmp/$name.out" 2>"$tmp/$name.err" &
	pids="$pids $!"
	for i in $(seq 1 100); do
		port=$(sed -n 's/^listening on //p' "$tmp/$name.out")
		if [ -n "$port" ]; then break; fi
		sleep 0.05
	done
	if [ -z "$port" ]; then
		echo "run-check-http-client: $name sink did not start" >&2
		cat "$tmp/$name.err" >&2
		exit 1
	fi
	printf -v "$var" '%s' "$port"
}
start_sink SINK_PORT plain
start_sink SINK_TLS_PORT tls --tls "$tmp/server.pem" "$tmp/server.key"
export SINK_PORT SINK_TLS_PORT TEST_CA_FILE=$tmp/ca.pem

rc=0
"$check" || rc=$?

# The sinks must exit cleanly (and, in a sanitizer build, without reports).
for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
for p in $pids; do wait "$p" || { echo "run-check-http-client: a sink exited with $?" >&2; rc=1; }; done
pids=
for f in "$tmp"/plain.err "$tmp"/tls.err; do
	if grep -qE "Sanitizer|runtime error" "$f"; then
		echo "--- $f ---" >&2
		cat "$f" >&2
		rc=1
	fi
done
exit "$rc"
