#!/usr/bin/env bash
# Verify benchmark: `kwickmig verify files` (size, --checksum) beside
# `rclone check` (--size-only, and with hashes) on the same generated tree and
# bucket, with the initial `kwickmig files sync` as the reference the issue's
# target is stated against (verify under 0.3x the initial upload, faster than
# rclone check). Run through tools/testenv:
#
#   go run ./tools/testenv -fast=false -- ./bench/verify.sh
#
# Knobs: BENCH_FILES (default 100000), BENCH_SEED (1), BENCH_KWICKMIG
# (bin/kwickmig), BENCH_OUT (bench/out), BENCH_KEEP=1 keeps the tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${KWICKMIG_TEST_S3_ENDPOINT:?not set: run through tools/testenv}"
N=${BENCH_FILES:-100000}
SEED=${BENCH_SEED:-1}
KWICKMIG=${BENCH_KWICKMIG:-bin/kwickmig}
OUT=${BENCH_OUT:-bench/out}
TOOLS_DIR=${KWICKMIG_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/kwickmig-tools}
ENDPOINT=${KWICKMIG_TEST_S3_ENDPOINT%/}
PORT=${ENDPOINT##*:}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kwickmig-bench-verify.XXXXXX")
trap '[[ ${BENCH_KEEP:-0} == 1 ]] || rm -rf "$WORK"' EXIT
log() { printf '%s bench verify: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

export AWS_ACCESS_KEY_ID=$KWICKMIG_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$KWICKMIG_TEST_S3_SECRET_KEY
export AWS_REGION=${KWICKMIG_TEST_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export RCLONE_CONFIG=$WORK/rclone.conf RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
export RCLONE_CONFIG_BENCH_ENDPOINT=$ENDPOINT RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY RCLONE_CONFIG_BENCH_REGION=$AWS_REGION
export RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
: >"$RCLONE_CONFIG"

RCLONE=""
if [[ -x $TOOLS_DIR/rclone ]]; then RCLONE=$TOOLS_DIR/rclone; elif command -v rclone >/dev/null; then RCLONE=$(command -v rclone); fi

mkdir -p "$WORK/bin" "$OUT/logs/verify-$N"
go build -o "$WORK/bin/" ./bench/gentree ./bench/measure ./bench/mkbucket
[[ -x $KWICKMIG ]] || go build -o "$KWICKMIG" ./cmd/kwickmig
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
measured() { # TOOL PHASE -- CMD...
	local tool=$1 phase=$2
	shift 3
	"$WORK/bin/measure" -tool "$tool" -phase "$phase" -files "$N" -out "$RESULTS" \
		-log "$OUT/logs/verify-$N/$tool-$phase.log" -server-port "$PORT" -- "$@"
}

log "generating $N files"
"$WORK/bin/gentree" -dir "$WORK/tree" -n "$N" -seed "$SEED" >/dev/null
BUCKET=bench-verify-$(date -u +%Y%m%d%H%M%S)
"$WORK/bin/mkbucket" "$BUCKET"
DST=s3://$BUCKET
log "initial files sync (the reference)"
measured kwickmig sync -- "$KWICKMIG" files sync --src "$WORK/tree" --dst "$DST" --endpoint-url "$ENDPOINT" --checkpoint "$WORK/cp.db"
sync 2>/dev/null || true
log "verify files (size)"
measured kwickmig verify -- "$KWICKMIG" verify files --src "$WORK/tree" --dst "$DST" --endpoint-url "$ENDPOINT" --checkpoint "$WORK/cp.db"
log "verify files --checksum"
measured kwickmig verify-checksum -- "$KWICKMIG" verify files --checksum --src "$WORK/tree" --dst "$DST" --endpoint-url "$ENDPOINT" --checkpoint "$WORK/cp.db"
if [[ -n $RCLONE ]]; then
	log "rclone check --size-only"
	measured rclone check-size -- "$RCLONE" check "$WORK/tree" "bench:$BUCKET" --size-only --checkers 64 --fast-list --s3-no-check-bucket
	log "rclone check (hashes)"
	measured rclone check -- "$RCLONE" check "$WORK/tree" "bench:$BUCKET" --checkers 64 --fast-list --s3-no-check-bucket
else
	log "rclone not found (build it with bench/files.sh or apt-get install rclone): its rows are skipped"
fi

python3 - "$RESULTS" "$N" <<'PY' | tee "$OUT/verify-$N.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["tool"], r["phase"]): r for r in rows}
print(f"verify files benchmark, N = {sys.argv[2]} (bench/verify.sh)\n")
print("| run | wall s | files/s | peak RSS MB | CPU s | server CPU s | exit |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['tool']} {r['phase']} | {r['wall_s']:.2f} | {r['files_per_s']:.0f} | {r['max_rss_mb']:.0f} | "
          f"{r['user_s']+r['sys_s']:.1f} | {r.get('server_cpu_s', 0):.1f} | {r['exit_code']} |")
sync = by.get(("kwickmig", "sync"))
v, vc = by.get(("kwickmig", "verify")), by.get(("kwickmig", "verify-checksum"))
rs, rh = by.get(("rclone", "check-size")), by.get(("rclone", "check"))
print()
if sync and v:
    print(f"- verify files / initial upload: {v['wall_s']/sync['wall_s']:.2f}x (target < 0.3x)")
if rs and v:
    print(f"- verify files vs rclone check --size-only: {rs['wall_s']/v['wall_s']:.1f}x faster")
if rh and vc:
    print(f"- verify files --checksum vs rclone check (hashes): {rh['wall_s']/vc['wall_s']:.1f}x faster")
PY
