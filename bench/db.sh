#!/usr/bin/env bash
# Database benchmark: kwickmig db copy / export+import / final-delta side by
# side with pg_dump -Fd + pg_restore, pgcopydb clone and a plain COPY pipe (the
# floor), on the same two PostgreSQL clusters, with the same job count, each
# into a fresh target database. See bench/README.md ("Database benchmark").
#
# Run it through tools/testenv (two PostgreSQL clusters, KWICKMIG_TEST_PG_*):
#
#   make build && go run ./tools/testenv -fast=false -s3=false -- bash bench/db.sh
#   BENCH_ONLY=db make bench
#
# Knobs (environment):
#   BENCH_DB_SCALE=1         1 = 2M receipts, 6M lines, about 2.4 GB; 0.02 = smoke run
#   BENCH_DB_JOBS=2          N: --jobs/--index-jobs, pg_dump/pg_restore/vacuumdb -j, pgcopydb --table-jobs/--index-jobs
#   BENCH_DB_RUNS=1          rounds of the timed bulk runs (interleaved; medians reported)
#   BENCH_DB_TOOLS="kwickmig dump pgcopydb floor export delta"   which runs to do
#   BENCH_DB_SPLIT=4GB       split threshold for kwickmig (--split-larger-than) and pgcopydb (--split-tables-larger-than)
#   BENCH_DB_CHANGES=100000  row changes for the final-delta runs
#   BENCH_DB_SMALL_SCALE=0.04  the small database of the delta comparison (80,000 receipts)
#   BENCH_DB_GEN_JOBS=$BENCH_DB_JOBS   parallel sessions generating the data
#   BENCH_DB_TIMEOUT=2h      per command
#   BENCH_DB_DROP=0          1 = drop the generated source databases at the end (else kept for reuse)
#   BENCH_PGCOPYDB_ARGS=""   extra flags for pgcopydb clone
#   BENCH_KWICKMIG=bin/kwickmig, BENCH_OUT=bench/out, BENCH_INSTALL=1 (apt-get install pgcopydb if missing)
# shellcheck disable=SC2317 # run_TOOL and the traps are called indirectly
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${KWICKMIG_TEST_PG_SOURCE:?not set: run through tools/testenv (make bench)}"
: "${KWICKMIG_TEST_PG_TARGET:?not set: run through tools/testenv (make bench)}"

SCALE=${BENCH_DB_SCALE:-1}
JOBS=${BENCH_DB_JOBS:-2}
RUNS=${BENCH_DB_RUNS:-1}
TOOLS=${BENCH_DB_TOOLS:-kwickmig dump pgcopydb floor export delta}
SPLIT=${BENCH_DB_SPLIT:-4GB}
CHANGES=${BENCH_DB_CHANGES:-100000}
SMALL=${BENCH_DB_SMALL_SCALE:-0.04}
GEN_JOBS=${BENCH_DB_GEN_JOBS:-$JOBS}
TIMEOUT=${BENCH_DB_TIMEOUT:-2h}
DROP=${BENCH_DB_DROP:-0}
PGCOPYDB_ARGS=${BENCH_PGCOPYDB_ARGS:-}
KWICKMIG=${BENCH_KWICKMIG:-bin/kwickmig}
OUT=${BENCH_OUT:-bench/out}
INSTALL=${BENCH_INSTALL:-1}
SRC0=$KWICKMIG_TEST_PG_SOURCE
TGT0=$KWICKMIG_TEST_PG_TARGET
LOGS=$OUT/logs/db
RESULTS=$OUT/db.jsonl
SQL=bench/db
export PGTZ=UTC PGAPPNAME=kwickmig-bench

log() { printf '%s bench db: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

for v in SCALE SMALL; do
	[[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v=${!v} is not a number"
done
for v in JOBS RUNS CHANGES GEN_JOBS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v} is not a positive integer"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kwickmig-bench-db.XXXXXX")
rm -rf "$LOGS" # this run's output only
mkdir -p "$LOGS" "$WORK/bin"
: >"$RESULTS"
STATUS=0

# --- processes ------------------------------------------------------------------
# Commands run as background children that are waited for, so that a signal
# (Ctrl-C, or testenv's SIGTERM through run.sh) reaches them at once.
CHILD=""
on_signal() {
	local p
	for p in $CHILD $(jobs -p); do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	exit 130
}
trap on_signal INT TERM
run_child() {
	local rc=0
	"$@" &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=""
	return "$rc"
}

# --- database helpers -------------------------------------------------------------

# dburl URL DB: URL with its database name replaced by DB.
dburl() {
	local u=$1 q=""
	if [[ $u == *\?* ]]; then q="?${u#*\?}"; fi
	u=${u%%\?*}
	printf '%s/%s%s\n' "${u%/*}" "$2" "$q"
}
psqlx() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
sqlval() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

createdb_on() { # CLUSTER_URL DB: a fresh, empty database
	psqlx -d "$1" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)" -c "CREATE DATABASE \"$2\"" >/dev/null
}
dropdb_on() { # CLUSTER_URL DB; then a checkpoint, so the next run starts clean
	psqlx -d "$1" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)" -c "CHECKPOINT" >/dev/null
}

# CPU of a whole cluster: the postmaster (whose cutime/cstime include every
# backend that has exited) plus its live children, in clock ticks.
postmaster_pid() {
	local dir
	dir=$(sqlval "$1" "SHOW data_directory")
	head -1 "$dir/postmaster.pid"
}
cpu_ticks() {
	local pm=$1 p a b sum
	reaped() { awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$pm/stat"; }
	# A backend reaped while the children are read would be missed: retry then.
	for _ in 1 2 3 4 5; do
		a=$(reaped)
		sum=$({
			cat "/proc/$pm/stat"
			for p in $(ps -o pid= --ppid "$pm"); do cat "/proc/$p/stat" 2>/dev/null || true; done
		} | awk '{ sub(/^.*\) /, ""); s += $12 + $13 + $14 + $15 } END { print s + 0 }')
		b=$(reaped)
		[[ $a != "$b" ]] || break
	done
	echo "$sum"
}
TICKS=$(getconf CLK_TCK)

# count_query URL: one query counting every table of the database (outside
# the system schemas and kwickmig's capture schema), one "table|rows" line each.
count_query() {
	sqlval "$1" "SELECT string_agg(format('SELECT %L AS t, count(*) AS n FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname), ' UNION ALL ' ORDER BY n.nspname, c.relname) || ' ORDER BY 1'
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
			AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'kwickmig') AND n.nspname NOT LIKE 'pg\\_%'"
}

# record JSON: append one record to the results.
record() { printf '%s\n' "$1" >>"$RESULTS"; }

# check_counts LABEL ROUND SOURCE_COUNTS TARGET_URL [QUERY]: row counts of
# every table on the target must equal the source's.
check_counts() {
	local label=$1 round=$2 want=$3 url=$4 q=${5:-$COUNT_Q} got ok=true
	got=$(sqlval "$url" "$q" 2>&1) || true
	if [[ $got != "$want" ]]; then
		ok=false
		STATUS=1
		log "!!!!! ROW COUNT MISMATCH after $label (round $round) !!!!!"
		diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | sed 's/^/    /' >&2 || true
	else
		log "row counts match ($label): $(printf '%s' "$got" | tr '\n' ' ')"
	fi
	record "$(jq -nc --arg c "$label" --argjson r "$round" --argjson ok "$ok" '{check: $c, round: $r, ok: $ok}')"
}

# timed TOOL PHASE ROUND -- CMD...: run CMD under bench/measure (wall, RSS,
# client CPU, load before) and add both clusters' CPU over the same interval.
timed() {
	local tool=$1 phase=$2 round=$3 rc=0 s0 t0 s1 t1 one=$WORK/one.jsonl
	shift 4
	rm -f "$one"
	log "$tool $phase (round $round), load $(cut -d' ' -f1-3 /proc/loadavg)"
	s0=$(cpu_ticks "$SRC_PM")
	t0=$(cpu_ticks "$TGT_PM")
	run_child "$WORK/bin/measure" -tool "$tool" -phase "$phase" -out "$one" -timeout "$TIMEOUT" \
		-log "$LOGS/$tool-$phase-r$round.log" -- "$@" || rc=$?
	s1=$(cpu_ticks "$SRC_PM")
	t1=$(cpu_ticks "$TGT_PM")
	if [[ -s $one ]]; then
		record "$(jq -c --argjson r "$round" --argjson s "$((s1 - s0))" --argjson t "$((t1 - t0))" --argjson hz "$TICKS" \
			'del(.files, .files_per_s) | .command |= gsub("://(?<u>[^:/@]+):[^@/]*@"; "://\(.u):***@")
			| . + {round: $r, source_cpu_s: ($s / $hz), target_cpu_s: ($t / $hz)}' "$one")"
	fi
	if [[ $rc != 0 ]]; then
		STATUS=1
		log "$tool $phase FAILED (exit $rc); its output, $LOGS/$tool-$phase-r$round.log, ends:"
		tail -n 15 "$LOGS/$tool-$phase-r$round.log" | sed 's/^/    /' >&2 || true
	fi
	return "$rc"
}

disk() {
	local d
	d=$(sqlval "$SRC0" "SHOW data_directory")
	log "disk: $(df -h --output=avail,pcent "${TMPDIR:-/tmp}" "$d" | tail -n +2 | tr -s ' ' | paste -sd ';')"
}

# --- the generated receipts database -------------------------------------------------

GEN_HASH=$(cat "$SQL"/funcs.sql "$SQL"/schema.sql "$SQL"/small.sql "$SQL"/receipts.sql "$SQL"/lines.sql \
	"$SQL"/post.sql "$SQL"/post-receipts.sql "$SQL"/post-lines.sql | sha256sum | cut -c1-12)
dbname_for() { printf 'kwickbench_%s\n' "${1//./_}"; }
receipts_for() { awk -v s="$1" 'BEGIN { printf "%d\n", 2000000 * s + 0.5 }'; }

# pool_wait MAX: wait until fewer than MAX background jobs run; failures set POOL_FAIL.
POOL_FAIL=0
pool_wait() {
	while (($(jobs -rp | wc -l) >= $1)); do
		wait -n || POOL_FAIL=1
	done
}

# ensure_db SCALE: the generated database of that scale exists on the source
# (reused when its comment says it is complete and of this generator); prints its name.
ensure_db() {
	local scale=$1 db r customers audit chunk lo hi url want have t0
	db=$(dbname_for "$scale")
	r=$(receipts_for "$scale")
	customers=$(awk -v s="$scale" 'BEGIN { n = int(200000 * s + 0.5); print (n < 1000 ? 1000 : n) }')
	audit=$(awk -v s="$scale" 'BEGIN { n = int(500000 * s + 0.5); print (n < 1000 ? 1000 : n) }')
	want="kwickmig bench db: scale=$scale receipts=$r generator=$GEN_HASH complete"
	have=$(sqlval "$SRC0" "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$db'")
	url=$(dburl "$SRC0" "$db")
	if [[ $have == "$want" ]]; then
		log "reusing database $db ($want)"
		echo "$db"
		return
	fi
	((r >= 1)) || die "scale $scale gives no receipts"
	log "generating database $db: $r receipts, $((3 * r)) lines, $customers customers, $audit audit rows ($GEN_JOBS sessions)"
	t0=$SECONDS
	createdb_on "$SRC0" "$db"
	psqlx -d "$url" -f "$SQL/schema.sql" >/dev/null
	chunk=250000
	POOL_FAIL=0
	psqlx -d "$url" -v customers="$customers" -v audit="$audit" -f "$SQL/small.sql" >/dev/null &
	for ((lo = 1; lo <= r; lo += chunk)); do
		hi=$((lo + chunk - 1 < r ? lo + chunk - 1 : r))
		pool_wait "$GEN_JOBS"
		psqlx -d "$url" -v lo="$lo" -v hi="$hi" -v customers="$customers" -f "$SQL/receipts.sql" >/dev/null &
		pool_wait "$GEN_JOBS"
		psqlx -d "$url" -v lo="$lo" -v hi="$hi" -f "$SQL/lines.sql" >/dev/null &
	done
	pool_wait 1
	((POOL_FAIL == 0)) || die "generating $db failed"
	log "  loaded in $((SECONDS - t0)) s; keys and indexes"
	psqlx -d "$url" -f "$SQL/post-receipts.sql" >/dev/null &
	psqlx -d "$url" -f "$SQL/post-lines.sql" >/dev/null &
	pool_wait 1
	((POOL_FAIL == 0)) || die "indexing $db failed"
	psqlx -d "$url" -f "$SQL/post.sql" >/dev/null
	log "  VACUUM (FREEZE, ANALYZE)"
	psqlx -d "$url" -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT" >/dev/null
	psqlx -d "$SRC0" -c "COMMENT ON DATABASE \"$db\" IS '$want'" >/dev/null
	log "  $db ready in $((SECONDS - t0)) s"
	echo "$db"
}

# --- tools ------------------------------------------------------------------------------

has() { [[ " $TOOLS " == *" $1 "* ]]; }

command -v jq >/dev/null || die "jq is needed"
command -v psql >/dev/null || die "psql is needed"
go build -o "$WORK/bin/" ./bench/measure
if [[ ! -x $KWICKMIG ]]; then
	log "building $KWICKMIG"
	go build -o "$KWICKMIG" ./cmd/kwickmig
fi
PGCOPYDB=""
find_pgcopydb() {
	local p
	for p in "$(command -v pgcopydb || true)" /usr/lib/postgresql/*/bin/pgcopydb; do
		if [[ -n $p && -x $p ]]; then
			echo "$p"
			return
		fi
	done
}
if has pgcopydb; then
	PGCOPYDB=$(find_pgcopydb)
	if [[ -z $PGCOPYDB && $INSTALL == 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "apt-get install -y pgcopydb"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgcopydb >&2 || true
		PGCOPYDB=$(find_pgcopydb)
	fi
	[[ -n $PGCOPYDB ]] || log "pgcopydb not found (apt-get install pgcopydb): its rows read n/a"
fi

CLEAN_SRC=()
CLEAN_TGT=()
cleanup() {
	local db
	for db in "${CLEAN_TGT[@]}"; do psqlx -d "$TGT0" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
	for db in "${CLEAN_SRC[@]}"; do psqlx -d "$SRC0" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

SRC_PM=$(postmaster_pid "$SRC0")
TGT_PM=$(postmaster_pid "$TGT0")
SERVER_VERSION=$(sqlval "$SRC0" "SHOW server_version")
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "scale $SCALE, jobs $JOBS, runs $RUNS, tools: $TOOLS; PostgreSQL $SERVER_VERSION; load $LOAD_START; $(nproc) cores"
log "uptime: $(uptime)"
disk

DB=$(ensure_db "$SCALE")
[[ $DB == kwickbench_* ]] || die "no database"
[[ $DROP == 1 ]] && CLEAN_SRC+=("$DB")
S=$(dburl "$SRC0" "$DB")
DB_SIZE=$(sqlval "$S" "SELECT pg_database_size(current_database())")
log "source database $DB: pg_database_size $(sqlval "$S" "SELECT pg_size_pretty(pg_database_size(current_database()))")"
sqlval "$S" "SELECT c.relname, pg_size_pretty(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY pg_total_relation_size(c.oid) DESC" | sed 's/^/    /' >&2
COUNT_Q=$(count_query "$S")
log "reading every table once (warms the page cache) and counting rows"
SRC_COUNTS=$(sqlval "$S" "$COUNT_Q")
printf '%s\n' "$SRC_COUNTS" | sed 's/^/    /' >&2
RECEIPTS_Q="SELECT 'public.receipts', count(*) FROM public.receipts"
SRC_RECEIPTS=$(printf '%s\n' "$SRC_COUNTS" | grep '^public\.receipts|')

# --- the timed bulk runs -------------------------------------------------------------------

# Each run: a fresh target database, the tool, a row-count check, drop.
run_kwickmig() {
	local r=$1 db=kb_t_kwickmig T
	T=$(dburl "$TGT0" "$db")
	createdb_on "$TGT0" "$db"
	CLEAN_TGT+=("$db")
	if timed kwickmig copy "$r" -- "$KWICKMIG" db copy --source "$S" --target "$T" --jobs "$JOBS" --index-jobs "$JOBS" \
		--split-larger-than "$SPLIT" --checkpoint "$WORK/copy-$r.db" --report "$LOGS/kwickmig-copy-r$r.json"; then
		check_counts "kwickmig db copy" "$r" "$SRC_COUNTS" "$T"
	fi
	dropdb_on "$TGT0" "$db"
}

run_dump() {
	local r=$1 db=kb_t_dump T dir=$WORK/dump
	T=$(dburl "$TGT0" "$db")
	rm -rf "$dir"
	createdb_on "$TGT0" "$db"
	CLEAN_TGT+=("$db")
	if timed pg_dump dump "$r" -- pg_dump -Fd -j "$JOBS" -f "$dir" -d "$S" &&
		timed pg_restore restore "$r" -- pg_restore -j "$JOBS" -d "$T" "$dir" &&
		timed vacuumdb analyze "$r" -- vacuumdb --analyze-only -j "$JOBS" -d "$T"; then
		record "$(jq -nc --argjson r "$r" --argjson b "$(du -sb "$dir" | cut -f1)" '{size: "dump", round: $r, bytes: $b}')"
		check_counts "pg_dump + pg_restore" "$r" "$SRC_COUNTS" "$T"
	fi
	rm -rf "$dir"
	dropdb_on "$TGT0" "$db"
}

run_pgcopydb() {
	local r=$1 db=kb_t_pgcopydb T dir=$WORK/pgcopydb
	[[ -n $PGCOPYDB ]] || return 0
	T=$(dburl "$TGT0" "$db")
	rm -rf "$dir"
	createdb_on "$TGT0" "$db"
	CLEAN_TGT+=("$db")
	# shellcheck disable=SC2086 # BENCH_PGCOPYDB_ARGS is a list of flags
	if timed pgcopydb clone "$r" -- "$PGCOPYDB" clone --source "$S" --target "$T" --table-jobs "$JOBS" --index-jobs "$JOBS" \
		--split-tables-larger-than "$SPLIT" --dir "$dir" $PGCOPYDB_ARGS; then
		check_counts "pgcopydb clone" "$r" "$SRC_COUNTS" "$T"
	fi
	rm -rf "$dir"
	dropdb_on "$TGT0" "$db"
}

run_floor() {
	local r=$1 db=kb_t_floor T
	T=$(dburl "$TGT0" "$db")
	createdb_on "$TGT0" "$db"
	CLEAN_TGT+=("$db")
	# receipts as pg_dump's pre-data has it: columns, identity, no keys or indexes.
	pg_dump --schema-only --section=pre-data -t public.receipts -d "$S" | psqlx -d "$T" >/dev/null
	# shellcheck disable=SC2016 # expanded by the inner bash
	if timed floor copy "$r" -- bash -c 'set -o pipefail; psql -X -q -d "$1" -c "COPY public.receipts TO STDOUT" | psql -X -q -v ON_ERROR_STOP=1 -d "$2" -c "COPY public.receipts FROM STDIN"' \
		floor "$S" "$T"; then
		check_counts "COPY floor (receipts)" "$r" "$SRC_RECEIPTS" "$T" "$RECEIPTS_Q"
	fi
	dropdb_on "$TGT0" "$db"
}

run_export() {
	local r=$1 db=kb_t_import T dir=$WORK/export
	T=$(dburl "$TGT0" "$db")
	rm -rf "$dir"
	createdb_on "$TGT0" "$db"
	CLEAN_TGT+=("$db")
	if timed kwickmig export "$r" -- "$KWICKMIG" db export --source "$S" --out "$dir" --jobs "$JOBS" \
		--split-larger-than "$SPLIT" --checkpoint "$WORK/export-$r.db" --report "$LOGS/kwickmig-export-r$r.json" &&
		timed kwickmig import "$r" -- "$KWICKMIG" db import --target "$T" --in "$dir" --jobs "$JOBS" --index-jobs "$JOBS" \
			--checkpoint "$WORK/import-$r.db" --report "$LOGS/kwickmig-import-r$r.json"; then
		record "$(jq -nc --argjson r "$r" --argjson b "$(du -sb "$dir" | cut -f1)" '{size: "export", round: $r, bytes: $b}')"
		check_counts "kwickmig db export + import" "$r" "$SRC_COUNTS" "$T"
	fi
	rm -rf "$dir"
	dropdb_on "$TGT0" "$db"
}

BULK=()
for t in kwickmig dump pgcopydb floor export; do
	if has "$t"; then BULK+=("$t"); fi
done
for ((round = 1; round <= RUNS; round++)); do
	# Interleaved: every tool once per round, the order rotated each round.
	n=${#BULK[@]}
	for ((k = 0; k < n; k++)); do
		t=${BULK[$(((k + round - 1) % n))]}
		"run_$t" "$round" || true
		disk
	done
done

# --- final delta: 100k changes on the full-size and on a small database -----------------

# delta_run LABEL SCALE: a copy of the generated database (CREATE DATABASE …
# TEMPLATE) with capture installed, db copy to a fresh target, CHANGES row
# changes on the source, then final-delta (timed) and a second final-delta
# that must find nothing; then row counts, a hash of every row of the changed
# tables and the receipts sequence must match.
delta_run() {
	local label=$1 scale=$2 base src db=kb_delta_$1 DS T cp=$WORK/delta-$1.db r q c1 c2
	base=$(ensure_db "$scale")
	[[ $base == kwickbench_* ]] || return 1
	[[ $DROP == 1 ]] && CLEAN_SRC+=("$base")
	src=$(dburl "$SRC0" "$base")
	r=$(sqlval "$src" "SELECT count(*) FROM receipts")
	log "final delta on $label ($base, $r receipts, $(sqlval "$src" "SELECT pg_size_pretty(pg_database_size(current_database()))"))"
	psqlx -d "$SRC0" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
		-c "CREATE DATABASE \"$db\" TEMPLATE \"$base\" STRATEGY FILE_COPY" >/dev/null
	CLEAN_SRC+=("$db")
	DS=$(dburl "$SRC0" "$db")
	T=$(dburl "$TGT0" "$db")
	createdb_on "$TGT0" "$db"
	CLEAN_TGT+=("$db")
	# audit has no key: --allow-no-key captures it with full-row matching (it is not changed here).
	"$KWICKMIG" db capture install --source "$DS" --allow-no-key --checkpoint "$cp" >"$LOGS/kwickmig-capture-install-$label.log" 2>&1 ||
		{
			STATUS=1
			log "capture install failed:"
			tail -n 15 "$LOGS/kwickmig-capture-install-$label.log" >&2
			return 1
		}
	timed kwickmig "copy-with-capture-$label" 1 -- "$KWICKMIG" db copy --source "$DS" --target "$T" --jobs "$JOBS" --index-jobs "$JOBS" \
		--split-larger-than "$SPLIT" --checkpoint "$cp" --report "$LOGS/kwickmig-copy-with-capture-$label-r1.json" || return 1
	timed psql "changes-$label" 1 -- psql -X -q -v ON_ERROR_STOP=1 -d "$DS" -v changes="$CHANGES" -f "$SQL/changes.sql" || return 1
	grep -h 'applied' "$LOGS/psql-changes-$label-r1.log" | sed 's/^/    /' >&2 || true
	"$KWICKMIG" db capture status --source "$DS" --checkpoint "$cp" >"$LOGS/kwickmig-capture-status-$label.log" 2>&1 || true
	sed 's/^/    /' "$LOGS/kwickmig-capture-status-$label.log" >&2
	timed kwickmig "final-delta-$label" 1 -- "$KWICKMIG" db final-delta --source "$DS" --target "$T" --checkpoint "$cp" \
		--report "$LOGS/kwickmig-final-delta-$label-r1.json" || return 1
	timed kwickmig "final-delta-again-$label" 1 -- "$KWICKMIG" db final-delta --source "$DS" --target "$T" --checkpoint "$cp" \
		--report "$LOGS/kwickmig-final-delta-again-$label-r1.json" || true
	q=$(count_query "$DS")
	check_counts "db copy + final-delta ($label), row counts" 1 "$(sqlval "$DS" "$q")" "$T" "$q"
	# Row contents of the changed tables (text form, order-independent) and the sequence.
	q="SELECT 'receipts', count(*), sum(hashtext(t::text)::bigint) FROM receipts t
		UNION ALL SELECT 'receipt_lines', count(*), sum(hashtext(t::text)::bigint) FROM receipt_lines t
		UNION ALL SELECT 'receipts_id_seq', last_value, 0 FROM receipts_id_seq"
	c1=$(sqlval "$DS" "$q")
	check_counts "db copy + final-delta ($label), row hashes and sequence" 1 "$c1" "$T" "$q"
	"$KWICKMIG" db capture remove --source "$DS" --checkpoint "$cp" >"$LOGS/kwickmig-capture-remove-$label.log" 2>&1 ||
		log "capture remove failed (see $LOGS/kwickmig-capture-remove-$label.log)"
	c2=$(sqlval "$DS" "SELECT count(*) FROM pg_namespace WHERE nspname = 'kwickmig'")
	[[ $c2 == 0 ]] || log "capture remove left the kwickmig schema behind"
	record "$(jq -nc --arg l "$label" --arg s "$scale" --argjson r "$r" --argjson b "$(sqlval "$src" "SELECT pg_database_size(current_database())")" \
		'{delta_db: $l, scale: $s, receipts: $r, bytes: $b}')"
	psqlx -d "$SRC0" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
	dropdb_on "$TGT0" "$db"
	disk
}
if has delta; then
	delta_run big "$SCALE" || {
		STATUS=1
		log "final delta (big) failed"
	}
	delta_run small "$SMALL" || {
		STATUS=1
		log "final delta (small) failed"
	}
fi

# --- report ---------------------------------------------------------------------------------

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
log "uptime: $(uptime)"
jq -nc --arg started "$STARTED" --arg scale "$SCALE" --argjson jobs "$JOBS" --argjson runs "$RUNS" --arg split "$SPLIT" \
	--argjson changes "$CHANGES" --arg small "$SMALL" --arg db "$DB" --argjson db_bytes "$DB_SIZE" \
	--arg counts "$SRC_COUNTS" --arg pg "$SERVER_VERSION" --arg load_start "$LOAD_START" --arg load_end "$LOAD_END" \
	--argjson cores "$(nproc)" --arg pgcopydb "$([[ -n $PGCOPYDB ]] && "$PGCOPYDB" --version 2>&1 | grep -m1 -o 'version [^ ]*' || echo n/a)" \
	--arg pgdump "$(pg_dump --version)" --arg kwickmig "$(git describe --always --dirty 2>/dev/null || echo unknown)" \
	'{meta: {started: $started, scale: $scale, jobs: $jobs, runs: $runs, split: $split, changes: $changes, small_scale: $small,
	  db: $db, db_bytes: $db_bytes, counts: $counts, pg: $pg, load_start: $load_start, load_end: $load_end, cores: $cores,
	  pgcopydb: $pgcopydb, pg_dump: $pgdump, kwickmig: $kwickmig}}' >>"$RESULTS"
python3 "$SQL/report.py" "$RESULTS" "$LOGS" | tee "$OUT/db.md"
log "results: $OUT/db.md, raw records $RESULTS, tools' output $LOGS/"
exit "$STATUS"
