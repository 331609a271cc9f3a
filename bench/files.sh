#!/usr/bin/env bash
# Files benchmark: kwickmig files sync side by side with `rclone copy` (fastest
# flags) and `aws s3 sync` (64 requests), against the same versitygw, each into
# its own fresh bucket, plus two floors (a stat walk of the tree and a raw-PUT
# loop). Phases per tool: initial upload, no-change re-run, re-run after 1% of
# the files were rewritten. See bench/README.md.
#
# Run it through `make bench` (tools/testenv starts versitygw and exports
# KWICKMIG_TEST_S3_*). Knobs (environment):
#   BENCH_FILES=100000         files in the generated tree
#   BENCH_SEED=1               generator seed
#   BENCH_TOOLS="kwickmig rclone aws"   which tools to run (floors always run)
#   BENCH_KWICKMIG=bin/kwickmig         the binary under test
#   BENCH_KWICKMIG_ARGS=""     extra flags for kwickmig files sync
#   BENCH_RCLONE_ARGS=""       extra flags for rclone copy
#   BENCH_RAWPUT_ARGS=""       extra flags for the raw-PUT floor (e.g. -unsigned-payload)
#   BENCH_TIMEOUT=seconds      per command (default N/50 + 300)
#   BENCH_INSTALL=1            build/install missing peers (go install, apt-get); 0 = skip them
#   BENCH_OUT=bench/out        where results, tables and logs go
#   BENCH_KEEP=0               1 = keep the work directory (tree, checkpoint)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${KWICKMIG_TEST_S3_ENDPOINT:?not set: run through make bench (tools/testenv)}"
: "${KWICKMIG_TEST_S3_ACCESS_KEY:?not set: run through make bench}"
: "${KWICKMIG_TEST_S3_SECRET_KEY:?not set: run through make bench}"

N=${BENCH_FILES:-100000}
SEED=${BENCH_SEED:-1}
TOOLS=${BENCH_TOOLS:-kwickmig rclone aws}
KWICKMIG=${BENCH_KWICKMIG:-bin/kwickmig}
TIMEOUT=${BENCH_TIMEOUT:-$((N / 50 + 300))}
INSTALL=${BENCH_INSTALL:-1}
OUT=${BENCH_OUT:-bench/out}
KEEP=${BENCH_KEEP:-0}
RCLONE_VERSION=v1.76.0
CONCURRENCY=64
TOOLS_DIR=${KWICKMIG_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/kwickmig-tools}
ENDPOINT=${KWICKMIG_TEST_S3_ENDPOINT%/}
PORT=${ENDPOINT##*:}
S3DIR=${KWICKMIG_TEST_S3_DIR:-}
RUN=$(date -u +%Y%m%d%H%M%S)

log() { printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kwickmig-bench.XXXXXX")
cleanup() {
	if [[ $KEEP == 1 ]]; then
		log "kept work directory $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# Commands run in the background and are waited for, so that a signal (Ctrl-C,
# or testenv's SIGTERM through run.sh) reaches the running one at once.
CHILD=""
on_signal() {
	if [[ -n $CHILD ]]; then
		kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" || true
	fi
	exit 130
}
trap on_signal INT TERM

# run_child CMD...: run CMD as the interruptible child; returns its status.
run_child() {
	local rc=0
	"$@" &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=""
	return "$rc"
}

TREE=$WORK/tree
BIN=$WORK/bin
RESULTS=$WORK/results.jsonl
META=$WORK/meta.txt
LOGS=$OUT/logs/files-$N
mkdir -p "$BIN" "$LOGS"
: >"$RESULTS"

# --- peers -----------------------------------------------------------------

APT_UPDATED=0
apt_install() {
	if [[ $INSTALL != 1 || $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
		return 1
	fi
	if [[ $APT_UPDATED == 0 ]]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
		APT_UPDATED=1
	fi
	log "apt-get install -y $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# find_rclone prints the rclone to use: rclone $RCLONE_VERSION from the Go
# module proxy (built into the tools cache on first use, several minutes),
# else Debian's.
find_rclone() {
	if [[ -x $TOOLS_DIR/rclone ]]; then
		echo "$TOOLS_DIR/rclone"
		return
	fi
	if [[ $INSTALL == 1 ]]; then
		log "building rclone $RCLONE_VERSION into $TOOLS_DIR (first run only, several minutes)"
		mkdir -p "$TOOLS_DIR"
		if (cd / && GOBIN=$TOOLS_DIR go install "github.com/rclone/rclone@$RCLONE_VERSION") >&2; then
			echo "$TOOLS_DIR/rclone"
			return
		fi
		log "rclone build failed; falling back to Debian's rclone"
	fi
	if command -v rclone >/dev/null || apt_install rclone; then
		command -v rclone
	fi
}

# find_aws prints a working aws CLI: Debian's /usr/bin/aws first (a pyenv
# shim earlier in PATH may be broken), then any other that runs.
find_aws() {
	local a
	for a in /usr/bin/aws "$(command -v aws || true)"; do
		if [[ -n $a && -x $a ]] && "$a" --version >/dev/null 2>&1; then
			echo "$a"
			return
		fi
	done
	if apt_install awscli && /usr/bin/aws --version >/dev/null 2>&1; then
		echo /usr/bin/aws
	fi
}

has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }

RCLONE=""
AWS=""
KWICKMIG_OK=0
if has_tool rclone; then RCLONE=$(find_rclone); fi
if has_tool aws; then AWS=$(find_aws); fi
if has_tool kwickmig; then
	if [[ -x $KWICKMIG ]] && "$KWICKMIG" files sync --help 2>&1 | grep -q -- '--src'; then
		KWICKMIG_OK=1
	else
		log "kwickmig: $KWICKMIG has no working 'files sync' yet; its figures will be n/a"
	fi
fi
if has_tool rclone && [[ -z $RCLONE ]]; then log "rclone not available; its figures will be n/a"; fi
if has_tool aws && [[ -z $AWS ]]; then log "aws CLI not available; its figures will be n/a"; fi

# Credentials reach every tool through the environment, never a command line
# (measure records command lines).
export AWS_ACCESS_KEY_ID=$KWICKMIG_TEST_S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$KWICKMIG_TEST_S3_SECRET_KEY
export AWS_REGION=${KWICKMIG_TEST_S3_REGION:-us-east-1}
export AWS_DEFAULT_REGION=$AWS_REGION
export AWS_CONFIG_FILE=$WORK/aws-config
export AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-credentials-none
export AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER=""
cat >"$AWS_CONFIG_FILE" <<EOF
[default]
region = $AWS_REGION
s3 =
  max_concurrent_requests = $CONCURRENCY
  max_queue_size = 10000
  addressing_style = path
EOF
export RCLONE_CONFIG=$WORK/rclone.conf
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_BENCH_TYPE=s3
export RCLONE_CONFIG_BENCH_PROVIDER=Other
export RCLONE_CONFIG_BENCH_ENDPOINT=$ENDPOINT
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$KWICKMIG_TEST_S3_ACCESS_KEY
export RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$KWICKMIG_TEST_S3_SECRET_KEY
export RCLONE_CONFIG_BENCH_REGION=$AWS_REGION
export RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true

# --- helpers -----------------------------------------------------------------

log "building helpers"
go build -o "$BIN/" ./bench/gentree ./bench/statwalk ./bench/rawput ./bench/measure \
	./bench/mkbucket ./bench/objcheck ./bench/report

bucket() { echo "bench-$1-$RUN"; }

# measured TOOL PHASE -- CMD...: run CMD under measure; fails if CMD failed.
measured() {
	local tool=$1 phase=$2
	shift 3
	run_child "$BIN/measure" -tool "$tool" -phase "$phase" -files "$N" -out "$RESULTS" \
		-log "$LOGS/$tool-$phase.log" -server-port "$PORT" -timeout "${TIMEOUT}s" -- "$@"
}

# check TOOL PHASE SINCE [MANIFEST]: count what TOOL did to its bucket.
check() {
	[[ -n $S3DIR ]] || return 0
	local args=(-objdir "$S3DIR/$(bucket "$1")" -since "$3" -tool "$1" -phase "$2" -out "$RESULTS")
	if [[ $# -ge 4 ]]; then args+=(-src "$TREE" -manifest "$4"); fi
	run_child "$BIN/objcheck" "${args[@]}" || log "objcheck $1 $2 failed"
}

now() { date -u +%Y-%m-%dT%H:%M:%S.%NZ; }

# run_tool TOOL PHASE: one measured run of TOOL into its bucket.
run_tool() {
	local tool=$1 phase=$2 b
	b=$(bucket "$tool")
	case $tool in
	kwickmig)
		# shellcheck disable=SC2086 # BENCH_KWICKMIG_ARGS is a list of flags
		measured kwickmig "$phase" -- "$KWICKMIG" files sync --src "$TREE" --dst "s3://$b" \
			--endpoint-url "$ENDPOINT" --checkpoint "$WORK/kwickmig.db" ${BENCH_KWICKMIG_ARGS:-}
		;;
	rclone)
		# shellcheck disable=SC2086 # BENCH_RCLONE_ARGS is a list of flags
		measured rclone "$phase" -- "$RCLONE" copy "$TREE" "bench:$b" \
			--transfers "$CONCURRENCY" --checkers "$CONCURRENCY" --fast-list --update \
			--use-server-modtime --s3-no-head --s3-no-check-bucket ${BENCH_RCLONE_ARGS:-}
		;;
	aws)
		measured aws "$phase" -- "$AWS" s3 sync "$TREE" "s3://$b" \
			--endpoint-url "$ENDPOINT" --only-show-errors --no-progress
		;;
	esac
}

# --- run -------------------------------------------------------------------------

ACTIVE=()
for t in $TOOLS; do
	case $t in
	kwickmig) [[ $KWICKMIG_OK == 1 ]] && ACTIVE+=(kwickmig) ;;
	rclone) [[ -n $RCLONE ]] && ACTIVE+=(rclone) ;;
	aws) [[ -n $AWS ]] && ACTIVE+=(aws) ;;
	*) log "unknown tool $t in BENCH_TOOLS (want kwickmig, rclone, aws)" ;;
	esac
done

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain -- cmd internal 2>/dev/null) ]]; then rev+=" + uncommitted changes"; fi
if [[ $KWICKMIG_OK != 1 ]]; then rev+=", files sync not available"; fi
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "command: BENCH_FILES=$N make bench"
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -sr)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "kwickmig: $rev"
	if [[ -n $RCLONE ]]; then echo "rclone: $("$RCLONE" version 2>/dev/null | head -n1) ($RCLONE)"; fi
	if [[ -n $AWS ]]; then echo "aws: $("$AWS" --version 2>&1 | head -n1) ($AWS)"; fi
	echo "server: versitygw $(sed -n 's/^const VersitygwVersion = "\(.*\)"/\1/p' internal/testenv/versitygw.go) --keep-alive, POSIX backend"
	echo "go: $(go env GOVERSION)"
} >"$META"

log "generating $N files (seed $SEED) in $TREE"
run_child "$BIN/measure" -tool gentree -phase generate -files "$N" -- "$BIN/gentree" -dir "$TREE" -n "$N" -seed "$SEED"
echo "tree: $N files, $(du -sh --apparent-size "$TREE" | cut -f1) (generated by bench/gentree, seed $SEED)" >>"$META"

buckets=()
for t in rawput "${ACTIVE[@]}"; do buckets+=("$(bucket "$t")"); done
"$BIN/mkbucket" "${buckets[@]}"

declare -A ok=()
log "phase 1: initial upload"
since=$(now)
sleep 0.05
# shellcheck disable=SC2086 # BENCH_RAWPUT_ARGS is a list of flags
measured rawput initial -- "$BIN/rawput" -bucket "$(bucket rawput)" -n "$N" -seed "$SEED" -c "$CONCURRENCY" ${BENCH_RAWPUT_ARGS:-} ||
	log "raw-PUT floor failed"
check rawput initial "$since"
for t in "${ACTIVE[@]}"; do
	since=$(now)
	sleep 0.05
	if run_tool "$t" initial; then ok[$t]=1; else log "$t initial failed (see $LOGS/$t-initial.log)"; fi
	check "$t" initial "$since"
done

log "phase 2: no-change re-run"
run_child "$BIN/statwalk" "$TREE" >/dev/null # warm-up, not recorded
measured statwalk nochange -- "$BIN/statwalk" "$TREE" || log "stat walk failed"
for t in "${ACTIVE[@]}"; do
	[[ -n ${ok[$t]:-} ]] || continue
	since=$(now)
	sleep 0.05
	run_tool "$t" nochange || log "$t no-change failed (see $LOGS/$t-nochange.log)"
	check "$t" nochange "$since"
done

log "phase 3: rewrite 1% of the files, then re-run"
run_child "$BIN/gentree" -dir "$TREE" -n "$N" -seed "$SEED" -change 1 -manifest "$WORK/changed.tsv"
for t in "${ACTIVE[@]}"; do
	[[ -n ${ok[$t]:-} ]] || continue
	since=$(now)
	sleep 0.05
	run_tool "$t" changed || log "$t 1%-changed failed (see $LOGS/$t-changed.log)"
	check "$t" changed "$since" "$WORK/changed.tsv"
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"
cp "$RESULTS" "$OUT/files-$N.jsonl"
"$BIN/report" -results "$RESULTS" -n "$N" -meta "$META" -outdir "$OUT"
