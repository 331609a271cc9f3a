#!/usr/bin/env bash
# Cutover-night rehearsal (issue 10, "Cutover window"), files side: the write
# freeze timed step by step, with `verify files --checksum` incremental (it
# re-reads only what changed since the full verification made before the
# freeze) beside the full `--checksum` it replaces. Run through tools/testenv:
#
#   BENCH_ONLY=cutover go run ./tools/testenv -pg=false -fast=false -- ./bench/run.sh
#
# Steps: generate BENCH_FILES receipts, initial files sync, full verify files
# --checksum (days before: it records a proof per file); then the changes
# since the last sync round (BENCH_NEW_PCT new files, BENCH_REWRITE_PCT
# rewritten ones, a quarter of those same-size with the mtime put back);
# then the freeze: final files sync, verify files --checksum (incremental),
# report. For comparison, after the freeze: verify files (size only) and
# verify files --checksum --full on the same state.
#
# Each verify files step starts with the tree's files out of the page cache
# (bench/evict, posix_fadvise on the tree only): on cutover night the share is
# NFS, and 4.4 GiB of receipts are not in the migration host's cache.
# BENCH_COLD=0 leaves the cache alone.
#
# Knobs: BENCH_FILES (default 200000; the issue's scale is 1000000),
# BENCH_NEW_PCT (2), BENCH_REWRITE_PCT (0.2), BENCH_SEED (1),
# BENCH_KWICKMIG (bin/kwickmig), BENCH_OUT (bench/out), BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${KWICKMIG_TEST_S3_ENDPOINT:?not set: run through tools/testenv}"
N=${BENCH_FILES:-200000}
NEW_PCT=${BENCH_NEW_PCT:-2}
REWRITE_PCT=${BENCH_REWRITE_PCT:-0.2}
SEED=${BENCH_SEED:-1}
KWICKMIG=${BENCH_KWICKMIG:-bin/kwickmig}
OUT=${BENCH_OUT:-bench/out}
ENDPOINT=${KWICKMIG_TEST_S3_ENDPOINT%/}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kwickmig-bench-cutover.XXXXXX")
trap '[[ ${BENCH_KEEP:-0} == 1 ]] || rm -rf "$WORK"' EXIT
log() { printf '%s bench cutover: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

export AWS_ACCESS_KEY_ID=${KWICKMIG_TEST_S3_ACCESS_KEY:-} AWS_SECRET_ACCESS_KEY=${KWICKMIG_TEST_S3_SECRET_KEY:-}
export AWS_REGION=${KWICKMIG_TEST_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export KWICKMIG_STATE=$WORK/state

mkdir -p "$WORK/bin" "$OUT/logs/cutover-$N"
go build -o "$WORK/bin/" ./bench/gentree ./bench/mkbucket ./bench/evict
[[ -x $KWICKMIG ]] || go build -o "$KWICKMIG" ./cmd/kwickmig
LOGS=$OUT/logs/cutover-$N
RESULTS=$WORK/steps.tsv
: >"$RESULTS"

# timed STEP FREEZE -- CMD...: runs CMD, records its wall time; FREEZE is
# "freeze" for the steps inside the write freeze. Exit 2 (differences) is
# recorded, not fatal: the rehearsal reports it.
timed() {
	local step=$1 freeze=$2 rc=0 t0 t1
	shift 3
	if [[ ${BENCH_COLD:-1} == 1 && $step == verify-* ]]; then
		"$WORK/bin/evict" "$TREE" 2>/dev/null
	fi
	t0=$(date +%s.%N)
	"$@" >"$LOGS/$step.log" 2>&1 || rc=$?
	t1=$(date +%s.%N)
	printf '%s\t%s\t%s\t%s\n' "$step" "$freeze" "$(echo "$t1 - $t0" | bc)" "$rc" >>"$RESULTS"
	log "$step: $(echo "$t1 - $t0" | bc | xargs printf %.2f) s (exit $rc)"
	if [[ $rc != 0 && $rc != 2 ]]; then
		tail -5 "$LOGS/$step.log" >&2
		return "$rc"
	fi
}

BUCKET=bench-cutover-$(date -u +%Y%m%d%H%M%S)
"$WORK/bin/mkbucket" "$BUCKET"
DST=s3://$BUCKET/receipts
TREE=$WORK/tree
FILES=(--src "$TREE" --dst "$DST" --endpoint-url "$ENDPOINT")

log "generating $N files"
"$WORK/bin/gentree" -dir "$TREE" -n "$N" -seed "$SEED" 2>>"$LOGS/gentree.log"
timed initial-sync before -- "$KWICKMIG" files sync -q "${FILES[@]}"
timed verify-checksum-full-before before -- "$KWICKMIG" verify files --checksum "${FILES[@]}" --report "$WORK/verify-before.json"

NEW=$(awk -v n="$N" -v p="$NEW_PCT" 'BEGIN { printf "%d", n * p / 100 }')
log "changes since the last round: $NEW new files, $REWRITE_PCT% rewritten"
"$WORK/bin/gentree" -dir "$TREE" -n "$N" -seed "$SEED" -append "$NEW" 2>>"$LOGS/gentree.log"
"$WORK/bin/gentree" -dir "$TREE" -n "$N" -seed "$SEED" -change "$REWRITE_PCT" -manifest "$WORK/changed.tsv" 2>>"$LOGS/gentree.log"
REWRITTEN=$(wc -l <"$WORK/changed.tsv")
sync 2>/dev/null || true

# --- the write freeze -----------------------------------------------------------
timed final-sync freeze -- "$KWICKMIG" files sync -q "${FILES[@]}"
timed verify-checksum-incremental freeze -- "$KWICKMIG" verify files --checksum "${FILES[@]}" --report "$WORK/verify-incr.json"
timed report freeze -- "$KWICKMIG" report

# --- what the freeze would cost otherwise ------------------------------------------
timed verify-size after -- "$KWICKMIG" verify files "${FILES[@]}" --report "$WORK/verify-size.json"
timed verify-checksum-full after -- "$KWICKMIG" verify files --checksum --full "${FILES[@]}" --report "$WORK/verify-full.json"

python3 - "$RESULTS" "$N" "$NEW" "$REWRITTEN" "$WORK" <<'PY' | tee "$OUT/cutover-$N.md"
import json, os, sys
steps = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
n, new, rewritten, work = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
t = {s[0]: float(s[2]) for s in steps}
def rep(name):
    p = os.path.join(work, name)
    return json.load(open(p)) if os.path.exists(p) else {}
incr, full, before = rep("verify-incr.json"), rep("verify-full.json"), rep("verify-before.json")
print(f"cutover rehearsal, files side: {n} files, then {new} new and {rewritten} rewritten (bench/cutover.sh)\n")
print("| step | wall s | exit | content checked | proven earlier |")
print("|---|---:|---:|---:|---:|")
for s in steps:
    r = {"verify-checksum-incremental": incr, "verify-checksum-full": full, "verify-checksum-full-before": before}.get(s[0], {})
    cc = r.get("content_checked", "")
    pe = r.get("proven_earlier", "") if r else ""
    mark = " (freeze)" if s[1] == "freeze" else ""
    print(f"| {s[0]}{mark} | {float(s[2]):.2f} | {s[3]} | {cc} | {pe} |")
freeze = sum(float(s[2]) for s in steps if s[1] == "freeze")
alt = freeze - t["verify-checksum-incremental"] + t["verify-checksum-full"]
print()
print(f"- files freeze (final sync + verify files --checksum + report): **{freeze:.1f} s** incremental, "
      f"{alt:.1f} s with the full --checksum ({alt / freeze:.1f}x)")
print(f"- verify files --checksum: incremental {t['verify-checksum-incremental']:.1f} s vs full {t['verify-checksum-full']:.1f} s "
      f"({t['verify-checksum-full'] / t['verify-checksum-incremental']:.1f}x); size only {t['verify-size']:.1f} s (the listing floor)")
if incr:
    print(f"- incremental re-read {incr.get('content_checked')} files ({incr.get('bytes_read', 0) / 1e6:.1f} MB; changed {new + rewritten} + "
          f"{incr.get('proven_resampled', 0)} sampled at {incr.get('sample_proven_pct', 0)}%), carried over {incr.get('proven_earlier')}; "
          f"mismatches {incr.get('mismatches')}, full: {incr.get('full')}")
PY
