#!/usr/bin/env bash
# Verify benchmark: `kwickmig verify files` (size, --checksum) beside
# `rclone check` (--size-only, and with hashes) on the same generated tree and
# bucket, with the initial `kwickmig files sync` as the reference the issue's
# target is stated against (verify under 0.3x the initial upload, faster than
# rclone check). Run through tools/testenv:
#
#   go run ./tools/testenv -fast=false -- ./bench/verify.sh
#
# Then, when tools/testenv also started PostgreSQL, `verify db` on a generated
# receipts-like database (BENCH_DB_ROWS receipts, 1.5 lines each) beside the
# COPY-read floor: `COPY … TO STDOUT` of every table of both databases, the
# two sides in parallel (target: verify db at least 0.5x the floor's speed).
#
# Knobs: BENCH_FILES (default 100000), BENCH_SEED (1), BENCH_KWICKMIG
# (bin/kwickmig), BENCH_OUT (bench/out), BENCH_KEEP=1 keeps the tree,
# BENCH_ONLY=files|db, BENCH_DB_ROWS (default 1000000), BENCH_DB_JOBS (2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ${BENCH_ONLY:-} != db ]]; then
	: "${KWICKMIG_TEST_S3_ENDPOINT:?not set: run through tools/testenv}"
fi
N=${BENCH_FILES:-100000}
SEED=${BENCH_SEED:-1}
KWICKMIG=${BENCH_KWICKMIG:-bin/kwickmig}
OUT=${BENCH_OUT:-bench/out}
TOOLS_DIR=${KWICKMIG_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/kwickmig-tools}
ENDPOINT=${KWICKMIG_TEST_S3_ENDPOINT:-}
ENDPOINT=${ENDPOINT%/}
PORT=${ENDPOINT##*:}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kwickmig-bench-verify.XXXXXX")
trap '[[ ${BENCH_KEEP:-0} == 1 ]] || rm -rf "$WORK"' EXIT
log() { printf '%s bench verify: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

export AWS_ACCESS_KEY_ID=${KWICKMIG_TEST_S3_ACCESS_KEY:-} AWS_SECRET_ACCESS_KEY=${KWICKMIG_TEST_S3_SECRET_KEY:-}
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

if [[ ${BENCH_ONLY:-} != db ]]; then
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
fi

# --- verify db ----------------------------------------------------------------
if [[ -n ${KWICKMIG_TEST_PG_SOURCE:-} && ${BENCH_ONLY:-db} != files ]] && command -v psql >/dev/null; then
	ROWS=${BENCH_DB_ROWS:-1000000}
	JOBS=${BENCH_DB_JOBS:-2}
	DB=vbench_$(date -u +%H%M%S)
	S=${KWICKMIG_TEST_PG_SOURCE%/*}/$DB
	T=${KWICKMIG_TEST_PG_TARGET%/*}/$DB
	log "building database $DB ($ROWS receipts) on both clusters"
	SQL="CREATE TABLE receipts (id bigserial PRIMARY KEY, store int NOT NULL, issued_at timestamptz NOT NULL,
		total numeric(12,2) NOT NULL, payload jsonb NOT NULL, file_key text NOT NULL);
	INSERT INTO receipts (store, issued_at, total, payload, file_key)
		SELECT g % 25, timestamptz '2026-01-01 00:00:00+00' + g * interval '7 s', (g % 10000) * 0.37,
			jsonb_build_object('id', g, 'lines', jsonb_build_array(repeat('x', 200), g % 97, 'Kanelbulle'), 'hash', md5(g::text)),
			'store-' || (g % 25) || '/' || g || '.json'
		FROM generate_series(1, $ROWS) g;
	CREATE TABLE receipt_lines (receipt_id bigint, line_no int, product text, qty int, PRIMARY KEY (receipt_id, line_no));
	INSERT INTO receipt_lines SELECT g / 3 + 1, g % 3, 'p' || (g % 97), g % 5 FROM generate_series(0, $ROWS * 3 / 2) g;
	CREATE TABLE audit (at timestamptz, what text);
	INSERT INTO audit SELECT timestamptz '2026-01-01 00:00:00+00' + g * interval '1 min', 'event ' || (g % 13) FROM generate_series(1, $ROWS / 10) g;"
	psql -qX "$KWICKMIG_TEST_PG_SOURCE" -c "CREATE DATABASE $DB"
	psql -qX "$KWICKMIG_TEST_PG_TARGET" -c "CREATE DATABASE $DB"
	psql -qX "$S" -c "$SQL" &
	psql -qX "$T" -c "$SQL"
	wait
	psql -qX "$S" -c "VACUUM ANALYZE" & psql -qX "$T" -c "VACUUM ANALYZE"
	wait
	size=$(psql -qXtA "$S" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
	copyread() {
		for t in receipts receipt_lines audit; do psql -qX "$1" -c "COPY $t TO STDOUT" >/dev/null; done
	}
	log "COPY-read floor"
	t0=$(date +%s.%N)
	copyread "$S" &
	copyread "$T"
	wait
	floor=$(printf %.2f "$(echo "$(date +%s.%N) - $t0" | bc)")
	log "verify db --jobs $JOBS"
	t0=$(date +%s.%N)
	"$KWICKMIG" verify db --source "$S" --target "$T" --jobs "$JOBS" --checkpoint '' >"$OUT/logs/verify-db.log" 2>&1
	vdb=$(printf %.2f "$(echo "$(date +%s.%N) - $t0" | bc)")
	# The same proof without a network path: a manifest of the source
	# (verify db --out), then the target compared with it (verify db --in).
	log "verify db --out / --in (manifest)"
	t0=$(date +%s.%N)
	"$KWICKMIG" verify db --source "$S" --out "$WORK/manifest" --jobs "$JOBS" --checkpoint '' >"$OUT/logs/verify-db-out.log" 2>&1
	vout=$(printf %.2f "$(echo "$(date +%s.%N) - $t0" | bc)")
	t0=$(date +%s.%N)
	"$KWICKMIG" verify db --target "$T" --in "$WORK/manifest" --jobs "$JOBS" --checkpoint '' >"$OUT/logs/verify-db-in.log" 2>&1
	vin=$(printf %.2f "$(echo "$(date +%s.%N) - $t0" | bc)")
	msize=$(du -sh "$WORK/manifest" | cut -f1)
	{
		echo
		echo "verify db benchmark: $ROWS receipts, $((ROWS * 3 / 2)) lines, $((ROWS / 10)) audit rows ($size per database), --jobs $JOBS"
		echo
		echo "| run | wall s |"
		echo "|---|---:|"
		echo "| COPY-read floor (all tables, both databases in parallel) | $floor |"
		echo "| kwickmig verify db | $vdb |"
		echo "| kwickmig verify db --out (manifest of the source, $msize) | $vout |"
		echo "| kwickmig verify db --in (target compared with the manifest) | $vin |"
		echo
		echo "- verify db speed / COPY-read floor: $(echo "scale=2; $floor / $vdb" | bc)x (target >= 0.5x)"
	} | tee "$OUT/verify-db.md"
	psql -qX "$KWICKMIG_TEST_PG_SOURCE" -c "DROP DATABASE $DB" >/dev/null
	psql -qX "$KWICKMIG_TEST_PG_TARGET" -c "DROP DATABASE $DB" >/dev/null
fi
