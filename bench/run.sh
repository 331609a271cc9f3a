#!/usr/bin/env bash
# make bench: the side-by-side benchmarks, run inside tools/testenv (versitygw
# and two PostgreSQL clusters, addresses in KWICKMIG_TEST_*). Each benchmark
# runs even if an earlier one failed; the exit status says whether all passed.
#   BENCH_ONLY=files|db|verify|latency|capture   run just one of them
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Each benchmark runs as a background child that is waited for, so that
# testenv's SIGTERM (or Ctrl-C) is passed on to it at once.
CHILD=""
# shellcheck disable=SC2317 # called by the trap below
on_signal() {
	if [[ -n $CHILD ]]; then
		kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" || true
	fi
	exit 130
}
trap on_signal INT TERM

status=0
step() {
	local rc=0
	"$@" &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=""
	if [[ $rc != 0 ]]; then
		echo "bench: $* failed (exit $rc)" >&2
		status=1
	fi
}

only=${BENCH_ONLY:-}

if [[ -z $only || $only == files ]]; then
	step ./bench/files.sh
fi

# --- db benchmark hook ---------------------------------------------------------
# bench/db.sh (and anything under bench/db/) belongs to the database work; this
# script only calls it when it exists.
if [[ -z $only || $only == db ]]; then
	if [[ -f bench/db.sh ]]; then
		step bash bench/db.sh
	else
		echo "bench: no bench/db.sh yet, skipping the db benchmark" >&2
	fi
fi

# --- cutover rehearsal -------------------------------------------------------------
# bench/cutover.sh (BENCH_ONLY=cutover, see bench/cutover.md): the write
# freeze step by step, incremental verify files --checksum beside the full one.
if [[ -z $only || $only == cutover ]]; then
	step bash bench/cutover.sh
fi

# --- verify benchmark ------------------------------------------------------------
# bench/verify.sh: verify files vs rclone check, verify db vs the COPY-read floor.
if [[ -z $only || $only == verify ]]; then
	if [[ -f bench/verify.sh ]]; then
		step bash bench/verify.sh
	fi
fi

# --- latency sweep -----------------------------------------------------------------
# bench/latency.sh: files sync through a TCP delay proxy at 0/10/30/60 ms RTT
# against rclone, s5cmd and aws s3 sync.
if [[ -z $only || $only == latency ]]; then
	step bash bench/latency.sh
fi

# --- capture overhead benchmark ------------------------------------------------------
# bench/capture.sh: pgbench and a 1M-row UPDATE with and without change capture.
if [[ -z $only || $only == capture ]]; then
	if [[ -f bench/capture.sh ]]; then
		step bash bench/capture.sh
	fi
fi

exit "$status"
