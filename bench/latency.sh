#!/usr/bin/env bash
# Latency sweep: the same receipt tree uploaded to versitygw through a TCP
# delay proxy (bench/delayproxy, half the round trip added each way) at
# several round trips, by kwickmig with its defaults (adaptive concurrency),
# kwickmig pinned at hand-tuned --concurrency values (--adaptive=false),
# rclone (fastest flags, --transfers 256), s5cmd v2.3.0 sync and aws s3 sync,
# each into a fresh bucket; then a no-change re-run of each. Printed as
# ratios side by side (bench/latreport). See bench/README.md.
#
# Run it through `BENCH_ONLY=latency make bench`. Knobs (environment):
#   BENCH_LATENCY_FILES=20000        files in the tree
#   BENCH_LATENCY_RTTS="0 10 30 60"  round trips to add, in ms
#   BENCH_LATENCY_TUNED="64 128 256 512 1024"  kwickmig --adaptive=false values tried
#   BENCH_LATENCY_TOOLS="kwickmig tuned rclone s5cmd aws"
#   BENCH_KWICKMIG=bin/kwickmig, BENCH_INSTALL=1, BENCH_OUT=bench/out, BENCH_SEED=1 as in files.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${KWICKMIG_TEST_S3_ENDPOINT:?not set: run through make bench (tools/testenv)}"
: "${KWICKMIG_TEST_S3_ACCESS_KEY:?not set: run through make bench}"
: "${KWICKMIG_TEST_S3_SECRET_KEY:?not set: run through make bench}"

N=${BENCH_LATENCY_FILES:-20000}
RTTS=${BENCH_LATENCY_RTTS:-0 10 30 60}
TUNED=${BENCH_LATENCY_TUNED:-64 128 256 512 1024}
TOOLS=${BENCH_LATENCY_TOOLS:-kwickmig tuned rclone s5cmd aws}
SEED=${BENCH_SEED:-1}
KWICKMIG=${BENCH_KWICKMIG:-bin/kwickmig}
INSTALL=${BENCH_INSTALL:-1}
OUT=${BENCH_OUT:-bench/out}
TIMEOUT=${BENCH_TIMEOUT:-$((N / 20 + 300))}
RCLONE_VERSION=v1.76.0
S5CMD_VERSION=v2.3.0
PEER_CONC=256
TOOLS_DIR=${KWICKMIG_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/kwickmig-tools}
TARGET=${KWICKMIG_TEST_S3_ENDPOINT%/}
TARGET=${TARGET#http://}
PORT=${TARGET##*:}
RUN=$(date -u +%Y%m%d%H%M%S)

log() { printf '%s latency: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kwickmig-latency.XXXXXX")
PROXY_PID=""
stop_proxy() {
	if [[ -n $PROXY_PID ]]; then
		kill "$PROXY_PID" 2>/dev/null || true
		wait "$PROXY_PID" 2>/dev/null || true
		PROXY_PID=""
	fi
}
cleanup() {
	stop_proxy
	rm -rf "$WORK"
}
trap cleanup EXIT

CHILD=""
on_signal() {
	if [[ -n $CHILD ]]; then
		kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" || true
	fi
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

TREE=$WORK/tree
BIN=$WORK/bin
RESULTS=$WORK/results.jsonl
LOGS=$OUT/logs/latency-$N
mkdir -p "$BIN" "$LOGS"
: >"$RESULTS"

# --- peers (the same sources as files.sh; s5cmd as issue 10 describes) -------

find_rclone() {
	if [[ -x $TOOLS_DIR/rclone ]]; then
		echo "$TOOLS_DIR/rclone"
	elif [[ $INSTALL == 1 ]] && mkdir -p "$TOOLS_DIR" &&
		(cd / && GOBIN=$TOOLS_DIR go install "github.com/rclone/rclone@$RCLONE_VERSION") >&2; then
		echo "$TOOLS_DIR/rclone"
	elif command -v rclone >/dev/null; then
		command -v rclone
	fi
}

# The module proxy refuses s5cmd's version list, so `go install …@v2.3.0`
# fails; downloading the module and building inside it works.
find_s5cmd() {
	if [[ -x $TOOLS_DIR/s5cmd ]]; then
		echo "$TOOLS_DIR/s5cmd"
		return
	fi
	[[ $INSTALL == 1 ]] || return 0
	local dir
	dir=$(cd / && GOFLAGS=-mod=mod go mod download -json "github.com/peak/s5cmd/v2@$S5CMD_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || return 0
	[[ -n $dir ]] || return 0
	mkdir -p "$TOOLS_DIR"
	if (cd "$dir" && GOFLAGS=-mod=mod go build -o "$TOOLS_DIR/s5cmd" .) >&2; then
		echo "$TOOLS_DIR/s5cmd"
	fi
}

find_aws() {
	local a
	for a in /usr/bin/aws "$(command -v aws || true)"; do
		if [[ -n $a && -x $a ]] && "$a" --version >/dev/null 2>&1; then
			echo "$a"
			return
		fi
	done
	if [[ $INSTALL == 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli >&2 && /usr/bin/aws --version >/dev/null 2>&1; then
		echo /usr/bin/aws
	fi
}

has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }
RCLONE="" S5CMD="" AWS=""
if has_tool rclone; then RCLONE=$(find_rclone); fi
if has_tool s5cmd; then S5CMD=$(find_s5cmd); fi
if has_tool aws; then AWS=$(find_aws); fi
for t in rclone s5cmd aws; do
	v=${t^^}
	if has_tool "$t" && [[ -z ${!v} ]]; then log "$t not available: its figures will be n/a"; fi
done

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
  max_concurrent_requests = $PEER_CONC
  max_queue_size = 10000
  addressing_style = path
EOF
export RCLONE_CONFIG=$WORK/rclone.conf
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_BENCH_TYPE=s3
export RCLONE_CONFIG_BENCH_PROVIDER=Other
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$KWICKMIG_TEST_S3_ACCESS_KEY
export RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$KWICKMIG_TEST_S3_SECRET_KEY
export RCLONE_CONFIG_BENCH_REGION=$AWS_REGION
export RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true

log "building helpers"
go build -o "$BIN/" ./bench/gentree ./bench/measure ./bench/mkbucket ./bench/delayproxy ./bench/latreport

# --- runs -------------------------------------------------------------------------

# measured TOOL PHASE CMD...: one run under measure, recorded in RESULTS.
measured() {
	local tool=$1 phase=$2
	shift 2
	run_child "$BIN/measure" -tool "$tool" -phase "$phase" -files "$N" -out "$RESULTS" \
		-log "$LOGS/$tool-$phase.log" -server-port "$PORT" -timeout "${TIMEOUT}s" -- "$@" ||
		log "$tool $phase failed (see $LOGS/$tool-$phase.log)"
}

# run TOOL PHASE BUCKET EP [FLAGS...]: TOOL's sync of the tree into BUCKET at EP.
run() {
	local tool=$1 phase=$2 b=$3 ep=$4
	shift 4
	case $tool in
	kwickmig*)
		measured "$tool" "$phase" "$KWICKMIG" files sync -q --src "$TREE" --dst "s3://$b" --endpoint-url "$ep" \
			--checkpoint "$WORK/$b.db" --report "$LOGS/$tool-$phase.json" "$@"
		;;
	rclone)
		measured rclone "$phase" "$RCLONE" copy "$TREE" "bench:$b" --s3-endpoint "$ep" \
			--transfers "$PEER_CONC" --checkers "$PEER_CONC" --fast-list --update \
			--use-server-modtime --s3-no-head --s3-no-check-bucket
		;;
	s5cmd)
		measured s5cmd "$phase" "$S5CMD" --endpoint-url "$ep" --numworkers "$PEER_CONC" sync "$TREE/" "s3://$b/"
		;;
	aws)
		measured aws "$phase" "$AWS" s3 sync "$TREE" "s3://$b" --endpoint-url "$ep" --only-show-errors --no-progress
		;;
	esac
}

log "generating $N files (seed $SEED)"
run_child "$BIN/gentree" -dir "$TREE" -n "$N" -seed "$SEED" >/dev/null
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "command: BENCH_ONLY=latency BENCH_LATENCY_FILES=$N BENCH_LATENCY_RTTS=\"$RTTS\" make bench"
	echo "machine: $(nproc) cores, $(uname -sr), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "kwickmig: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "tree: $N files, $(du -sh --apparent-size "$TREE" | cut -f1) (bench/gentree, seed $SEED)"
	if [[ -n $RCLONE ]]; then echo "rclone: $("$RCLONE" version 2>/dev/null | head -n1), --transfers $PEER_CONC --checkers $PEER_CONC --fast-list --update --use-server-modtime --s3-no-head --s3-no-check-bucket"; fi
	if [[ -n $S5CMD ]]; then echo "s5cmd: $("$S5CMD" version 2>/dev/null | head -n1), --numworkers $PEER_CONC sync"; fi
	if [[ -n $AWS ]]; then echo "aws: $("$AWS" --version 2>&1 | head -n1), max_concurrent_requests = $PEER_CONC"; fi
	echo "link: bench/delayproxy in front of versitygw, half the round trip added each way (also at 0 ms)"
} >"$WORK/meta.txt"

for rtt in $RTTS; do
	log "round trip +${rtt} ms"
	"$BIN/delayproxy" -listen 127.0.0.1:0 -target "$TARGET" -delay "$((rtt * 1000 / 2))us" >"$WORK/proxy.out" &
	PROXY_PID=$!
	for _ in $(seq 50); do
		grep -q '^listening on' "$WORK/proxy.out" 2>/dev/null && break
		sleep 0.1
	done
	ep="http://$(sed -n 's/^listening on //p' "$WORK/proxy.out")"

	runs=()
	has_tool kwickmig && runs+=(kwickmig)
	if has_tool tuned; then for c in $TUNED; do runs+=("kwickmig-c$c"); done; fi
	[[ -n $RCLONE ]] && runs+=(rclone)
	[[ -n $S5CMD ]] && runs+=(s5cmd)
	[[ -n $AWS ]] && runs+=(aws)
	for t in "${runs[@]}"; do
		b="lat-${t//[^a-z0-9]/-}-${rtt}-$RUN"
		"$BIN/mkbucket" "$b"
		flags=()
		tool=$t
		if [[ $t == kwickmig-c* ]]; then flags=(--concurrency "${t#kwickmig-c}" --adaptive=false); fi
		run "$tool" "initial@$rtt" "$b" "$ep" "${flags[@]}"
		# The no-change re-run: defaults and peers only (a pinned
		# concurrency changes nothing for it).
		if [[ $t != kwickmig-c* ]]; then run "$tool" "nochange@$rtt" "$b" "$ep"; fi
	done
	stop_proxy
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/meta.txt"
cp "$RESULTS" "$OUT/latency-$N.jsonl"
"$BIN/latreport" -results "$RESULTS" -meta "$WORK/meta.txt" -reports "$LOGS" -out "$OUT/latency-$N.md"
