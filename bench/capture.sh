#!/usr/bin/env bash
# Capture overhead benchmark (issue 10): what `kwickmig db capture install`
# costs the source's writers. Side by side in one run, on one cluster:
#   - pgbench TPC-B-like (scale 10, -c 4 -j 2, 15 s runs) on a database
#     without capture and on one with capture (--allow-no-key: pgbench_history
#     has no key), runs taking turns, median of BENCH_CAPTURE_RUNS each;
#   - one UPDATE of all 1M pgbench_accounts rows in a single statement, in
#     each database, taking turns (VACUUM and CHECKPOINT before each).
# Sides: off (no capture), on (capture install: row triggers), stmt (capture
# install --statement-triggers), and ref when set.
# It prints the ratios, the capture's cost in µs per changed row (wall, and
# the source cluster's CPU), and the load average around every run: the
# machine may be shared, and taking turns makes load hit both sides alike.
#
#   BENCH_ONLY=capture make bench
#   make build && go run ./tools/testenv -fast=false -s3=false -- bash bench/capture.sh
# (see bench/README.md, "Capture overhead benchmark")
#
# Knobs: BENCH_CAPTURE_RUNS=3, BENCH_CAPTURE_SECONDS=15, BENCH_CAPTURE_SCALE=10,
# BENCH_CAPTURE_CLIENTS=4, BENCH_CAPTURE_THREADS=2, BENCH_CAPTURE_REF=path to
# another kwickmig binary (a third database captured by it, e.g. main's, to
# compare before and after in the same run), BENCH_KWICKMIG=bin/kwickmig,
# BENCH_OUT=bench/out, PGBENCH (default: PATH, else /usr/lib/postgresql/15/bin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${KWICKMIG_TEST_PG_SOURCE:?not set: run through tools/testenv (make bench)}"

RUNS=${BENCH_CAPTURE_RUNS:-3}
SECS=${BENCH_CAPTURE_SECONDS:-15}
SCALE=${BENCH_CAPTURE_SCALE:-10}
CLIENTS=${BENCH_CAPTURE_CLIENTS:-4}
THREADS=${BENCH_CAPTURE_THREADS:-2}
REF=${BENCH_CAPTURE_REF:-}
KWICKMIG=${BENCH_KWICKMIG:-bin/kwickmig}
OUT=${BENCH_OUT:-bench/out}
SRC0=$KWICKMIG_TEST_PG_SOURCE
export PGAPPNAME=kwickmig-bench

PGBENCH=${PGBENCH:-$(command -v pgbench || echo /usr/lib/postgresql/15/bin/pgbench)}
[[ -x $PGBENCH ]] || {
	echo "bench capture: pgbench not found (set PGBENCH)" >&2
	exit 1
}
for v in RUNS SECS SCALE CLIENTS THREADS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || {
		echo "bench capture: $v=${!v} is not a positive integer" >&2
		exit 1
	}
done

log() { printf '%s bench capture: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
dburl() { # URL DB: URL with its database name replaced by DB
	local u=$1 q=""
	if [[ $u == *\?* ]]; then q="?${u#*\?}"; fi
	u=${u%%\?*}
	printf '%s/%s%s\n' "${u%/*}" "$2" "$q"
}
sqlval() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# CPU of the whole source cluster: the postmaster's reaped children plus its
# live ones, in clock ticks (as bench/db.sh measures it).
PM=$(head -1 "$(sqlval "$SRC0" "SHOW data_directory")/postmaster.pid")
TICKS=$(getconf CLK_TCK)
cpu_ticks() {
	local a b sum
	reaped() { awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$PM/stat"; }
	for _ in 1 2 3 4 5; do
		a=$(reaped)
		sum=$({
			cat "/proc/$PM/stat"
			for p in $(ps -o pid= --ppid "$PM"); do cat "/proc/$p/stat" 2>/dev/null || true; done
		} | awk '{ sub(/^.*\) /, ""); s += $12 + $13 + $14 + $15 } END { print s + 0 }')
		b=$(reaped)
		[[ $a != "$b" ]] || break
	done
	echo "$sum"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kwickmig-bench-capture.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# The databases: off (no capture), on (capture by $KWICKMIG), ref (capture
# by $REF, when set). Each gets the same pgbench data.
SIDES="off on stmt"
[[ -n $REF ]] && SIDES="off on stmt ref"
declare -A URL BIN ARGS
BIN[on]=$KWICKMIG
BIN[stmt]=$KWICKMIG
ARGS[stmt]=--statement-triggers
BIN[ref]=$REF
for s in $SIDES; do
	db=kwickbench_capture_$s
	psql -X -q -v ON_ERROR_STOP=1 -d "$SRC0" -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
	URL[$s]=$(dburl "$SRC0" "$db")
	log "$s: pgbench -i -s $SCALE"
	"$PGBENCH" -i -q -s "$SCALE" "${URL[$s]}" >"$WORK/init-$s.log" 2>&1 || {
		cat "$WORK/init-$s.log" >&2
		exit 1
	}
	if [[ $s != off ]]; then
		# shellcheck disable=SC2086 # ARGS: flags, split on purpose
		"${BIN[$s]}" db capture install --source "${URL[$s]}" --allow-no-key ${ARGS[$s]:-} --checkpoint "$WORK/$s.db" >"$WORK/install-$s.log" 2>&1 || {
			cat "$WORK/install-$s.log" >&2
			exit 1
		}
	fi
	sqlval "${URL[$s]}" "VACUUM ANALYZE" >/dev/null
done

logrows() { # SIDE: log rows so far (0 without capture)
	[[ $1 == off ]] && {
		echo 0
		return
	}
	sqlval "${URL[$1]}" "SELECT count(*) FROM kwickmig.log"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- pgbench, taking turns ---------------------------------------------------------
declare -A TPS ROWS PCPU
for r in $(seq "$RUNS"); do
	for s in $SIDES; do
		l0=$(logrows "$s")
		c0=$(cpu_ticks)
		out=$("$PGBENCH" -c "$CLIENTS" -j "$THREADS" -T "$SECS" "${URL[$s]}" 2>&1) || {
			printf '%s\n' "$out" >&2
			exit 1
		}
		tps=$(printf '%s\n' "$out" | awk '/^tps = / { print $3; exit }')
		txns=$(printf '%s\n' "$out" | awk '/number of transactions actually processed/ { print $6; exit }')
		c1=$(cpu_ticks)
		l1=$(logrows "$s")
		TPS[$s]+="$tps "
		# the source cluster's CPU per transaction: what load cannot blur
		PCPU[$s]+="$(awk -v a="$c0" -v b="$c1" -v hz="$TICKS" -v t="$txns" 'BEGIN { printf "%.1f", (b - a) / hz * 1e6 / t }') "
		[[ $s != off ]] && ROWS[$s]+="$(awk -v a="$l0" -v b="$l1" -v t="$txns" 'BEGIN { printf "%.2f", (b - a) / t }') "
		log "pgbench $s run $r: $tps tps, $(printf '%s' "${PCPU[$s]}" | awk '{ print $NF }') source CPU µs/txn, load $(load)"
	done
done

# --- one UPDATE of every pgbench_accounts row ----------------------------------------
N=$((SCALE * 100000))
declare -A UWALL UCPU
for r in $(seq "$RUNS"); do
	for s in $SIDES; do
		sqlval "${URL[$s]}" "VACUUM pgbench_accounts" >/dev/null
		sqlval "${URL[$s]}" "CHECKPOINT" >/dev/null
		c0=$(cpu_ticks)
		t0=$(date +%s.%N)
		sqlval "${URL[$s]}" "UPDATE pgbench_accounts SET abalance = abalance + 1" >/dev/null
		t1=$(date +%s.%N)
		c1=$(cpu_ticks)
		w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
		c=$(awk -v a="$c0" -v b="$c1" -v hz="$TICKS" 'BEGIN { printf "%.3f", (b - a) / hz }')
		UWALL[$s]+="$w "
		UCPU[$s]+="$c "
		log "update $N rows $s run $r: ${w} s wall, ${c} s source CPU, load $(load)"
	done
done

# --- report ---------------------------------------------------------------------------
med() { printf '%s\n' $1 | median; }
tps_off=$(med "${TPS[off]}")
w_off=$(med "${UWALL[off]}")
c_off=$(med "${UCPU[off]}")
{
	echo "Capture overhead ($(date -u +%Y-%m-%dT%H:%MZ), PostgreSQL $(sqlval "$SRC0" "SHOW server_version"), fsync $(sqlval "$SRC0" "SHOW fsync"), load $(load))"
	echo
	echo "pgbench TPC-B-like, scale $SCALE, -c $CLIENTS -j $THREADS, ${SECS} s runs, median of $RUNS (runs taking turns):"
	pc_off=$(med "${PCPU[off]}")
	printf '  %-4s %10s %8s %10s %16s %14s %10s %16s\n' side tps ratio "rows/txn" "µs/row (tps)" "CPU µs/txn" "CPU ratio" "CPU µs/row"
	for s in $SIDES; do
		t=$(med "${TPS[$s]}")
		pc=$(med "${PCPU[$s]}")
		if [[ $s == off ]]; then
			printf '  %-4s %10.1f %8s %10s %16s %14.1f %10s %16s\n' "$s" "$t" 1.00 - - "$pc" 1.00 -
			continue
		fi
		rows=$(med "${ROWS[$s]}")
		# throughput cost: extra machine time per transaction, per logged
		# row; and the source cluster's CPU per transaction, per logged row
		printf '  %-4s %10.1f %8.3f %10s %16.1f %14.1f %10.3f %16.1f\n' "$s" "$t" "$(awk -v a="$t" -v b="$tps_off" 'BEGIN { print a / b }')" "$rows" \
			"$(awk -v a="$t" -v b="$tps_off" -v n="$rows" 'BEGIN { print (1 / a - 1 / b) * 1e6 / n }')" \
			"$pc" "$(awk -v a="$pc" -v b="$pc_off" 'BEGIN { print b / a }')" "$(awk -v a="$pc" -v b="$pc_off" -v n="$rows" 'BEGIN { print (a - b) / n }')"
	done
	echo "  (target: capture >= 0.85x the tps without; tps per run: off ${TPS[off]}; on ${TPS[on]}; stmt ${TPS[stmt]}${REF:+; ref ${TPS[ref]}})"
	echo
	echo "UPDATE pgbench_accounts SET abalance = abalance + 1 ($N rows, one statement), median of $RUNS:"
	printf '  %-4s %10s %8s %14s %14s %16s\n' side "wall s" ratio "µs/row wall" "source CPU s" "CPU µs/row"
	for s in $SIDES; do
		w=$(med "${UWALL[$s]}")
		c=$(med "${UCPU[$s]}")
		if [[ $s == off ]]; then
			printf '  %-4s %10.2f %8s %14s %14.2f %16s\n' "$s" "$w" 1.00 - "$c" -
			continue
		fi
		printf '  %-4s %10.2f %8.2f %14.2f %14.2f %16.2f\n' "$s" "$w" "$(awk -v a="$w" -v b="$w_off" 'BEGIN { print a / b }')" \
			"$(awk -v a="$w" -v b="$w_off" -v n="$N" 'BEGIN { print (a - b) * 1e6 / n }')" "$c" \
			"$(awk -v a="$c" -v b="$c_off" -v n="$N" 'BEGIN { print (a - b) * 1e6 / n }')"
	done
	echo "  (target: capture <= 2x the time without; wall s per run: off ${UWALL[off]}; on ${UWALL[on]}; stmt ${UWALL[stmt]}${REF:+; ref ${UWALL[ref]}})"
} | tee "$OUT/capture.txt"

for s in $SIDES; do
	psql -X -q -d "$SRC0" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS kwickbench_capture_$s WITH (FORCE)" >/dev/null || true
done
