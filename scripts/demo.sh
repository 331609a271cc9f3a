#!/usr/bin/env bash
# make demo: the migration end to end on generated data. Run by
# `go run ./tools/testenv -- scripts/demo.sh`, which has started versitygw and
# two PostgreSQL clusters (source and target) and exported their addresses.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${DEMO_RECEIPTS:-5000}
LATE=${DEMO_LATE:-300}
work=${DEMO_DIR:-$(mktemp -d /tmp/kwickmig-demo-XXXXXX)}
mkdir -p "$work"
K=bin/kwickmig
go build -o bin/demodata ./tools/demodata
D=bin/demodata

export AWS_ACCESS_KEY_ID=$KWICKMIG_TEST_S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$KWICKMIG_TEST_S3_SECRET_KEY
export AWS_REGION=$KWICKMIG_TEST_S3_REGION
export AWS_ENDPOINT_URL=$KWICKMIG_TEST_S3_ENDPOINT   # kwickmig honours the SDK's variable, as with real S3
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Generate $N receipts (files on the 'NFS share' and rows in the old database)"
SRC_DB=$($D createdb "$KWICKMIG_TEST_PG_SOURCE" receipts)
DST_DB=$($D createdb "$KWICKMIG_TEST_PG_TARGET" receipts)
export KWICKMIG_SOURCE_URL=$SRC_DB KWICKMIG_TARGET_URL=$DST_DB   # no passwords on command lines
$D init -dir "$work/receipts" -db "$SRC_DB" -n "$N"
$D mkbucket kwick-receipts
CP="$work/kwickmig.db"

step "Days before cutover: first files sync"
run $K files sync --src "$work/receipts" --dst s3://kwick-receipts/receipts --checkpoint "$CP" --report "$work/files-1.json"

step "Install change capture on the source, then the bulk copy from one snapshot"
run $K db capture install
run $K db copy --checkpoint "$CP" --report "$work/db-copy.json"

step "Late writes until cutover: $LATE new receipts, corrections, deletions"
$D late -dir "$work/receipts" -db "$SRC_DB" -n "$LATE"
run $K db capture status

step "Cutover night: the application is stopped; last files sync and the final delta"
run $K files sync --src "$work/receipts" --dst s3://kwick-receipts/receipts --checkpoint "$CP" --report "$work/files-2.json"
run $K db final-delta --checkpoint "$CP" --report "$work/delta.json"

step "Cross-check: every table identical on source and target"
$D compare "$SRC_DB" "$DST_DB"

step "Verify: files, rows, and the file keys the rows reference"
run $K verify files --src "$work/receipts" --dst s3://kwick-receipts/receipts --checkpoint "$CP" --checksum --report "$work/verify-files.json"
run $K verify db --checkpoint "$CP" --report "$work/verify-db.json"
run $K verify refs --query 'SELECT file_key FROM receipts' --dst s3://kwick-receipts/receipts --checkpoint "$CP"   # --source-db defaults to $KWICKMIG_SOURCE_URL

step "Cutover report"
run $K report --checkpoint "$CP" --html "$work/report.html"
step "Done. Work directory: $work (reports: files-1.json files-2.json db-copy.json delta.json)"
