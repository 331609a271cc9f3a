#!/usr/bin/env bash
# make bench: the side-by-side benchmarks, run inside tools/testenv (versitygw
# and two PostgreSQL clusters, addresses in KWICKMIG_TEST_*). Each benchmark
# runs even if an earlier one failed; the exit status says whether all passed.
#   BENCH_ONLY=files|db   run just one of them
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

only=${BENCH_ONLY:-}
status=0

if [[ -z $only || $only == files ]]; then
	./bench/files.sh || status=1
fi

# --- db benchmark hook ---------------------------------------------------------
# bench/db.sh (and anything under bench/db/) belongs to the database work; this
# script only calls it when it exists.
if [[ -z $only || $only == db ]]; then
	if [[ -f bench/db.sh ]]; then
		bash bench/db.sh || status=1
	else
		echo "bench: no bench/db.sh yet, skipping the db benchmark" >&2
	fi
fi

exit "$status"
