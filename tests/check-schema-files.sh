#!/bin/sh
# SPDX-License-Identifier: ISC
# Every schema/*.sql must be listed in Makefile.am's SCHEMA_FILES: a file left out is
# silently not embedded in hookd, so its migration never runs. make check passes the list.
set -eu
: "${top_srcdir:?run under make check}"
: "${SCHEMA_FILES?run under make check}"
status=0
for f in "$top_srcdir"/schema/*.sql; do
	name=${f##*/}
	case " $SCHEMA_FILES " in
	*"/schema/$name "*) ;;
	*)
		echo "schema/$name is not in SCHEMA_FILES (Makefile.am): it would not be embedded" >&2
		status=1
		;;
	esac
done
for f in $SCHEMA_FILES; do
	[ -f "$f" ] || {
		echo "SCHEMA_FILES names $f, which does not exist" >&2
		status=1
	}
done
[ $status -eq 0 ] && echo "all $(ls "$top_srcdir"/schema/*.sql | wc -l) schema files are embedded"
exit $status
