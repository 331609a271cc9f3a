#!/usr/bin/env bash
# make demo: the README's cutover runbook, command for command, on generated
# data. Run by `go run ./tools/testenv -- scripts/demo.sh`, which has started
# versitygw and two PostgreSQL clusters (source and target) and exported
# their addresses. It ends with a report that says GO, then makes one late
# change and shows the report saying NO-GO with the reason.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${DEMO_RECEIPTS:-5000}
LATE=${DEMO_LATE:-300}
PAUSE=${DEMO_SYNC_PAUSE:-2}   # the runbook's loop sleeps 300 s between syncs
work=${DEMO_DIR:-$(mktemp -d /tmp/kwickmig-demo-XXXXXX)}
mkdir -p "$work"
K=${KWICKMIG_BIN:-bin/kwickmig}
go build -o bin/demodata ./tools/demodata
D=bin/demodata
kwickmig() { "$K" "$@"; }   # the runbook's commands, as written

export AWS_ACCESS_KEY_ID=$KWICKMIG_TEST_S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$KWICKMIG_TEST_S3_SECRET_KEY
export AWS_REGION=$KWICKMIG_TEST_S3_REGION
export AWS_ENDPOINT_URL=$KWICKMIG_TEST_S3_ENDPOINT   # kwickmig honours the SDK's variable, as with real S3
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ kwickmig %s\n' "$*"; kwickmig "$@"; }

step "Generate $N receipts (files on the 'NFS share' and rows in the old database)"
SRC_DB=$($D createdb "$KWICKMIG_TEST_PG_SOURCE" receipts)
DST_DB=$($D createdb "$KWICKMIG_TEST_PG_TARGET" receipts)
$D init -dir "$work/receipts" -db "$SRC_DB" -n "$N"
$D mkbucket kwick-receipts
SRC="$work/receipts" DST=s3://kwick-receipts/receipts

step "The runbook's environment: one state directory, the two databases"
export KWICKMIG_STATE="$work/kwickmig-state"
export KWICKMIG_SOURCE_URL=$SRC_DB KWICKMIG_TARGET_URL=$DST_DB   # no passwords on command lines
echo "KWICKMIG_STATE=$KWICKMIG_STATE"

step "Days before cutover: the first files sync, its full checksum proof, then the sync loop in the background"
run files sync --src "$SRC" --dst "$DST"
run verify files --src "$SRC" --dst "$DST" --checksum   # proves every file once: cutover night re-reads only what changes after
set -m   # the loop is a job of its own (as in an interactive shell): kill %1 stops it and the sync it runs
echo "\$ while :; do kwickmig files sync -q --src $SRC --dst $DST; sleep $PAUSE; done &   # output: $work/sync-loop.log"
set +e   # a sync that fails in the loop must not end the loop (as in an interactive shell)
while :; do kwickmig files sync -q --src "$SRC" --dst "$DST"; sleep "$PAUSE"; done >"$work/sync-loop.log" 2>&1 &
set -e

step "While the loop runs: change capture, the bulk copy, and late writes"
run db capture install
run db copy
$D late -dir "$SRC" -db "$SRC_DB" -n "$LATE"   # the application keeps writing: $LATE new receipts, corrections, deletions
run db capture status
run report   # the state so far: NO-GO (nothing verified yet), the loop's sync shown if one is running

step "Cutover night: the application is stopped; stop the sync loop, last sync, final delta"
echo '$ kill %1; wait'
kill %1; wait
run files sync --src "$SRC" --dst "$DST"
run db final-delta

step "Cross-check (demo only): every table identical on source and target"
$D compare "$SRC_DB" "$DST_DB"

step "Verify: files, rows, and the file keys the rows reference"
run verify files --src "$SRC" --dst "$DST" --checksum
run verify db
run verify refs --query 'SELECT file_key FROM receipts' --dst "$DST"

step "The go/no-go"
run report --html "$work/cutover-report.html" --require-go   # exit 2 on NO-GO: the demo stops here if it is not GO

step "A late change after the verdict: one more receipt (a new file and its rows)"
$D late -dir "$SRC" -db "$SRC_DB" -n 1
set +e
run verify files --src "$SRC" --dst "$DST" --checksum
rc_verify=$?
run report --html "$work/cutover-report.html" --require-go
rc_report=$?
set -e
if [ "$rc_verify" != 2 ] || [ "$rc_report" != 2 ]; then
	echo "demo: after the late change, verify files exited $rc_verify and report $rc_report (want 2 and 2: NO-GO)" >&2
	exit 1
fi
step "Done. State: $KWICKMIG_STATE; report: $work/cutover-report.html; sync loop log: $work/sync-loop.log"
