#!/usr/bin/env bash
# Peak RSS at scale (issue 10, "Memory at scale is the peak"): every command
# that opens a large checkpoint, measured with /usr/bin/time -v (Maximum
# resident set size) on a BENCH_FILES tree, warm page cache and then cold
# (bench/evict on the tree and on the state directory, so opening files.db
# reads it from disk). Run through tools/testenv:
#
#   BENCH_FILES=1000000 go run ./tools/testenv -pg=false -fast=false -- bash bench/peakrss.sh
#
# Steps: gentree, initial files sync, full verify files --checksum (records a
# proof per file); then, warm and cold: no-change files sync, verify files
# (size only), verify files --checksum (incremental), report.
# Prints a TSV (step, cache, wall s, max RSS MB, exit) to stdout and
# bench/out/peakrss-N.tsv. Knobs: BENCH_FILES (default 1000000), BENCH_SEED,
# BENCH_KWICKMIG, BENCH_OUT, BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${KWICKMIG_TEST_S3_ENDPOINT:?not set: run through tools/testenv}"
N=${BENCH_FILES:-1000000}
SEED=${BENCH_SEED:-1}
KWICKMIG=${BENCH_KWICKMIG:-bin/kwickmig}
OUT=${BENCH_OUT:-bench/out}
ENDPOINT=${KWICKMIG_TEST_S3_ENDPOINT%/}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kwickmig-bench-peakrss.XXXXXX")
trap '[[ ${BENCH_KEEP:-0} == 1 ]] || rm -rf "$WORK"' EXIT
log() { printf '%s bench peakrss: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

export AWS_ACCESS_KEY_ID=${KWICKMIG_TEST_S3_ACCESS_KEY:-} AWS_SECRET_ACCESS_KEY=${KWICKMIG_TEST_S3_SECRET_KEY:-}
export AWS_REGION=${KWICKMIG_TEST_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export KWICKMIG_STATE=$WORK/state

mkdir -p "$WORK/bin" "$OUT/logs/peakrss-$N"
go build -o "$WORK/bin/" ./bench/gentree ./bench/mkbucket ./bench/evict
[[ -x $KWICKMIG ]] || go build -o "$KWICKMIG" ./cmd/kwickmig
LOGS=$OUT/logs/peakrss-$N
RESULTS=$OUT/peakrss-$N.tsv
printf 'step\tcache\twall_s\tmaxrss_mb\texit\n' >"$RESULTS"

# timed STEP CACHE -- CMD...: CMD under /usr/bin/time -v; CACHE=cold evicts
# the tree and the state directory first. Exit 2 is recorded, not fatal.
timed() {
	local step=$1 cache=$2 rc=0 t0 t1 rss
	shift 3
	if [[ $cache == cold ]]; then
		sync
		"$WORK/bin/evict" "$TREE" 2>/dev/null
		"$WORK/bin/evict" "$KWICKMIG_STATE" 2>/dev/null
	fi
	t0=$(date +%s.%N)
	/usr/bin/time -v -o "$LOGS/$step-$cache.time" "$@" >"$LOGS/$step-$cache.log" 2>&1 || rc=$?
	t1=$(date +%s.%N)
	rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$LOGS/$step-$cache.time")
	printf '%s\t%s\t%.2f\t%s\t%s\n' "$step" "$cache" "$(echo "$t1 - $t0" | bc)" "$rss" "$rc" | tee -a "$RESULTS" >&2
	if [[ $rc != 0 && $rc != 2 ]]; then
		tail -5 "$LOGS/$step-$cache.log" >&2
		return "$rc"
	fi
}

BUCKET=bench-peakrss-$(date -u +%Y%m%d%H%M%S)
"$WORK/bin/mkbucket" "$BUCKET"
DST=s3://$BUCKET/receipts
TREE=$WORK/tree
FILES=(--src "$TREE" --dst "$DST" --endpoint-url "$ENDPOINT")

log "generating $N files"
"$WORK/bin/gentree" -dir "$TREE" -n "$N" -seed "$SEED" 2>>"$LOGS/gentree.log"
timed initial-sync warm -- "$KWICKMIG" files sync -q "${FILES[@]}"
timed verify-checksum-full warm -- "$KWICKMIG" verify files -q --checksum "${FILES[@]}"
for cache in warm cold; do
	timed nochange-sync "$cache" -- "$KWICKMIG" files sync -q "${FILES[@]}"
	timed verify-size "$cache" -- "$KWICKMIG" verify files -q "${FILES[@]}"
	timed verify-checksum-incremental "$cache" -- "$KWICKMIG" verify files -q --checksum "${FILES[@]}"
	timed report "$cache" -- "$KWICKMIG" report
done
ls -l "$KWICKMIG_STATE" >"$LOGS/state.ls"
cat "$RESULTS"
